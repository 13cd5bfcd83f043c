//! Configuration seen from outside: the file and the environment reach the running
//! server, and a bad value stops it with one line naming the key.

use std::process::Stdio;

use crate::harness::{start, stderr, Backend, TestApp, TestDb, DAIWA};

#[tokio::test]
async fn file_then_environment_take_precedence_over_defaults() {
    // portal.toml in the working directory changes the base domain.
    let db = TestDb::fresh(Backend::Sqlite).await;
    std::fs::write(
        db.data_dir.path().join("portal.toml"),
        "base_domain = \"file.test\"\n",
    )
    .unwrap();
    let app = TestApp::spawn_on(db, |_| {});
    assert_eq!(app.get("daiwakenpo.file.test", "/").await.status, 200);
    assert_eq!(app.get("daiwakenpo.localhost", "/").await.status, 404);
    drop(app);

    // The environment wins over the file.
    let db = TestDb::fresh(Backend::Sqlite).await;
    std::fs::write(
        db.data_dir.path().join("portal.toml"),
        "base_domain = \"file.test\"\n",
    )
    .unwrap();
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_BASE_DOMAIN", "env.test");
    });
    let page = app.get("daiwakenpo.env.test", "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(DAIWA));
    assert_eq!(app.get("daiwakenpo.file.test", "/").await.status, 404);

    // PORTAL_CONFIG names another file.
    let db = TestDb::fresh(Backend::Sqlite).await;
    let other = db.data_dir.path().join("other.toml");
    std::fs::write(&other, "base_domain = \"other.test\"\n").unwrap();
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_CONFIG", &other);
    });
    assert_eq!(app.get("daiwakenpo.other.test", "/").await.status, 200);
}

#[tokio::test]
async fn embedded_default_database_is_created_in_the_data_dir() {
    let db = TestDb::fresh(Backend::Sqlite).await;
    let data = db.data_dir.path().join("nested/data");
    let mut cmd = db.portal();
    cmd.env_remove("PORTAL_DATABASE_URL")
        .env("PORTAL_DATA_DIR", &data)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (mut child, _log, (member, _)) = start(cmd);
    assert!(data.join("portal.db").is_file());
    let response = reqwest::Client::new()
        .get(format!("http://{member}/"))
        .header("Host", "daiwakenpo.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn bad_values_stop_start_up_naming_the_key() {
    let db = TestDb::fresh(Backend::Sqlite).await;
    let cases = [
        ("PORTAL_LISTEN", "not-an-address"),
        ("PORTAL_OPS_LISTEN", "127.0.0.1:99999"),
        ("PORTAL_DATABASE_URL", "mysql://localhost/portal"),
        ("PORTAL_BASE_DOMAIN", "Not A Domain"),
        ("PORTAL_TENANT_REFRESH_MS", "soon"),
    ];
    for (key, value) in cases {
        let out = db.portal().arg("serve").env(key, value).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{key}={value}: {}",
            stderr(&out)
        );
        let message = stderr(&out);
        assert_eq!(
            message.trim().lines().count(),
            1,
            "{key}: one line, got: {message}"
        );
        assert!(message.contains(key), "{key} not named: {message}");
    }

    // A bad file is named too.
    std::fs::write(db.data_dir.path().join("portal.toml"), "listen = 8080\n").unwrap();
    let out = db
        .portal()
        .arg("serve")
        .env_remove("PORTAL_LISTEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("listen") && stderr(&out).contains("portal.toml"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(db.data_dir.path().join("portal.toml")).unwrap();

    // A port already taken: clear message naming the key, non-zero exit.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = db
        .portal()
        .arg("serve")
        .env("PORTAL_OPS_LISTEN", &addr)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("PORTAL_OPS_LISTEN"),
        "{}",
        stderr(&out)
    );
}
