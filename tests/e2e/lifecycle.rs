//! A node's life: JSON logs with request ids, refusing a database of a newer version,
//! rotating the secret key, and the retention sweeper.

use std::sync::Arc;
use std::time::Duration;

use crate::browser_like::*;
use crate::db::{count, exec, Arg};
use crate::harness::*;

on_both_backends!(
    json_logs_carry_the_request_id_and_no_secret,
    a_database_of_a_newer_version_is_refused,
    rotating_the_secret_key_keeps_every_secret_readable,
    the_sweeper_removes_what_has_lapsed,
);

const KEY_1: &str = "a2V5LW9uZS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0=";
const KEY_2: &str = "a2V5LXR3by0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0=";

async fn json_logs_carry_the_request_id_and_no_secret(backend: Backend) {
    let app = TestApp::spawn_on(TestDb::fresh(backend).await, |cmd| {
        cmd.env("PORTAL_LOG_FORMAT", "json");
    });
    let b = Browser::new(&app, DAIWA_HOST);
    let secret = "Very-secret-password-9";
    let reply = login(&b, "someone-unknown", secret).await;
    let id = reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = app.log();
    assert!(!log.contains(secret), "a password reached the log");
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["span"]["request_id"] == id.as_str() && v["fields"]["path"] == "/login")
        .unwrap_or_else(|| panic!("no JSON access line for {id}:\n{log}"));
    assert_eq!(line["span"]["tenant"], "daiwakenpo", "{line}");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    assert_eq!(line["target"], "portal::access", "{line}");
}

async fn a_database_of_a_newer_version_is_refused(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    assert!(db.run(&["migrate"]).status.success());
    exec(
        &db,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101, 'from the future', TRUE, $1, 0)",
        &[Arg::Blob(&[0u8; 48])],
    )
    .await;
    let out = db.run(&["serve"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("migrated by a newer version of portal (migration 99990101)"),
        "{stderr}"
    );
}

async fn rotating_the_secret_key_keeps_every_secret_readable(backend: Backend) {
    let db = Arc::new(TestDb::fresh(backend).await);
    let with_key = |key: &'static str, previous: Option<&'static str>| {
        move |cmd: &mut std::process::Command| {
            cmd.env("PORTAL_SECRET_KEY", key);
            if let Some(previous) = previous {
                cmd.env("PORTAL_SECRET_KEY_PREVIOUS", previous);
            }
        }
    };
    let run = |args: &[&str], key: &'static str, previous: Option<&'static str>| {
        let mut cmd = db.portal();
        with_key(key, previous)(&mut cmd);
        cmd.args(args).output().unwrap()
    };
    // Mail sealed under the first key waits in the outbox (no node is running).
    assert!(run(&["migrate"], KEY_1, None).status.success());
    {
        let node = TestApp::spawn_on(Arc::clone(&db), with_key(KEY_1, None));
        drop(node);
    }
    let queued = run(
        &["mail", "test", "daiwakenpo", "rotate@example.jp"],
        KEY_1,
        None,
    );
    assert!(
        queued.status.success(),
        "{}",
        String::from_utf8_lossy(&queued.stderr)
    );

    // A node that has the new key only (restarted too early) cannot open it: the mail is
    // put back for later, not given up.
    {
        let early = TestApp::spawn_on(Arc::clone(&db), |cmd| {
            with_key(KEY_2, None)(cmd);
            cmd.env("PORTAL_MAIL_RETRY_BASE_MS", "200");
        });
        let tried = "SELECT CAST(COUNT(*) AS TEXT) FROM mail_outbox WHERE attempts > 0 AND status = 'queued'";
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count(&db, tried, &[]).await == 0 {
            assert!(std::time::Instant::now() < deadline, "{}", early.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(early);
        let given_up = "SELECT CAST(COUNT(*) AS TEXT) FROM mail_outbox WHERE status = 'failed'";
        assert_eq!(count(&db, given_up, &[]).await, 0);
    }

    let rotated = run(&["secrets", "rotate"], KEY_2, Some(KEY_1));
    let report = String::from_utf8_lossy(&rotated.stderr);
    assert!(rotated.status.success(), "{report}");
    assert!(
        report.contains("mail_outbox.content: 1 re-sealed"),
        "{report}"
    );
    assert!(report.contains("unreadable: 0"), "{report}");
    // Again: nothing left to do.
    let again = run(&["secrets", "rotate"], KEY_2, Some(KEY_1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("mail_outbox.content: 0 re-sealed"));

    // A node with the new key alone delivers it, readable.
    let node = TestApp::spawn_on(Arc::clone(&db), with_key(KEY_2, None));
    let b = Browser::new(&node, DAIWA_HOST);
    let mails = mails_to(&b, "rotate@example.jp", 1).await;
    assert_eq!(mails.len(), 1, "{}", node.log());
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM mail_outbox WHERE status = 'failed'",
            &[]
        )
        .await,
        0
    );
}

async fn the_sweeper_removes_what_has_lapsed(backend: Backend) {
    let app = TestApp::spawn_on(TestDb::fresh(backend).await, |cmd| {
        cmd.env("PORTAL_SWEEP_INTERVAL_MS", "300");
    });
    let db = &app.db;
    let (user_id, password) = first_login(&app, "daiwakenpo").await;
    // A sign-in left half-way, and then its flow expires.
    let b = Browser::new(&app, DAIWA_HOST);
    let next = login_ok(&b, &user_id, &password).await;
    assert_eq!(next.status, 303);
    let flows = "SELECT CAST(COUNT(*) AS TEXT) FROM login_flows";
    assert!(count(db, flows, &[]).await >= 1);
    exec(db, "UPDATE login_flows SET expires_at = 1", &[]).await;
    // Audit events from three years ago, and mail sent 100 days ago.
    exec(
        db,
        "UPDATE audit_events SET created_at = created_at - 3 * 365 * 86400 \
         WHERE event = 'login_password_ok'",
        &[],
    )
    .await;
    let old_audit =
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'login_password_ok'";
    assert!(count(db, old_audit, &[]).await >= 1);
    let recent_audit = "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events";
    let sent = "SELECT CAST(COUNT(*) AS TEXT) FROM mail_outbox WHERE status = 'sent'";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(db, sent, &[]).await == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent_before = count(db, sent, &[]).await;
    assert!(sent_before >= 1);
    exec(
        db,
        "UPDATE mail_outbox SET created_ms = created_ms - CAST(8640000000 AS BIGINT) WHERE status = 'sent'",
        &[],
    )
    .await;

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let done = count(db, flows, &[]).await == 0
            && count(db, old_audit, &[]).await == 0
            && count(db, sent, &[]).await == 0;
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not swept:\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What is within its retention stays.
    assert!(count(db, recent_audit, &[]).await > 0);
    let metrics = app.get_at(app.ops, "localhost", "/metrics").await.body;
    for kind in ["login_flows", "audit_events", "mail_outbox"] {
        assert!(
            metrics.contains(&format!("portal_sweep_deleted_total{{kind=\"{kind}\"}}")),
            "{kind}:\n{metrics}"
        );
    }
}
