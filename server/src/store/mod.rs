//! The data-access layer: the only place SQL lives.
//!
//! One [`Store`] serves SQLite (embedded default) and PostgreSQL. Queries are written once
//! in SQL both understand (`$n` parameters, `BIGINT` times, `TEXT` ids); [`on_pool!`] runs
//! the same code against whichever pool is configured, so each statement is type-checked
//! for both backends. SQL that has to differ per backend is matched on [`Pool`] here.

mod admins;
mod assets;
mod audit;
mod devices;
mod flows;
mod imports;
mod mail;
mod members;
mod operators;
pub(crate) mod revisions;
mod sessions;
mod sweep;
mod tenants;
mod terms;
mod throttle;
mod tokens;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

pub use admins::{Admin, AdminRole, AdminSession, AdminState, ApiToken, NewApiToken, StoredLetter};
pub use audit::{Actor, AuditEvent, AuditFilter, AuditRow, MemberEvent};
pub use devices::{Device, NewDevice};
pub use imports::{ImportRow, NewImport};
pub use mail::{MailCounts, NewMail, OutboxMail};
pub use members::{
    LoginFlow, Member, MemberSearch, MemberState, MemberSummary, NewFlow, NewMember, NewSession,
    Session, SessionClient,
};
pub use operators::OperatorToken;
pub use revisions::{Draft, Revision};
pub use sessions::SessionEntry;
pub use tenants::{ApplyOutcome, TENANT_CHANNEL};
pub use terms::{TermsDraft, TermsEvidence, TermsPublication};
pub use tokens::{EmailChanged, LiveToken};

use crate::config::{Config, DatabaseKind};

/// Who owns a device or a sign-in flow: a member or an admin of the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    Member(&'a str),
    Admin(&'a str),
}

impl<'a> Owner<'a> {
    pub fn member(id: &'a crate::ids::MemberId) -> Self {
        Owner::Member(id.as_str())
    }

    pub fn admin(id: &'a crate::ids::AdminId) -> Self {
        Owner::Admin(id.as_str())
    }

