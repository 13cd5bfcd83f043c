//! Host → tenant resolution, cached.
//!
//! `Host: daiwakenpo.localhost:8080` selects the tenant with slug `daiwakenpo` when the base
//! domain is `localhost`; any other host name is looked up among the tenants' aliases. Both
//! are one indexed query on a miss and a hash lookup after that, whatever the number of
//! tenants. Unknown hosts are cached too, so random `Host` headers cannot reach the database
//! more than once each.
//!
//! A change to a tenant drops that tenant's entries only (and the cached unknown hosts, one
//! of which it may now serve); the other tenants stay cached. Changes are learned two ways:
//! on PostgreSQL each node LISTENs for the id of every changed tenant on a connection of its
//! own; and every node polls for tenants whose generation moved every `tenant_refresh_ms`,
//! the only way on SQLite and the safety net on PostgreSQL.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use super::Tenant;
use crate::store::{Store, StoreResult};

/// Host names kept: every tenant's own host and aliases, and unknown hosts asked for.
const CACHE_CAPACITY: u64 = 100_000;

pub struct TenantRegistry {
    store: Store,
    base_suffix: String,
    cache: Cache<String, Option<Arc<Tenant>>>,
    generation: AtomicI64,
}

impl TenantRegistry {
    pub async fn new(store: Store, base_domain: &str) -> StoreResult<Arc<Self>> {
        let generation = store.tenant_generation().await?;
        Ok(Arc::new(Self {
            store,
            base_suffix: format!(".{base_domain}"),
            cache: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .support_invalidation_closures()
                .build(),
            generation: AtomicI64::new(generation),
        }))
    }

    /// The tenant served at this `Host` header value, enabled or not.
    pub async fn resolve(&self, host_header: &str) -> StoreResult<Option<Arc<Tenant>>> {
        let Some(host) = normalize_host(host_header) else {
            return Ok(None);
        };
        let store = &self.store;
        let slug = host
            .strip_suffix(self.base_suffix.as_str())
            // The printed guides address members to `www.<slug>.<base domain>`.
            .map(|label| label.strip_prefix("www.").unwrap_or(label))
            .filter(|label| !label.is_empty() && !label.contains('.'))
            .map(str::to_owned);
        let found = self
            .cache
            .try_get_with(host.clone(), async move {
                let tenant = match slug {
                    Some(slug) => store.tenant_by_slug(&slug).await?,
                    None => store.tenant_by_alias(&host).await?,
                };
                Ok::<_, crate::store::StoreError>(tenant.map(Arc::new))
            })
            .await
            .map_err(|e| match Arc::try_unwrap(e) {
                Ok(e) => e,
                Err(e) => crate::store::StoreError::Corrupt(e.to_string()),
            })?;
        Ok(found)
    }

    /// Drops the cached entries of the tenants that changed since the last check. Returns
    /// how many tenants changed.
    pub async fn refresh(&self) -> StoreResult<usize> {
        let since = self.generation.load(Ordering::Acquire);
        let changed = self.store.tenants_changed_since(since).await?;
        if let Some(newest) = changed.iter().map(|(_, g)| *g).max() {
            self.generation.fetch_max(newest, Ordering::AcqRel);
            let ids: Vec<String> = changed.into_iter().map(|(id, _)| id).collect();
            self.forget(&ids);
            return Ok(ids.len());
        }
        Ok(0)
    }

    /// Drops the cached entries of these tenants (by id) and every cached unknown host.
    pub fn forget(&self, ids: &[String]) {
        let ids: std::collections::HashSet<String> = ids.iter().cloned().collect();
        let dropped = self
            .cache
            .invalidate_entries_if(move |_, tenant| match tenant {
                Some(t) => ids.contains(t.id.as_str()),
                None => true,
            });
        if dropped.is_err() {
            // Closures are enabled at build time; should that ever change, drop everything.
            self.cache.invalidate_all();
        }
    }

