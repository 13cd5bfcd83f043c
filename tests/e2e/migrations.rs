//! Migrations apply on both backends, once, and leave the schema the server needs.

use sqlx::Row;

use crate::harness::{on_both_backends, stderr, Backend, TestDb};

on_both_backends!(migrate_creates_the_schema_once);

const TABLES: [&str; 5] = [
    "tenants",
    "tenant_hosts",
    "service_icons",
    "terms_versions",
    "tenant_generation",
];

async fn migrate_creates_the_schema_once(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    for _ in 0..2 {
        let out = db.run(&["migrate"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (tables, applied): (Vec<String>, i64) = match backend {
        Backend::Sqlite => {
            let mut conn = db.sqlite().await;
            let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
            let applied = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            (
                rows.iter().map(|r| r.get::<String, _>(0)).collect(),
                applied,
            )
        }
        Backend::Postgres => {
            let mut conn = db.postgres().await;
            let rows = sqlx::query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            let applied = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            (
                rows.iter().map(|r| r.get::<String, _>(0)).collect(),
                applied,
            )
        }
    };
    for table in TABLES {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing in {tables:?}"
        );
    }
    let files = std::fs::read_dir(crate::harness::repo_root().join("migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64;
    assert_eq!(applied, files, "each migration applied exactly once");
}
