//! Published revisions of a society's definition and its one draft.

use sqlx::FromRow;

use super::{now_unix, on_pool, on_tx, Store, StoreError, StoreResult};
use crate::tenant::{Change, Definition, TenantId};

/// A published revision, as the history lists it.
#[derive(Debug, Clone)]
pub struct Revision {
    pub number: i64,
    pub definition: Definition,
    pub changes: Vec<Change>,
    pub published_at: i64,
    /// `admin:<id>` or `file`.
    pub published_by: String,
    pub restored_from: Option<i64>,
}

/// The society's draft: the whole definition as edited so far.
#[derive(Debug, Clone)]
pub struct Draft {
    pub definition: Definition,
    /// The tenant's revision counter when the draft was started.
    pub base_revision: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

#[derive(FromRow)]
struct RevisionRow {
    number: i64,
    definition: String,
    changes: String,
    published_at: i64,
    published_by: String,
    restored_from: Option<i64>,
}

#[derive(FromRow)]
struct DraftRow {
    definition: String,
    base_revision: i64,
    updated_at: i64,
    updated_by: String,
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl TryFrom<RevisionRow> for Revision {
    type Error = StoreError;
    fn try_from(r: RevisionRow) -> StoreResult<Self> {
        Ok(Revision {
            number: r.number,
            definition: serde_json::from_str(&r.definition).map_err(|e| corrupt("revision", e))?,
            changes: serde_json::from_str(&r.changes).map_err(|e| corrupt("revision", e))?,
            published_at: r.published_at,
            published_by: r.published_by,
            restored_from: r.restored_from,
        })
    }
}

/// A revision to record in the transaction that publishes it.
pub(crate) struct NewRevision<'a> {
    /// The definition live until now, recorded as the first revision when the tenant has
    /// none yet (a tenant created before revisions were kept).
    pub before: Option<&'a Definition>,
    pub after: &'a Definition,
    pub by: &'a str,
    pub restored_from: Option<i64>,
}

/// Records `$rev` (a [`NewRevision`]) for tenant `$id` on connection `$c`, inside an open
/// transaction; evaluates to the new revision's number.
macro_rules! record_revision {
    ($c:expr, $id:expr, $rev:expr, $now:expr) => {{
        let rev: &$crate::store::revisions::NewRevision<'_> = $rev;
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(number) FROM tenant_revisions WHERE tenant_id = $1")
                .bind($id)
                .fetch_one(&mut *$c)
                .await?;
        let mut next = last.unwrap_or(0) + 1;
        if let (None, Some(before)) = (last, rev.before) {
            sqlx::query(
                "INSERT INTO tenant_revisions (tenant_id, number, definition, changes, \
                 published_at, published_by, restored_from) VALUES ($1, 1, $2, '[]', $3, 'file', NULL)",
            )
            .bind($id)
            .bind(serde_json::to_string(before).expect("a definition serialises"))
            .bind($now)
            .execute(&mut *$c)
            .await?;
            next = 2;
        }
        let changes = match rev.before {
            Some(before) => rev.after.changes_from(before),
            None => Vec::new(),
        };
        sqlx::query(
            "INSERT INTO tenant_revisions (tenant_id, number, definition, changes, \
             published_at, published_by, restored_from) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($id)
        .bind(next)
        .bind(serde_json::to_string(rev.after).expect("a definition serialises"))
        .bind(serde_json::to_string(&changes).expect("changes serialise"))
        .bind($now)
        .bind(rev.by)
        .bind(rev.restored_from)
        .execute(&mut *$c)
        .await?;
        next
    }};
}
pub(crate) use record_revision;

impl Store {
    /// Every published revision of the tenant, newest first.
    pub async fn tenant_revisions(&self, tenant: &TenantId) -> StoreResult<Vec<Revision>> {
        let rows: Vec<RevisionRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT number, definition, changes, published_at, published_by, restored_from \
                 FROM tenant_revisions WHERE tenant_id = $1 ORDER BY number DESC",
            )
            .bind(tenant.as_str())
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(Revision::try_from).collect()
    }

    pub async fn tenant_revision(
        &self,
        tenant: &TenantId,
        number: i64,
    ) -> StoreResult<Option<Revision>> {
        let row: Option<RevisionRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT number, definition, changes, published_at, published_by, restored_from \
                 FROM tenant_revisions WHERE tenant_id = $1 AND number = $2",
            )
            .bind(tenant.as_str())
            .bind(number)
            .fetch_optional(p)
            .await
        })?;
        row.map(Revision::try_from).transpose()
    }

    pub async fn tenant_draft(&self, tenant: &TenantId) -> StoreResult<Option<Draft>> {
        let row: Option<DraftRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT definition, base_revision, updated_at, updated_by FROM tenant_drafts \
                 WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .fetch_optional(p)
            .await
        })?;
        row.map(|r| {
            Ok(Draft {
                definition: serde_json::from_str(&r.definition).map_err(|e| corrupt("draft", e))?,
                base_revision: r.base_revision,
                updated_at: r.updated_at,
                updated_by: r.updated_by,
            })
        })
        .transpose()
    }

    /// Stores the tenant's draft, replacing the one there was.
    pub async fn save_tenant_draft(
        &self,
        tenant: &TenantId,
        definition: &Definition,
        base_revision: i64,
        by: &str,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(definition).expect("a definition serialises");
        let now = now_unix();
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO tenant_drafts (tenant_id, definition, base_revision, updated_at, updated_by) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id) DO UPDATE SET definition = excluded.definition, \
                 base_revision = excluded.base_revision, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
            )
            .bind(tenant.as_str())
            .bind(&json)
            .bind(base_revision)
            .bind(now)
            .bind(by)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Throws the draft away; true if there was one.
    pub async fn discard_tenant_draft(&self, tenant: &TenantId) -> StoreResult<bool> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query("DELETE FROM tenant_drafts WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    /// Makes a society's `definition` live as a new revision, in one transaction with the
    /// revision's record and the end of the draft; every node sees it at its next poll.
    /// The operator-owned fields ([`crate::tenant::definition::OPERATOR_FIELDS`]) are
    /// never written: they stay as the database has them. Returns the revision's number.
    pub async fn publish_definition(
        &self,
        tenant: &TenantId,
        before: &Definition,
        definition: &Definition,
        by: &str,
        restored_from: Option<i64>,
    ) -> StoreResult<i64> {
        let now = now_unix();
        let id = tenant.as_str();
        let mut tx = self.begin().await?;
        let number = on_tx!(&mut tx, c => {
            // The society publishes only what it owns: the operator-owned fields are
            // taken from the row as it is now, with the row locked first (a no-op write),
            // so an operator's change made a moment ago, on any node, is kept.
            sqlx::query("UPDATE tenants SET updated_at = updated_at WHERE id = $1")
                .bind(id)
                .execute(&mut *c)
                .await?;
            let current: Option<String> =
                sqlx::query_scalar("SELECT settings FROM tenants WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?;
            let current: crate::tenant::TenantSettings = current
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_else(|| before.settings.clone());
            let before = Definition {
                settings: before.settings.with_operator_fields_of(&current),
                services: before.services.clone(),
            };
            let definition = &Definition {
                settings: definition.settings.with_operator_fields_of(&current),
                services: definition.services.clone(),
            };
            let settings =
                serde_json::to_string(&definition.settings).expect("settings serialise");
            let rev = NewRevision {
                before: Some(&before),
                after: definition,
                by,
                restored_from,
            };
            sqlx::query(
                "UPDATE tenants SET settings = $2, revision = revision + 1, updated_at = $3 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&settings)
            .bind(now)
            .execute(&mut *c)
            .await?;
            sqlx::query("DELETE FROM service_icons WHERE tenant_id = $1")
                .bind(id)
                .execute(&mut *c)
                .await?;
            for (position, icon) in definition.services.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO service_icons (tenant_id, id, position, title, image, url, visible) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(&icon.id)
                .bind(position as i64)
                .bind(&icon.title)
                .bind(&icon.image)
                .bind(&icon.url)
                .bind(icon.visible)
                .execute(&mut *c)
                .await?;
            }
            let number = record_revision!(c, id, &rev, now);
            sqlx::query("DELETE FROM tenant_drafts WHERE tenant_id = $1")
                .bind(id)
                .execute(&mut *c)
                .await?;
            super::tenants::tenant_changed!(c, id);
            Ok::<_, sqlx::Error>(number)
        })?;
        tx.commit().await?;
        self.notify_tenant_changed(id).await;
        Ok(number)
    }
}