    /// Drops every cached tenant (after a lost notification connection, when changes may
    /// have been missed).
    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }

    /// How many host names are cached (known and unknown), for metrics and benchmarks.
    pub fn cached(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Keeps the cache in step with the database until the process ends.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) {
        let registry = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match registry.refresh().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(tenants = n, "tenant definitions changed"),
                    Err(e) => tracing::warn!(error = %e, "checking tenant definitions failed"),
                }
            }
        });
        if let Some(pool) = self.store.postgres().cloned() {
            let registry = Arc::clone(self);
            tokio::spawn(async move { registry.listen(pool).await });
        }
    }

    /// PostgreSQL: drops a tenant's entries as soon as its change is announced. After a
    /// lost connection it listens again and drops everything, since changes may have been
    /// missed meanwhile.
    async fn listen(self: Arc<Self>, pool: sqlx::PgPool) {
        use sqlx::postgres::PgListener;
        let channel = crate::store::TENANT_CHANNEL;
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(error) => {
                    tracing::warn!(%error, "listening for tenant changes failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(error) = listener.listen(channel).await {
                tracing::warn!(%error, "listening for tenant changes failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Whatever changed before this connection listened is fetched afresh.
            self.forget_all();
            loop {
                match listener.try_recv().await {
                    Ok(Some(note)) => self.forget(&[note.payload().to_owned()]),
                    Ok(None) => {
                        tracing::warn!("tenant change notifications interrupted; listening again");
                        self.forget_all();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "tenant change notifications failed; listening again");
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The host name of a `Host` header: lower case, without port or trailing dot. `None` for
/// anything that is not a plain DNS name (IP literals, odd characters, empty).
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        return None; // IPv6 literal: never a tenant
    }
    let host = match raw.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => raw,
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    crate::config::is_hostname(&host).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    /// A change to one tenant drops its entries and the unknown hosts, nothing else.
    #[tokio::test]
    async fn forgetting_one_tenant_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = crate::config::Config {
            data_dir: dir.path().to_owned(),
            ..Default::default()
        };
        let store = crate::store::Store::connect(&config).await.unwrap();
        store.migrate().await.unwrap();
        crate::startup::import_seed_tenants(&store, &root.join("tenants"))
            .await
            .unwrap();
        let registry = super::TenantRegistry::new(store.clone(), "localhost")
            .await
            .unwrap();
        let daiwa = registry
            .resolve("daiwakenpo.localhost")
            .await
            .unwrap()
            .unwrap();
        registry
            .resolve("kanekakenpo.localhost")
            .await
            .unwrap()
            .unwrap();
        registry
            .resolve("www.kanekakenpo.localhost")
            .await
            .unwrap()
            .unwrap();
        assert!(registry
            .resolve("nowhere.localhost")
            .await
            .unwrap()
            .is_none());
        registry.forget(&[daiwa.id.to_string()]);
        registry.cache.run_pending_tasks().await;
        assert!(!registry.cache.contains_key("daiwakenpo.localhost"));
        assert!(!registry.cache.contains_key("nowhere.localhost"));
        assert!(registry.cache.contains_key("kanekakenpo.localhost"));
        assert!(registry.cache.contains_key("www.kanekakenpo.localhost"));

        // The poll finds exactly the tenant that changed.
        let mut file = daiwa.to_file();
        file.settings.welcome = "変わりました".into();
        store.apply_tenant(&file).await.unwrap();
        registry
            .resolve("daiwakenpo.localhost")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(registry.refresh().await.unwrap(), 1);
        registry.cache.run_pending_tasks().await;
        assert!(registry.cache.contains_key("kanekakenpo.localhost"));
        let daiwa = registry
            .resolve("daiwakenpo.localhost")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(daiwa.settings.welcome, "変わりました");
        assert_eq!(registry.refresh().await.unwrap(), 0);
    }

    #[test]
    fn host_forms() {
        let n = |h: &str| normalize_host(h);
        assert_eq!(
            n("daiwakenpo.localhost").as_deref(),
            Some("daiwakenpo.localhost")
        );
        assert_eq!(
            n("daiwakenpo.localhost:8080").as_deref(),
            Some("daiwakenpo.localhost")
        );
        assert_eq!(
            n("DaiwaKenpo.LOCALHOST").as_deref(),
            Some("daiwakenpo.localhost")
        );
        assert_eq!(
            n("daiwakenpo.localhost.").as_deref(),
            Some("daiwakenpo.localhost")
        );
        assert_eq!(
            n("daiwakenpo.localhost.:80").as_deref(),
            Some("daiwakenpo.localhost")
        );
        assert_eq!(n(""), None);
        assert_eq!(n("[::1]:8080"), None);
        assert_eq!(n("a b.localhost"), None);
        assert_eq!(n("daiwakenpo.localhost:x"), None);
        assert_eq!(n("daiwakenpo.localhost:"), None);
        assert_eq!(n("ダイワ.localhost"), None);
    }
}
