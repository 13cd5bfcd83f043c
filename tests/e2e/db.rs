//! Reading and changing the test database directly, on either backend: what a test checks
//! behind the HTTP surface (audit log, stored secrets) or sets up (an expired lock).

use sqlx::Row;

use crate::harness::TestDb;

/// A query parameter for either backend.
pub enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    Blob(&'a [u8]),
}

pub fn is_postgres(db: &TestDb) -> bool {
    db.url.starts_with("postgres")
}

/// Runs `sql` (placeholders `$1`, `$2`…) and returns every row, each column read as text:
/// select only TEXT columns or `CAST(… AS TEXT)`.
pub async fn rows(db: &TestDb, sql: &str, args: &[Arg<'_>]) -> Vec<Vec<Option<String>>> {
    macro_rules! run {
        ($conn:expr) => {{
            let mut conn = $conn;
            let mut q = sqlx::query(sql);
            for a in args {
                q = match a {
                    Arg::Text(s) => q.bind(*s),
                    Arg::Int(i) => q.bind(*i),
                    Arg::Blob(b) => q.bind(*b),
                };
            }
            q.fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| row.try_get::<Option<String>, _>(i).unwrap())
                        .collect()
                })
                .collect()
        }};
    }
    if is_postgres(db) {
        run!(db.postgres().await)
    } else {
        run!(db.sqlite().await)
    }
}

/// Runs a statement; returns the rows it touched.
pub async fn exec(db: &TestDb, sql: &str, args: &[Arg<'_>]) -> u64 {
    macro_rules! run {
        ($conn:expr) => {{
            let mut conn = $conn;
            let mut q = sqlx::query(sql);
            for a in args {
                q = match a {
                    Arg::Text(s) => q.bind(*s),
                    Arg::Int(i) => q.bind(*i),
                    Arg::Blob(b) => q.bind(*b),
                };
            }
            q.execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .rows_affected()
        }};
    }
    if is_postgres(db) {
        run!(db.postgres().await)
    } else {
        run!(db.sqlite().await)
    }
}

/// One text value.
pub async fn value(db: &TestDb, sql: &str, args: &[Arg<'_>]) -> Option<String> {
    rows(db, sql, args)
        .await
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
}

pub async fn count(db: &TestDb, sql: &str, args: &[Arg<'_>]) -> i64 {
    value(db, sql, args).await.unwrap().parse().unwrap()
}

/// The internal id of the member that now has `user_id` in `slug`.
pub async fn member_id(db: &TestDb, slug: &str, user_id: &str) -> String {
    value(
        db,
        "SELECT m.id FROM members m JOIN tenants t ON t.id = m.tenant_id \
         WHERE t.slug = $1 AND m.user_id = $2",
        &[Arg::Text(slug), Arg::Text(user_id)],
    )
    .await
    .unwrap_or_else(|| panic!("no member {user_id} in {slug}"))
}

/// Now, in the seconds the database stores.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
