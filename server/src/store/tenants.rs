//! Tenant definitions: the `tenants` row with its hosts, service icons and terms.

use sqlx::FromRow;

use super::revisions::{record_revision, NewRevision};
use super::{now_unix, on_pool, Pool, Store, StoreError, StoreResult};
use crate::tenant::{
    Definition, ServiceIcon, Tenant, TenantFile, TenantId, TenantSettings, Terms, TermsVersion,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Created,
    Updated,
    Unchanged,
}

#[derive(FromRow)]
struct TenantRow {
    id: String,
    slug: String,
    display_name: String,
    enabled: bool,
    settings: String,
    current_terms_version: String,
    revision: i64,
}

#[derive(FromRow)]
struct IconRow {
    id: String,
    title: String,
    image: String,
    url: String,
    visible: bool,
}

#[derive(FromRow)]
struct TermsRow {
    version: String,
    published_at: String,
    title: String,
    body: String,
}

/// The PostgreSQL channel that carries the id of each changed tenant.
pub const TENANT_CHANNEL: &str = "portal_tenants";

/// Inside the transaction of a tenant change: moves the global generation and stamps the
/// tenant with it, so polling nodes find exactly the tenants that changed.
macro_rules! tenant_changed {
    ($c:expr, $id:expr) => {{
        let generation: i64 = sqlx::query_scalar(
            "UPDATE tenant_generation SET generation = generation + 1 WHERE id = 1 \
             RETURNING generation",
        )
        .fetch_one(&mut *$c)
        .await?;
        sqlx::query("UPDATE tenants SET generation = $2 WHERE id = $1")
            .bind($id)
            .bind(generation)
            .execute(&mut *$c)
            .await?;
    }};
}
pub(crate) use tenant_changed;

const TENANT_COLUMNS: &str =
    "id, slug, display_name, enabled, settings, current_terms_version, revision";

