//! Platform operations: two nodes on one database, the ops API, trusted proxies, a burst
//! of wrong passwords from one address, SIGTERM in the middle of traffic, and the CLI's
//! onboarding commands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::browser_like::*;
use crate::db::{count, value};
use crate::harness::*;

on_both_backends!(
    two_nodes_share_sessions_and_changes,
    forwarded_headers_count_only_from_trusted_proxies,
    a_burst_of_wrong_passwords_is_cut_at_the_throttle,
    sigterm_finishes_requests_in_flight_and_loses_no_mail,
    onboarding_from_the_command_line,
);

/// An operator token made by `portal ops token create`.
fn operator_token(db: &TestDb) -> String {
    let out = db.run(&["ops", "token", "create", "e2e"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = json["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ops_"), "{token}");
    token
}

/// Polls `check` every 50 ms for up to `within`; how long it took.
async fn within<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn ops_client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn two_nodes_share_sessions_and_changes(backend: Backend) {
    let db = Arc::new(TestDb::fresh(backend).await);
    // On PostgreSQL the two nodes start together on a new database: the migrations run
    // once, under an advisory lock, and both come up.
    let slow_poll = move |cmd: &mut std::process::Command| {
        // On PostgreSQL the poll is left far behind: changes must arrive by NOTIFY.
        if backend == Backend::Postgres {
            cmd.env("PORTAL_TENANT_REFRESH_MS", "60000");
        }
    };
    let (a, b) = if backend == Backend::Postgres {
        let db_a = Arc::clone(&db);
        let db_b = Arc::clone(&db);
        let (a, b) = tokio::join!(
            tokio::task::spawn_blocking(move || TestApp::spawn_on(db_a, slow_poll)),
            tokio::task::spawn_blocking(move || TestApp::spawn_on(db_b, slow_poll)),
        );
        (a.unwrap(), b.unwrap())
    } else {
        // Several nodes need PostgreSQL; two processes on one SQLite file start in turn.
        let a = TestApp::spawn_on(Arc::clone(&db), slow_poll);
        (a, TestApp::spawn_on(Arc::clone(&db), slow_poll))
    };
    assert_eq!(
        count(&db, "SELECT CAST(COUNT(*) AS TEXT) FROM tenants", &[]).await,
        2,
        "the seed tenants are imported once"
    );

    // A member signs in through node A and uses the session on node B.
    let m = signed_in_member(&a, "daiwakenpo").await;
    let on_b = m.browser.on_node(&b);
    let page = on_b.get("/login-methods").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    // Logging out on B is refused on A at once.
    let out = on_b.fill("/logout", &[]).await;
    assert_eq!(out.status, 303, "{}", out.summary());
    let page = m.browser.get("/login-methods").await;
    assert!(page.is_see_other("/login"), "{}", page.summary());

    // A policy change made on A is enforced on B within 2 s.
    let token = operator_token(&db);
    let http = ops_client();
    let export = db.run(&["tenant", "export", "kanekakenpo"]);
    let file = String::from_utf8(export.stdout).unwrap();
    let changed = file.replace(
        "KOSMO Webへようこそ。",
        "KOSMO Webへようこそ（二台目でも）。",
    );
    assert_ne!(file, changed);
    let b_top = || async { b.get(KANEKA_HOST, "/").await.body.contains("二台目でも") };
    assert!(!b_top().await);
    let put = http
        .put(format!("http://{}/api/v1/tenants/kanekakenpo", a.ops))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(changed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let reply: serde_json::Value = serde_json::from_str(&put.text().await.unwrap()).unwrap();
    assert_eq!(reply["outcome"], "updated", "{reply}");
    assert_eq!(reply["changes"][0]["field"], "welcome", "{reply}");
    let took = within(Duration::from_secs(2), b_top).await;
    assert!(took.is_some(), "node B still serves the old welcome text");

    // A tenant created through the ops API on A serves on B within 2 s, even though B
    // had just answered that host as unknown.
    let host = "opsnew.localhost";
    assert_eq!(b.get(host, "/").await.status, 404);
    let new_file = portal::ops::scaffold("opsnew").unwrap();
    let created = http
        .post(format!("http://{}/api/v1/tenants", a.ops))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(new_file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let took = within(Duration::from_secs(2), || async {
        b.get(host, "/").await.status == 200
    })
    .await;
    assert!(took.is_some(), "node B does not serve the new tenant");
    assert!(b.get(host, "/").await.body.contains("opsnew 健康保険組合"));
    // Creating it again is a conflict; a bad token is refused; a tenant host never
    // reaches the ops API.
    let again = http
        .post(format!("http://{}/api/v1/tenants", a.ops))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(new_file)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let bad = http
        .get(format!("http://{}/api/v1/tenants", a.ops))
        .bearer_auth("ops_0000000000000000000000000000000000000000000000000000000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(b.get(DAIWA_HOST, "/api/v1/tenants").await.status, 404);

    // Disabled through A: B answers 「ご利用いただけません」 within 2 s.
    let disabled = http
        .post(format!("http://{}/api/v1/tenants/opsnew/disable", a.ops))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let took = within(Duration::from_secs(2), || async {
        b.get(host, "/").await.status == 503
    })
    .await;
    assert!(took.is_some(), "node B still serves the disabled tenant");

    if backend == Backend::Postgres {
        // Every connection of both nodes is cut (as a PostgreSQL restart would); a change
        // made afterwards still reaches B within 2 s, without its poll.
        let mut admin = db.postgres().await;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut admin)
        .await
        .unwrap();
        let again = changed.replace("（二台目でも）", "（接続が切れても）");
        let mut put = None;
        for _ in 0..20 {
            let r = http
                .put(format!("http://{}/api/v1/tenants/kanekakenpo", a.ops))
                .bearer_auth(&token)
                .header("content-type", "text/plain")
                .body(again.clone())
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                put = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(put.is_some(), "node A did not recover its connections");
        let took = within(Duration::from_secs(2), || async {
            b.get(KANEKA_HOST, "/")
                .await
                .body
                .contains("接続が切れても")
        })
        .await;
        assert!(took.is_some(), "node B serves stale settings after the cut");
    }
    // Changing one tenant left the other cached: both nodes answer both.
    assert_eq!(a.get(DAIWA_HOST, "/").await.status, 200);
    assert_eq!(b.get(DAIWA_HOST, "/").await.status, 200);
}

/// GET /login then POST /login with a wrong password, with extra headers on both.
async fn failed_login_with(app: &TestApp, host: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(host, app.member)
        .build()
        .unwrap();
    let with = |r: reqwest::RequestBuilder| headers.iter().fold(r, |r, (k, v)| r.header(*k, *v));
    let url = format!("http://{host}:{}/login", app.member.port());
    let page = with(client.get(&url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token(&page).expect("a login form");
    let r = with(client.post(&url))
        .form(&[
            ("user_id", "nobody-at-all"),
            ("password", "Wrong-password-1"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), unescape_html(&r.text().await.unwrap()))
}

/// The tenants (slugs) of the failed logins audited as coming from `ip`.
async fn failures_from(db: &TestDb, ip: &str) -> Vec<String> {
    crate::db::rows(
        db,
        "SELECT t.slug FROM audit_events e JOIN tenants t ON t.id = e.tenant_id \
         WHERE e.event = 'login_failed' AND e.ip = $1",
        &[crate::db::Arg::Text(ip)],
    )
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap_or_default())
    .collect()
}

async fn forwarded_headers_count_only_from_trusted_proxies(backend: Backend) {
    let forged = [
        ("x-forwarded-host", KANEKA_HOST),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
    ];
    // Not trusted (the default): routed by the real Host, audited with the real peer.
    let app = TestApp::spawn(backend).await;
    let (status, text) = failed_login_with(&app, DAIWA_HOST, &forged).await;
    assert_eq!(status, 200);
    assert!(text.contains(DAIWA), "routed by X-Forwarded-Host");
    assert_eq!(failures_from(&app.db, "127.0.0.1").await, ["daiwakenpo"]);
    assert!(failures_from(&app.db, "203.0.113.9").await.is_empty());
    // `Forwarded` is not believed either.
    let (_, text) = failed_login_with(
        &app,
        DAIWA_HOST,
        &[("forwarded", "for=198.51.100.4;host=kanekakenpo.localhost")],
    )
    .await;
    assert!(text.contains(DAIWA));
    assert_eq!(failures_from(&app.db, "127.0.0.1").await.len(), 2);
    assert!(failures_from(&app.db, "198.51.100.4").await.is_empty());
    drop(app);

    // From a trusted proxy both are honoured.
    let app = TestApp::spawn_on(TestDb::fresh(backend).await, |cmd| {
        cmd.env("PORTAL_TRUSTED_PROXIES", "127.0.0.1/32, ::1");
    });
    let (status, text) = failed_login_with(&app, DAIWA_HOST, &forged).await;
    assert_eq!(status, 200);
    assert!(
        text.contains(KANEKA),
        "X-Forwarded-Host of a trusted proxy selects the tenant"
    );
    assert_eq!(failures_from(&app.db, "203.0.113.9").await, ["kanekakenpo"]);
    // The client is the first untrusted hop from the right; what the client wrote before
    // it is not believed.
    let (_, _) = failed_login_with(
        &app,
        DAIWA_HOST,
        &[("x-forwarded-for", "10.9.9.9, 198.51.100.23")],
    )
    .await;
    assert_eq!(failures_from(&app.db, "198.51.100.23").await.len(), 1);
    assert!(failures_from(&app.db, "10.9.9.9").await.is_empty());
    // Every response names its request id; so do error pages.
    let page = app.get("nowhere.localhost", "/").await;
    let id = page.header("x-request-id").to_owned();
    assert!(id.len() >= 16, "{id}");
    assert!(
        page.body.contains(&id),
        "the error page shows the request id"
    );
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let body = app.get_at(app.ops, "localhost", "/metrics").await.body;
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A client with the cookie of daiwakenpo's login page, the form's address and its token:
/// what many scripted logins share.
async fn login_form(app: &TestApp) -> (reqwest::Client, String, String) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(DAIWA_HOST, app.member)
        .build()
        .unwrap();
    let url = format!("http://{DAIWA_HOST}:{}/login", app.member.port());
    let page = client.get(&url).send().await.unwrap().text().await.unwrap();
    let token = csrf_token(&page).unwrap();
    (client, url, token)
}

async fn a_burst_of_wrong_passwords_is_cut_at_the_throttle(backend: Backend) {
    let app = TestApp::spawn_on(TestDb::fresh(backend).await, |cmd| {
        cmd.env("PORTAL_TRUSTED_PROXIES", "127.0.0.1");
    });
    let (user_id, password) = first_login(&app, "daiwakenpo").await;
    let hashed_before = metric(&app, "portal_password_hashes_total").await;

    // One client, one CSRF token, 1,000 wrong passwords sent at once from 198.51.100.1.
    let (client, url, token) = login_form(&app).await;
    let mut burst = Vec::new();
    for i in 0..1000 {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        burst.push(tokio::spawn(async move {
            let r = client
                .post(&url)
                .header("x-forwarded-for", "198.51.100.1")
                .form(&[
                    ("user_id", format!("someone{i}").as_str()),
                    ("password", "Wrong-password-1"),
                    ("csrf_token", &token),
                ])
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    // Meanwhile a member at another address signs in.
    let other = Browser::new(&app, DAIWA_HOST);
    let signed = login(&other, &user_id, &password).await;
    assert!(
        signed.status == 303 && signed.location != "/login",
        "{}",
        signed.summary()
    );

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for task in burst {
        *statuses.entry(task.await.unwrap()).or_default() += 1;
    }
    let hashed = metric(&app, "portal_password_hashes_total").await - hashed_before;
    let passed = statuses.get(&200).copied().unwrap_or(0);
    assert!(passed <= 30, "{statuses:?}");
    assert_eq!(
        statuses.get(&429).copied().unwrap_or(0),
        1000 - passed,
        "{statuses:?}"
    );
    // The burst's checks plus the other member's one.
    assert!(
        hashed <= 31.0,
        "{hashed} password checks reached the hasher"
    );
    assert!(metric(&app, "portal_throttled_total").await >= 970.0);
    // The throttle page says so in Japanese.
    let (status, text) =
        failed_login_with(&app, DAIWA_HOST, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(status, 429);
    assert!(text.contains("しばらく"), "{text}");
}

async fn sigterm_finishes_requests_in_flight_and_loses_no_mail(backend: Backend) {
    let smtp = SmtpServer::start_with(free_port(), Arc::new(tempfile::tempdir().unwrap()), 0.02);
    let db = Arc::new(TestDb::fresh(backend).await);
    let smtp_url = smtp.url();
    let mut app = TestApp::spawn_on(Arc::clone(&db), |cmd| {
        // The grace period outlasts the burst's password checks even on a loaded machine,
        // where the hashing threads (lowest priority) get little of the CPU.
        cmd.env("PORTAL_TRUSTED_PROXIES", "127.0.0.1")
            .env("PORTAL_SMTP_URL", &smtp_url)
            .env("PORTAL_MAIL_CONCURRENCY", "4")
            .env("PORTAL_SHUTDOWN_GRACE_MS", "120000");
    });
    // Mail in the outbox while the node stops.
    for i in 0..30 {
        let out = db.run(&["mail", "test", "daiwakenpo", &format!("stop{i}@example.jp")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // 200 password checks in flight, each from its own address (no throttle).
    let (client, url, token) = login_form(&app).await;
    let mut burst = Vec::new();
    for i in 0..200 {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        burst.push(tokio::spawn(async move {
            client
                .post(&url)
                .header("x-forwarded-for", format!("198.51.100.{}", i % 250))
                .header("connection", "close")
                .form(&[
                    ("user_id", "nobody-at-all"),
                    ("password", "Wrong-password-1"),
                    ("csrf_token", &token),
                ])
                .send()
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (mut answered, mut refused) = (0, 0);
    for task in burst {
        match task.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                let body = r.text().await.expect("a whole response");
                assert!(body.contains("</html>"));
                answered += 1;
            }
            // Sent after the node stopped listening: never accepted, never half-served.
            Err(e) => {
                assert!(
                    e.is_connect(),
                    "a request in flight failed: {e:?}\n{}",
                    app.log()
                );
                refused += 1;
            }
        }
    }
    assert!(answered > 0, "answered {answered}, refused {refused}");
    let status = app.wait();
    assert!(status.success(), "{status}\n{}", app.log());
    assert!(app.log().contains("stopped"), "{}", app.log());

    // A second node takes over whatever the first did not send: every mail arrives once.
    let b = TestApp::spawn_on(Arc::clone(&db), |cmd| {
        cmd.env("PORTAL_SMTP_URL", &smtp_url);
    });
    let done = within(Duration::from_secs(20), || async {
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM mail_outbox WHERE status <> 'sent'",
            &[],
        )
        .await
            == 0
    })
    .await;
    assert!(done.is_some(), "mail left unsent:\n{}", b.log());
    let messages = smtp.messages();
    for i in 0..30 {
        let to = format!("stop{i}@example.jp");
        let n = messages
            .iter()
            .filter(|m| m.contains(&format!("X-Test-Envelope-To: {to}")))
            .count();
        assert_eq!(n, 1, "{to} received {n} times");
    }
}

async fn onboarding_from_the_command_line(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = db.portal();
        cmd.env("PORTAL_TENANTS_DIR", dir.path().join("tenants"))
            .env("PORTAL_THEMES_DIR", dir.path().join("themes"))
            .args(args);
        cmd.output().unwrap()
    };
    let out = run(&["tenant", "new", "clikenpo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("tenants/clikenpo.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# Shortest and longest password accepted."));
    assert!(dir.path().join("themes/clikenpo/static").is_dir());
    // Never overwritten.
    assert!(!run(&["tenant", "new", "clikenpo"]).status.success());

    let path = file.to_str().unwrap();
    let dry = run(&["tenant", "apply", path, "--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(String::from_utf8_lossy(&dry.stderr).contains("would be created"));
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        stdout.contains("password.min_length: null -> 8"),
        "{stdout}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM tenants WHERE slug = 'clikenpo'",
            &[]
        )
        .await,
        0,
        "a dry run changes nothing"
    );
    assert!(run(&["tenant", "apply", path]).status.success());
    std::fs::write(&file, text.replacen("min_length = 8", "min_length = 12", 1)).unwrap();
    let dry = run(&["tenant", "apply", path, "--dry-run"]);
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(stdout.trim(), "password.min_length: 8 -> 12");
    let stored = || async {
        value(
            &db,
            "SELECT settings FROM tenants WHERE slug = 'clikenpo'",
            &[],
        )
        .await
        .unwrap()
    };
    assert!(stored().await.contains("\"min_length\":8"));
    assert!(run(&["tenant", "disable", "clikenpo"]).status.success());
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM tenants WHERE slug = 'clikenpo' AND enabled = FALSE",
            &[]
        )
        .await,
        1
    );
    assert!(!run(&["tenant", "enable", "nosuch"]).status.success());
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event IN ('tenant_created', 'tenant_disabled')",
            &[]
        )
        .await,
        2
    );
}

/// schemathesis fuzzes every endpoint of the committed ops API document with an operator
/// token: no 5xx, and every answer matches the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_in_the_ops_api() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = operator_token(&app.db);
    let python = std::env::var("PORTAL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let st = std::path::Path::new(&python).with_file_name("schemathesis");
    assert!(
        st.exists(),
        "schemathesis is needed next to {python} (bash tests/run installs tests/api/requirements.txt)"
    );
    let schema = repo_root().join("docs/ops-api.json");
    let out = std::process::Command::new(st)
        .arg("run")
        .arg(&schema)
        .args(["--url", &format!("http://{}/api/v1", app.ops)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "30", "--seed", "1", "--phases", "examples,fuzzing"])
        .args(["--request-timeout", "10"])
        .env("NO_COLOR", "1")
        .current_dir(app.db.data_dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running schemathesis");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
}