    pub fn id(&self) -> &'a str {
        match self {
            Owner::Member(id) | Owner::Admin(id) => id,
        }
    }

    /// The table of the owner's account.
    fn account_table(&self) -> &'static str {
        match self {
            Owner::Member(_) => "members",
            Owner::Admin(_) => "admins",
        }
    }

    /// The column naming the owner in tables that hold rows of either kind.
    fn column(&self) -> &'static str {
        match self {
            Owner::Member(_) => "member_id",
            Owner::Admin(_) => "admin_id",
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to the concrete pool, for either backend.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A transaction on either backend. State changes and the mail they cause are written in
/// one, so they commit together or not at all.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$c` bound to the transaction's connection, for either backend.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Tx {
    /// Stores a one-time token (its hash) for a member.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_token(
        &mut self,
        tenant: &crate::tenant::TenantId,
        member_id: &str,
        token_hash: &str,
        purpose: &str,
        payload: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_tx!(self, c => {
            sqlx::query(
                "INSERT INTO one_time_tokens (token_hash, tenant_id, member_id, purpose, payload, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(token_hash)
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(purpose)
            .bind(payload)
            .bind(now_unix())
            .bind(expires_at)
            .execute(c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The advisory lock key of the seed import.
const SEED_LOCK: i64 = 0x706f_7274_616c_0001;

/// See [`Store::lock_seeding`].
pub struct SeedLock(sqlx::pool::PoolConnection<sqlx::Postgres>);

impl SeedLock {
    pub async fn release(mut self) {
        let released = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(SEED_LOCK)
            .execute(&mut *self.0)
            .await;
        if released.is_err() {
            // The lock must not stay with a pooled connection: close this one.
            let _ = self.0.detach();
        }
    }
}

/// See [`Store::migration_status`].
#[derive(Debug, Clone, Default)]
pub struct MigrationStatus {
    pub pending: Vec<i64>,
    pub unknown: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Opens the configured database, creating the SQLite file and its folder if missing.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        use anyhow::Context;
        let url = config.database_url();
        let max = config.database_max_connections;
        let pool = match config.database_kind()? {
            DatabaseKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(&url)
                    .with_context(|| "PORTAL_DATABASE_URL: not a SQLite URL".to_string())?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                if let Some(dir) = options.get_filename().parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                    }
                }
                // An embedded database cannot drop a connection: no round trip to the
                // connection's worker thread to test it before each use.
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("opening {url}"))?;
                Pool::Sqlite(pool)
            }
            DatabaseKind::Postgres => {
                let options = PgConnectOptions::from_str(&url)
                    .with_context(|| "PORTAL_DATABASE_URL: not a PostgreSQL URL".to_string())?;
                let pool = PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .context("connecting to PostgreSQL (PORTAL_DATABASE_URL)")?;
                Pool::Postgres(pool)
            }
        };
        Ok(Self { pool })
    }

    /// The PostgreSQL pool, for what only PostgreSQL offers (LISTEN).
    pub fn postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    pub fn kind(&self) -> DatabaseKind {
        match self.pool {
            Pool::Sqlite(_) => DatabaseKind::Sqlite,
            Pool::Postgres(_) => DatabaseKind::Postgres,
        }
    }

    /// Applies the migrations in `migrations/` that have not run yet, then fills in what
    /// they leave to the server (members' search keys).
    pub async fn migrate(&self) -> StoreResult<()> {
        let status = self.migration_status().await?;
        if let Some(newest) = status.unknown.iter().max() {
            return Err(StoreError::Corrupt(format!(
                "the database was migrated by a newer version of portal (migration {newest}); \
                 run that version, or restore a backup made before it"
            )));
        }
        // On PostgreSQL the migrator holds an advisory lock while it runs, so nodes that
        // start together apply each migration once.
        on_pool!(&self.pool, p => MIGRATOR.run(p).await)?;
        let filled = self.fill_search_names().await?;
        if filled > 0 {
            tracing::info!(members = filled, "search keys computed");
        }
        Ok(())
    }

    /// PostgreSQL: holds an advisory lock while the seed tenants are imported, so nodes
    /// starting together import them once. `None` on SQLite.
    pub async fn lock_seeding(&self) -> StoreResult<Option<SeedLock>> {
        let Pool::Postgres(p) = &self.pool else {
            return Ok(None);
        };
        let mut conn = p.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(SEED_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(Some(SeedLock(conn)))
    }

    /// Which of this binary's migrations the database lacks, and which migrations it has
    /// that this binary does not know (applied by a newer version).
    pub async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        let exists: bool = match &self.pool {
            Pool::Sqlite(p) => sqlx::query_scalar(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(p)
            .await?,
            Pool::Postgres(p) => sqlx::query_scalar(
                "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
            )
            .fetch_one(p)
            .await?,
        };
        let applied: Vec<i64> = if exists {
            on_pool!(&self.pool, p => {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                    .fetch_all(p)
                    .await
            })?
        } else {
            Vec::new()
        };
        let known: Vec<i64> = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .collect();
        Ok(MigrationStatus {
            pending: known
                .iter()
                .filter(|v| !applied.contains(v))
                .copied()
                .collect(),
            unknown: applied
                .iter()
                .filter(|v| !known.contains(v))
                .copied()
                .collect(),
        })
    }

    /// Refreshes the query planner's statistics where they are stale, so that searches
    /// keep choosing an index after the data changed shape (a roster import, months of
    /// growth). SQLite keeps none by itself (`PRAGMA optimize` analyses what needs it);
    /// PostgreSQL's autovacuum does in time, and this does it for the members now (the
    /// vacuum also lets searches read `members_search` without visiting the rows).
    ///
    /// On SQLite only the per-index averages (`sqlite_stat1`) are kept. The bundled SQLite
    /// is built with `SQLITE_ENABLE_STAT4`, and once `sqlite_stat4` holds samples for an
    /// index, every statement whose plan looked at a bound value is prepared again each
    /// time it runs with a new one: the session lookup of every signed-in page spent a
    /// quarter of its time re-parsing its SQL. The averages are what the searches need.
    /// A connection that had already loaded samples drops them when the pool retires it.
    pub async fn refresh_statistics(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(p) => {
                let mut c = p.acquire().await?;
                sqlx::query("PRAGMA optimize=0x10002")
                    .execute(&mut *c)
                    .await?;
                let stat4: Option<i64> = sqlx::query_scalar(
                    "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat4'",
                )
                .fetch_optional(&mut *c)
                .await?;
                if stat4.is_some() {
                    sqlx::query("DELETE FROM sqlite_stat4")
                        .execute(&mut *c)
                        .await?;
                    // Reloads this connection's statistics without the samples.
                    sqlx::query("ANALYZE sqlite_schema")
                        .execute(&mut *c)
                        .await?;
                }
            }
            Pool::Postgres(p) => {
                sqlx::query("VACUUM (ANALYZE) members").execute(p).await?;
            }
        }
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(&self.pool, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match &self.pool {
            // Take the write lock up front: a read that later writes would fail with
            // SQLITE_BUSY_SNAPSHOT if another connection wrote in between.
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    pub async fn close(&self) {
        on_pool!(&self.pool, p => p.close().await)
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