impl Store {
    pub async fn tenant_count(&self) -> StoreResult<i64> {
        let n: i64 = on_pool!(&self.pool, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM tenants").fetch_one(p).await
        })?;
        Ok(n)
    }

    /// The tenants changed after generation `since`, with the generation of their last
    /// change.
    pub async fn tenants_changed_since(&self, since: i64) -> StoreResult<Vec<(String, i64)>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as("SELECT id, generation FROM tenants WHERE generation > $1")
                .bind(since)
                .fetch_all(p)
                .await
        })?;
        Ok(rows)
    }

    /// Tells every node listening (PostgreSQL) that a tenant changed; call after the
    /// change committed. Nodes on SQLite, and any node that missed this, see the change at
    /// their next poll of [`Store::tenants_changed_since`].
    pub async fn notify_tenant_changed(&self, id: &str) {
        if let Pool::Postgres(p) = &self.pool {
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(TENANT_CHANNEL)
                .bind(id)
                .execute(p)
                .await;
            if let Err(error) = sent {
                tracing::warn!(%error, "announcing a tenant change failed; nodes see it at their next poll");
            }
        }
    }

    /// Enables or disables a tenant; false when there is no such tenant.
    pub async fn set_tenant_enabled(
        &self,
        slug: &str,
        enabled: bool,
    ) -> StoreResult<Option<String>> {
        let mut tx = self.begin().await?;
        let id = super::on_tx!(&mut tx, c => {
            let id: Option<String> = sqlx::query_scalar(
                "UPDATE tenants SET enabled = $2, updated_at = $3 WHERE slug = $1 RETURNING id",
            )
            .bind(slug)
            .bind(enabled)
            .bind(now_unix())
            .fetch_optional(&mut *c)
            .await?;
            if let Some(id) = &id {
                tenant_changed!(c, id.as_str());
            }
            Ok::<_, sqlx::Error>(id)
        })?;
        tx.commit().await?;
        if let Some(id) = &id {
            self.notify_tenant_changed(id).await;
        }
        Ok(id)
    }

    /// Moves whenever any tenant definition changes.
    pub async fn tenant_generation(&self) -> StoreResult<i64> {
        let n: i64 = on_pool!(&self.pool, p => {
            sqlx::query_scalar("SELECT generation FROM tenant_generation WHERE id = 1")
                .fetch_one(p)
                .await
        })?;
        Ok(n)
    }

    pub async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1");
        let row: Option<TenantRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(slug).fetch_optional(p).await
        })?;
        match row {
            Some(row) => Ok(Some(self.complete(row).await?)),
            None => Ok(None),
        }
    }

    pub async fn tenant_by_id(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
        let row: Option<TenantRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await
        })?;
        match row {
            Some(row) => Ok(Some(self.complete(row).await?)),
            None => Ok(None),
        }
    }

    /// The tenant that lists `host` among its extra host names.
    pub async fn tenant_by_alias(&self, host: &str) -> StoreResult<Option<Tenant>> {
        let sql = format!(
            "SELECT {} FROM tenants t JOIN tenant_hosts h ON h.tenant_id = t.id WHERE h.host = $1",
            TENANT_COLUMNS
                .split(", ")
                .map(|c| format!("t.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row: Option<TenantRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(host).fetch_optional(p).await
        })?;
        match row {
            Some(row) => Ok(Some(self.complete(row).await?)),
            None => Ok(None),
        }
    }

    pub async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY slug");
        let rows: Vec<TenantRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).fetch_all(p).await
        })?;
        let mut tenants = Vec::with_capacity(rows.len());
        for row in rows {
            tenants.push(self.complete(row).await?);
        }
        Ok(tenants)
    }

    async fn complete(&self, row: TenantRow) -> StoreResult<Tenant> {
        let id = row.id.clone();
        let (aliases, icons, terms): (Vec<String>, Vec<IconRow>, Vec<TermsRow>) = on_pool!(&self.pool, p => {
            let aliases = sqlx::query_scalar(
                "SELECT host FROM tenant_hosts WHERE tenant_id = $1 ORDER BY host",
            )
            .bind(&id)
            .fetch_all(p)
            .await?;
            let icons = sqlx::query_as(
                "SELECT id, title, image, url, visible FROM service_icons \
                 WHERE tenant_id = $1 ORDER BY position",
            )
            .bind(&id)
            .fetch_all(p)
            .await?;
            let terms = sqlx::query_as(
                "SELECT version, published_at, title, body FROM terms_versions \
                 WHERE tenant_id = $1 ORDER BY position",
            )
            .bind(&id)
            .fetch_all(p)
            .await?;
            Ok::<_, sqlx::Error>((aliases, icons, terms))
        })?;
        let settings: TenantSettings = serde_json::from_str(&row.settings)
            .map_err(|e| StoreError::Corrupt(format!("settings of tenant {}: {e}", row.slug)))?;
        Ok(Tenant {
            id: TenantId::from_db(row.id),
            slug: row.slug,
            display_name: row.display_name,
            enabled: row.enabled,
            aliases,
            settings,
            services: icons
                .into_iter()
                .map(|r| ServiceIcon {
                    id: r.id,
                    title: r.title,
                    image: r.image,
                    url: r.url,
                    visible: r.visible,
                })
                .collect(),
            terms: Terms {
                current: row.current_terms_version,
                versions: terms
                    .into_iter()
                    .map(|r| TermsVersion {
                        version: r.version,
                        published_at: r.published_at,
                        title: r.title,
                        body: r.body,
                    })
                    .collect(),
            },
            revision: row.revision,
            page_key: Default::default(),
        })
    }

    /// Creates or replaces a tenant from a validated definition, in one transaction.
    /// Applying what is already stored changes nothing.
    pub async fn apply_tenant(&self, file: &TenantFile) -> StoreResult<ApplyOutcome> {
        let existing = self.tenant_by_slug(&file.slug).await?;
        if let Some(tenant) = &existing {
            if &tenant.to_file() == file {
                return Ok(ApplyOutcome::Unchanged);
            }
        }
        let settings = serde_json::to_string(&file.settings)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = now_unix();
        let (id, outcome) = match &existing {
            Some(t) => (t.id.clone(), ApplyOutcome::Updated),
            None => (TenantId::generate(), ApplyOutcome::Created),
        };
        let id = id.as_str();
        let before = existing.as_ref().map(Tenant::definition);
        let after = Definition {
            settings: file.settings.clone(),
            services: file.services.clone(),
        };

        // The write lock is taken before the first read (BEGIN IMMEDIATE on SQLite): two
        // applies at once then wait for each other instead of one failing as "locked".
        let mut tx = self.begin().await?;
        super::on_tx!(&mut tx, c => {
            for host in &file.hosts {
                let owner: Option<String> = sqlx::query_scalar(
                    "SELECT t.slug FROM tenant_hosts h JOIN tenants t ON t.id = h.tenant_id \
                     WHERE h.host = $1 AND h.tenant_id <> $2",
                )
                .bind(host)
                .bind(id)
                .fetch_optional(&mut *c)
                .await?;
                if let Some(owner) = owner {
                    return Err(StoreError::Conflict(format!(
                        "hosts: '{host}' is already a host of tenant '{owner}'"
                    )));
                }
            }
            // Who published each terms version survives the rewrite of the table.
            let published: Vec<(String, String, Option<i64>)> = sqlx::query_as(
                "SELECT version, published_by, published_unix FROM terms_versions \
                 WHERE tenant_id = $1",
            )
            .bind(id)
            .fetch_all(&mut *c)
            .await?;
            if existing.is_some() {
                sqlx::query(
                    "UPDATE tenants SET display_name = $2, enabled = $3, settings = $4, \
                     current_terms_version = $5, revision = revision + 1, updated_at = $6 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(&file.display_name)
                .bind(file.enabled)
                .bind(&settings)
                .bind(&file.terms.current)
                .bind(now)
                .execute(&mut *c)
                .await?;
                for table in ["tenant_hosts", "service_icons", "terms_versions"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                }
            } else {
                sqlx::query(
                    "INSERT INTO tenants (id, slug, display_name, enabled, settings, \
                     current_terms_version, revision, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)",
                )
                .bind(id)
                .bind(&file.slug)
                .bind(&file.display_name)
                .bind(file.enabled)
                .bind(&settings)
                .bind(&file.terms.current)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            for host in &file.hosts {
                sqlx::query("INSERT INTO tenant_hosts (host, tenant_id) VALUES ($1, $2)")
                    .bind(host)
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
            }
            for (position, icon) in file.services.iter().enumerate() {
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
            for (position, terms) in file.terms.versions.iter().enumerate() {
                let (by, at) = published
                    .iter()
                    .find(|(v, _, _)| v == &terms.version)
                    .map_or(("file", None), |(_, by, at)| (by.as_str(), *at));
                sqlx::query(
                    "INSERT INTO terms_versions (tenant_id, version, position, published_at, title, \
                     body, published_by, published_unix) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(id)
                .bind(&terms.version)
                .bind(position as i64)
                .bind(&terms.published_at)
                .bind(&terms.title)
                .bind(&terms.body)
                .bind(by)
                .bind(at)
                .execute(&mut *c)
                .await?;
            }
            // The settings and service menu as published: a revision by the file.
            if before.as_ref() != Some(&after) {
                let rev = NewRevision {
                    before: before.as_ref(),
                    after: &after,
                    by: "file",
                    restored_from: None,
                };
                record_revision!(c, id, &rev, now);
            }
            tenant_changed!(c, id);
            Ok::<_, StoreError>(())
        })?;
        tx.commit().await?;
        self.notify_tenant_changed(id).await;
        Ok(outcome)
    }
}
