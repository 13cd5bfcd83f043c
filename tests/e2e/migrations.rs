//! Migrations apply on both backends, once, and leave the schema the server needs.

use sqlx::Row;

use crate::harness::{on_both_backends, stderr, Backend, TestDb};

on_both_backends!(
    migrate_creates_the_schema_once,
    members_written_before_search_keys_get_them_at_the_next_start,
);

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

/// Rows written before migration 0009 have no search key: the next `migrate` (every start)
/// computes it, and the name search finds them; rows that have one are left alone.
async fn members_written_before_search_keys_get_them_at_the_next_start(backend: Backend) {
    use crate::db::{exec, rows, Arg};
    let db = TestDb::fresh(backend).await;
    let path = crate::harness::repo_root().join("tenants/daiwakenpo.toml");
    let out = db.run(&["tenant", "apply", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let old = crate::browser_like::add_member(
        &db,
        "daiwakenpo",
        "山田　はなこ",
        "1980-04-01",
        "old@example.jp",
    );
    let new = crate::browser_like::add_member(
        &db,
        "daiwakenpo",
        "佐藤 一郎",
        "1981-05-02",
        "new@example.jp",
    );
    // What a database upgraded from before the key looks like.
    let cleared = exec(
        &db,
        "UPDATE members SET search_name = '' WHERE user_id = $1",
        &[Arg::Text(&old.user_id)],
    )
    .await;
    assert_eq!(cleared, 1);
    let out = db.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let keys = rows(
        &db,
        "SELECT user_id, search_name FROM members ORDER BY user_id",
        &[],
    )
    .await;
    let key_of = |user_id: &str| {
        keys.iter()
            .find(|r| r[0].as_deref() == Some(user_id))
            .and_then(|r| r[1].clone())
            .unwrap()
    };
    assert_eq!(key_of(&old.user_id), "山田ハナコ\n");
    assert_eq!(key_of(&new.user_id), "佐藤一郎\n");
}
