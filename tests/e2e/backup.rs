//! Backup and restore as `docs/operations.md` describes them: the database is copied
//! (`pg_dump`/`pg_restore` on PostgreSQL, `VACUUM INTO` on SQLite) into a fresh database,
//! a node starts on the copy with the same secret key, and a member signs in there with
//! their password and passkey.

use std::process::Command;
use std::sync::Arc;

use crate::browser_like::*;
use crate::harness::*;

on_both_backends!(a_restored_backup_signs_a_member_in);

async fn a_restored_backup_signs_a_member_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let backup_dir = tempfile::tempdir().unwrap();

    let restored = match backend {
        Backend::Postgres => {
            let dump = backup_dir.path().join("portal.dump");
            let out = Command::new("pg_dump")
                .args(["--format=custom", "--file"])
                .arg(&dump)
                .arg(&app.db.url)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let fresh = TestDb::fresh(backend).await;
            let out = Command::new("pg_restore")
                .args(["--no-owner", "--dbname", &fresh.url])
                .arg(&dump)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            fresh
        }
        Backend::Sqlite => {
            let copy = backup_dir.path().join("portal-backup.db");
            let mut conn = app.db.sqlite().await;
            sqlx::query(&format!("VACUUM INTO '{}'", copy.display()))
                .execute(&mut conn)
                .await
                .unwrap();
            let fresh = TestDb::fresh(backend).await;
            std::fs::copy(&copy, fresh.data_dir.path().join("portal.db")).unwrap();
            // The key that seals secrets at rest travels with the backup (kept apart).
            std::fs::copy(
                app.db.data_dir.path().join("secret.key"),
                fresh.data_dir.path().join("secret.key"),
            )
            .unwrap();
            fresh
        }
    };
    drop(app);

    let node = TestApp::spawn_on(Arc::new(restored), |_| {});
    // A new browser window on the same phone (its passkey) against the restored node.
    let b = m.browser.private_window(&node);
    assert_eq!(b.get("/login-methods").await.status, 303);
    let next = crate::passkeys::login(&b, &m.user_id, &m.password).await;
    let home = b.follow(next).await;
    assert_eq!(home.status, 200, "{}", home.summary());
    assert_eq!(b.get("/login-methods").await.status, 200);
}
