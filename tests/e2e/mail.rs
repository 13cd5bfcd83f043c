//! Mail through the outbox to a real SMTP server process: content, per-tenant senders,
//! DKIM, outages, crashes, two nodes, refusals, bad addresses and rate limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mail_parser::MessageParser;

use crate::harness::{
    eventually, free_port, on_both_backends, stderr, stdout, Backend, SmtpServer, TestApp, TestDb,
    DAIWA, KANEKA,
};

on_both_backends!(
    mail_commits_with_its_transaction_or_not_at_all,
    test_mail_reaches_smtp_from_each_tenant_in_japanese,
    mail_queued_during_an_smtp_outage_arrives_once_it_is_back,
    a_killed_server_neither_loses_nor_doubles_mail,
    two_nodes_deliver_each_mail_exactly_once,
    refused_mail_fails_and_can_be_retried,
    bad_addresses_and_floods_are_refused_before_smtp,
);

/// `portal serve` delivering to `smtp_url`, with short timings for tests.
fn serve(db: impl Into<Arc<TestDb>>, smtp_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let smtp_url = smtp_url.to_owned();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TestApp::spawn_on(db, move |cmd| {
        cmd.env("PORTAL_SMTP_URL", smtp_url)
            .env("PORTAL_MAIL_POLL_MS", "100")
            .env("PORTAL_MAIL_RETRY_BASE_MS", "200")
            .env("PORTAL_MAIL_RETRY_MAX_MS", "800")
            .env("PORTAL_SMTP_TIMEOUT_MS", "1000")
            .env("PORTAL_MAIL_LEASE_MS", "3000");
        for (k, v) in extra {
            cmd.env(k, v);
        }
    })
}

/// Queues the tenant's test mail with the CLI, as an operator would; returns its id.
fn queue(db: &TestDb, slug: &str, to: &str) -> String {
    let out = db.run(&["mail", "test", slug, to]);
    assert!(out.status.success(), "{to}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// How many times each envelope recipient was received.
fn received_counts(smtp: &SmtpServer) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for raw in smtp.messages() {
        let to = raw
            .lines()
            .find_map(|l| l.strip_prefix("X-Test-Envelope-To: "))
            .expect("envelope header")
            .trim()
            .to_owned();
        *counts.entry(to).or_insert(0) += 1;
    }
    counts
}

fn status_line(db: &TestDb, slug: &str) -> Vec<i64> {
    let out = db.run(&["mail", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(slug))
        .unwrap_or_else(|| panic!("{slug} missing in:\n{text}"));
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The library call that features use: a mail queued in a transaction that rolls back
/// (the state change failed) never exists; one whose transaction commits is queued.
async fn mail_commits_with_its_transaction_or_not_at_all(backend: Backend) {
    use portal::mail::{EmailAddress, Mailer};
    let db = TestDb::fresh(backend).await;
    let root = crate::harness::repo_root();
    let config = portal::config::Config {
        database_url: Some(db.url.clone()),
        data_dir: db.data_dir.path().to_path_buf(),
        themes_dir: root.join("themes"),
        tenants_dir: root.join("tenants"),
        ..Default::default()
    };
    let store = portal::store::Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    portal::startup::import_seed_tenants(&store, &config.tenants_dir)
        .await
        .unwrap();
    let tenant = store.tenant_by_slug("daiwakenpo").await.unwrap().unwrap();
    let themes = portal::theme::Themes::new(&config.themes_dir).unwrap();
    let mailer = Mailer::new(
        &config,
        themes,
        portal::crypto::SecretBox::from_key(&[3; 32]),
    );
    let to = EmailAddress::parse("tx@example.jp").unwrap();

    let mut tx = store.begin().await.unwrap();
    mailer
        .enqueue(&mut tx, &tenant, &to, "test", tera::Context::new())
        .await
        .unwrap();
    drop(tx); // rolled back
    let queued = |counts: Vec<portal::store::MailCounts>| {
        counts
            .into_iter()
            .find(|c| c.tenant == "daiwakenpo")
            .unwrap()
            .queued
    };
    assert_eq!(queued(store.mail_counts().await.unwrap()), 0);

    let mut tx = store.begin().await.unwrap();
    let id = mailer
        .enqueue(&mut tx, &tenant, &to, "test", tera::Context::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(queued(store.mail_counts().await.unwrap()), 1);
    let (status, attempts, _) = store.mail_state(&id).await.unwrap().unwrap();
    assert_eq!((status.as_str(), attempts), ("queued", 0));
    store.close().await;
}

async fn test_mail_reaches_smtp_from_each_tenant_in_japanese(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = TestDb::fresh(backend).await;
    // kanekakenpo signs its mail: a selector in its settings, a key in the DKIM folder.
    let dkim_dir = db.data_dir.path().join("dkim");
    std::fs::create_dir_all(&dkim_dir).unwrap();
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
    use base64::Engine;
    std::fs::write(
        dkim_dir.join("kosmo-web.jp.key"),
        base64::engine::general_purpose::STANDARD.encode(seed),
    )
    .unwrap();
    let app = serve(db, &smtp.url(), &[]);
    let kaneka = stdout(&app.db.run(&["tenant", "export", "kanekakenpo"]));
    let signed = kaneka.replace("[mail]\n", "[mail]\ndkim_selector = \"portal\"\n");
    assert_ne!(signed, kaneka);
    let out = app.db.run_with_input(&["tenant", "apply", "-"], &signed);
    assert!(out.status.success(), "{}", stderr(&out));

    let daiwa_id = queue(&app.db, "daiwakenpo", "taro@example.jp");
    let kaneka_id = queue(&app.db, "kanekakenpo", "Hanako.Kaneka@Example.JP");
    let arrived = eventually(Duration::from_secs(15), || async {
        smtp.messages().len() == 2
    })
    .await;
    assert!(arrived, "mail did not arrive:\n{}", app.log());

    let messages = smtp.messages();
    let parser = MessageParser::default();
    let find = |to: &str| {
        messages
            .iter()
            .find(|raw| raw.contains(&format!("X-Test-Envelope-To: {to}")))
            .unwrap_or_else(|| panic!("no mail to {to}"))
    };

    for (raw, id, name, domain, to) in [
        (
            find("taro@example.jp"),
            &daiwa_id,
            DAIWA,
            "daiwakenpo.localhost",
            "taro@example.jp",
        ),
        (
            find("Hanako.Kaneka@example.jp"),
            &kaneka_id,
            KANEKA,
            "kosmo-web.jp",
            "Hanako.Kaneka@example.jp",
        ),
    ] {
        // Headers travel encoded (RFC 2047), never as raw UTF-8.
        assert!(
            !raw.lines()
                .any(|l| l.starts_with("Subject:") && !l.is_ascii()),
            "{raw}"
        );
        let message = parser.parse(raw.as_bytes()).expect("a MIME message");
        let from = message.from().and_then(|a| a.first()).expect("From");
        assert_eq!(from.address().unwrap(), format!("no-reply@{domain}"));
        assert_eq!(from.name().unwrap(), name);
        assert!(raw.contains(&format!("X-Test-Envelope-From: no-reply@{domain}")));
        let recipient = message.to().and_then(|a| a.first()).expect("To");
        assert_eq!(recipient.address().unwrap(), to);
        assert_eq!(
            message.subject().unwrap(),
            format!("【{name}】テストメール")
        );
        let text = message.body_text(0).expect("text part");
        assert!(
            text.contains(&format!("{name}からのテストメールです。")),
            "{text}"
        );
        assert!(text.contains(&format!("no-reply@{domain}")));
        let html = message.body_html(0).expect("HTML part");
        assert!(
            html.contains("<html lang=\"ja\">") && html.contains("テストメール"),
            "{html}"
        );
        assert_eq!(message.message_id().unwrap(), format!("{id}@{domain}"));
    }

    // DKIM: only the tenant with a selector and a key signs.
    let dkim = |raw: &str| {
        let message = parser.parse(raw.as_bytes()).unwrap();
        message
            .header_raw("DKIM-Signature")
            .map(|v| v.split_whitespace().collect::<String>())
    };
    let signature = dkim(find("Hanako.Kaneka@example.jp")).expect("kanekakenpo mail is signed");
    assert!(signature.contains("d=kosmo-web.jp;"), "{signature}");
    assert!(signature.contains("s=portal;"), "{signature}");
    assert!(signature.contains("a=ed25519-sha256;"), "{signature}");
    assert_eq!(dkim(find("taro@example.jp")), None);

    // Sent mail is counted, per tenant, and its content is no longer kept. The SMTP server
    // has the mail a moment before the worker records the delivery and counts it: wait for
    // the count.
    let counted = |body: &str| {
        ["daiwakenpo", "kanekakenpo"]
            .iter()
            .all(|slug| body.contains(&format!("portal_mail_sent_total{{tenant=\"{slug}\"}} 1")))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let body = app.get_at(app.ops, "localhost", "/metrics").await.body;
        if counted(&body) || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(counted(&metrics), "{metrics}");
    assert_eq!(status_line(&app.db, "daiwakenpo"), [0, 0, 0, 0, 1]);
    assert_eq!(status_line(&app.db, "kanekakenpo"), [0, 0, 0, 0, 1]);
}

async fn mail_queued_during_an_smtp_outage_arrives_once_it_is_back(backend: Backend) {
    let port = free_port();
    // Queueing ten mails takes ten CLI runs, seconds on a loaded machine: the outage must
    // not outlast the attempts, or the first mails end as failed before the last is queued.
    let app = serve(
        TestDb::fresh(backend).await,
        &format!("smtp://127.0.0.1:{port}"),
        &[("PORTAL_MAIL_MAX_ATTEMPTS", "1000")],
    );
    let recipients: Vec<String> = (0..10).map(|i| format!("member{i}@example.jp")).collect();
    for to in &recipients {
        queue(&app.db, "daiwakenpo", to);
    }
    // Nobody listens: the mails wait, retried with backoff.
    let retrying = eventually(Duration::from_secs(10), || async {
        let s = status_line(&app.db, "daiwakenpo");
        s[1] >= 1 && s[0] + s[1] + s[2] == 10
    })
    .await;
    assert!(
        retrying,
        "mails not retrying: {:?}\n{}",
        status_line(&app.db, "daiwakenpo"),
        app.log()
    );

    let smtp = SmtpServer::start(port);
    let all = eventually(Duration::from_secs(20), || async {
        received_counts(&smtp).values().sum::<usize>() >= 10
            && status_line(&app.db, "daiwakenpo")[4] == 10
    })
    .await;
    assert!(
        all,
        "not all delivered: {:?}\n{}",
        received_counts(&smtp),
        app.log()
    );
    let counts = received_counts(&smtp);
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), {
        let mut r = recipients.clone();
        r.sort();
        r
    });
    assert!(counts.values().all(|&n| n == 1), "doubled: {counts:?}");
    let metrics = app.get_at(app.ops, "localhost", "/metrics").await;
    assert!(metrics
        .body
        .contains(r#"portal_mail_retried_total{tenant="daiwakenpo"}"#));
}

async fn a_killed_server_neither_loses_nor_doubles_mail(backend: Backend) {
    let smtp = SmtpServer::start_with(free_port(), Arc::new(tempfile::tempdir().unwrap()), 0.05);
    let db = Arc::new(TestDb::fresh(backend).await);
    let migrate = db.run(&["migrate"]);
    assert!(migrate.status.success());
    // Tenants are imported by the first start; queue afterwards.
    let mut app = serve(Arc::clone(&db), "smtp://127.0.0.1:1", &[]);
    app.kill();
    // One mail stalls at RCPT: the node is killed while it waits there (or in another
    // RCPT), with six mails delivered and recorded and the rest of its batch claimed. (No
    // SMTP client can be exactly-once for a kill between the server's 250 and its own
    // record of it: the kill must not land there.)
    let recipients: Vec<String> = (0..30)
        .map(|i| match i {
            6 => format!("stall{i:02}@example.jp"),
            _ => format!("crash{i:02}@example.jp"),
        })
        .collect();
    for to in &recipients {
        queue(&db, "kanekakenpo", to);
    }

    let mut app = serve(
        Arc::clone(&db),
        &smtp.url(),
        // Long enough to wait out the stall.
        &[
            ("PORTAL_MAIL_CONCURRENCY", "1"),
            ("PORTAL_SMTP_TIMEOUT_MS", "4000"),
            ("PORTAL_MAIL_LEASE_MS", "8000"),
        ],
    );
    let started = eventually(Duration::from_secs(15), || async {
        smtp.messages().len() == 6
            && status_line(&db, "kanekakenpo")[4] == 6
            && smtp.messages().len() == 6
    })
    .await;
    assert!(started, "{}", app.log());
    app.kill(); // mid-batch: SIGKILL, no chance to clean up
    let before_restart = smtp.messages().len();
    assert!(
        before_restart < 30,
        "the kill came too late to test anything"
    );

    let app = serve(Arc::clone(&db), &smtp.url(), &[]);
    let all = eventually(Duration::from_secs(30), || async {
        received_counts(&smtp).values().sum::<usize>() >= 30
            && status_line(&db, "kanekakenpo")[4] == 30
    })
    .await;
    assert!(
        all,
        "lost mail: {:?}\n{}",
        received_counts(&smtp),
        app.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = received_counts(&smtp);
    assert_eq!(counts.len(), 30, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "doubled: {counts:?}");
}

async fn two_nodes_deliver_each_mail_exactly_once(backend: Backend) {
    let smtp = SmtpServer::start_with(free_port(), Arc::new(tempfile::tempdir().unwrap()), 0.02);
    let db = Arc::new(TestDb::fresh(backend).await);
    let mut first = serve(Arc::clone(&db), "smtp://127.0.0.1:1", &[]);
    first.kill();
    for i in 0..40 {
        queue(&db, "daiwakenpo", &format!("node{i:02}@example.jp"));
    }
    let extra = [("PORTAL_MAIL_CONCURRENCY", "4")];
    let a = serve(Arc::clone(&db), &smtp.url(), &extra);
    let b = serve(Arc::clone(&db), &smtp.url(), &extra);
    let all = eventually(Duration::from_secs(30), || async {
        received_counts(&smtp).values().sum::<usize>() >= 40
            && status_line(&db, "daiwakenpo")[4] == 40
    })
    .await;
    assert!(
        all,
        "{:?}\n{}\n{}",
        received_counts(&smtp),
        a.log(),
        b.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = received_counts(&smtp);
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|&n| n == 1), "doubled: {counts:?}");
    let delivered = |app: &TestApp| app.log().matches("mail delivered").count();
    // Each node logs a delivery after recording it; the lines reach the test through a pipe.
    eventually(Duration::from_secs(10), || async {
        delivered(&a) + delivered(&b) >= 40
    })
    .await;
    eprintln!(
        "node a delivered {}, node b delivered {}",
        delivered(&a),
        delivered(&b)
    );
    assert_eq!(delivered(&a) + delivered(&b), 40);
}

async fn refused_mail_fails_and_can_be_retried(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let app = serve(
        TestDb::fresh(backend).await,
        &smtp.url(),
        &[("PORTAL_MAIL_MAX_ATTEMPTS", "3")],
    );
    let refused = queue(&app.db, "daiwakenpo", "reject-me@example.jp");
    let busy = queue(&app.db, "daiwakenpo", "tempfail@example.jp");
    queue(&app.db, "daiwakenpo", "fine@example.jp");

    // 5xx: failed at once, one attempt. 4xx: retried until the attempts run out.
    let settled = eventually(Duration::from_secs(15), || async {
        status_line(&app.db, "daiwakenpo") == [0, 0, 0, 2, 1]
    })
    .await;
    assert!(
        settled,
        "{:?}\n{}",
        status_line(&app.db, "daiwakenpo"),
        app.log()
    );
    assert_eq!(
        received_counts(&smtp).keys().collect::<Vec<_>>(),
        ["fine@example.jp"]
    );
    // Each outcome is logged after it is recorded.
    let logged = |log: &str| {
        log.contains(&format!("mail={refused}"))
            && log.contains("550")
            && log.contains(&format!("mail={busy}"))
            && log.contains("451")
    };
    eventually(Duration::from_secs(10), || async { logged(&app.log()) }).await;
    let log = app.log();
    assert!(
        log.contains(&format!("mail={refused}")) && log.contains("550"),
        "{log}"
    );
    assert!(log.contains(&format!("mail={busy}")) && log.contains("451"));
    let metrics = app.get_at(app.ops, "localhost", "/metrics").await;
    assert!(
        metrics
            .body
            .contains(r#"portal_mail_failed_total{tenant="daiwakenpo"} 2"#),
        "{}",
        metrics.body
    );

    // An operator queues one failed mail again; unknown ids are refused.
    let out = app.db.run(&["mail", "retry", "nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    let out = app.db.run(&["mail", "retry", &refused]);
    assert!(
        stderr(&out).contains("1 mail(s) queued again"),
        "{}",
        stderr(&out)
    );
    let out = app.db.run(&["mail", "retry", "--failed"]);
    assert!(out.status.success());
    let again = eventually(Duration::from_secs(15), || async {
        status_line(&app.db, "daiwakenpo") == [0, 0, 0, 2, 1]
    })
    .await;
    assert!(again, "{:?}", status_line(&app.db, "daiwakenpo"));
    assert_eq!(received_counts(&smtp).len(), 1);
}

async fn bad_addresses_and_floods_are_refused_before_smtp(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = TestDb::fresh(backend).await;
    // In portal.toml, so that the server and the CLI that queues mail both see the limits.
    std::fs::write(
        db.data_dir.path().join("portal.toml"),
        "mail_recipient_limit_per_hour = 3\nmail_tenant_limit_per_hour = 5\n",
    )
    .unwrap();
    let app = serve(db, &smtp.url(), &[]);
    let long = format!("{}@example.jp", "a".repeat(250));
    for (address, says) in [
        (
            "victim@example.jp\r\nBcc: everyone@example.jp",
            "line breaks",
        ),
        ("victim@example.jp\nX-Evil: 1", "line breaks"),
        (long.as_str(), "254"),
        ("no-domain", "domain"),
        ("user@", "domain"),
        ("", "required"),
    ] {
        let out = app.db.run(&["mail", "test", "daiwakenpo", address]);
        assert_eq!(out.status.code(), Some(2), "{address:?}");
        assert!(stderr(&out).contains(says), "{address:?}: {}", stderr(&out));
    }
    assert_eq!(status_line(&app.db, "daiwakenpo"), [0, 0, 0, 0, 0]);

    // One address gets at most 3 mails an hour; the tenant at most 5.
    for _ in 0..3 {
        queue(&app.db, "daiwakenpo", "same@example.jp");
    }
    let out = app
        .db
        .run(&["mail", "test", "daiwakenpo", "same@example.jp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("too many mails to this address"),
        "{}",
        stderr(&out)
    );
    queue(&app.db, "daiwakenpo", "other1@example.jp");
    queue(&app.db, "daiwakenpo", "other2@example.jp");
    let out = app
        .db
        .run(&["mail", "test", "daiwakenpo", "other3@example.jp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("too many mails"), "{}", stderr(&out));
    // The other tenant has its own budget.
    queue(&app.db, "kanekakenpo", "same@example.jp");

    let arrived = eventually(Duration::from_secs(15), || async {
        received_counts(&smtp).values().sum::<usize>() == 6
    })
    .await;
    assert!(arrived, "{:?}", received_counts(&smtp));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received_counts(&smtp).values().sum::<usize>(), 6);
    assert!(smtp
        .messages()
        .iter()
        .all(|m| !m.contains("X-Evil") && !m.contains("everyone@")));
}

#[tokio::test]
async fn without_smtp_mail_is_written_to_files_and_logged() {
    let db = TestDb::fresh(Backend::Sqlite).await;
    let dir = db.data_dir.path().join("mail");
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_MAIL_POLL_MS", "100");
    });
    queue(&app.db, "kanekakenpo", "file@example.jp");
    let written = eventually(Duration::from_secs(10), || async {
        std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) == 1
    })
    .await;
    assert!(written, "{}", app.log());
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(file.extension().unwrap(), "eml");
    let raw = std::fs::read(&file).unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        message.subject().unwrap(),
        format!("【{KANEKA}】テストメール")
    );
    // The line is logged after the file is written, and reaches the test through a pipe.
    let logged = eventually(Duration::from_secs(10), || async {
        let log = app.log();
        log.contains("to=file@example.jp") && log.contains("テストメール")
    })
    .await;
    let log = app.log();
    assert!(logged, "{log}");
    // The body (which will carry codes and links) is never logged.
    assert!(!log.contains("からのテストメールです"));
}
