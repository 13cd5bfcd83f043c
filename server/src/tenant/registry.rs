//! Host → tenant resolution, cached.
//!
//! `Host: daiwakenpo.localhost:8080` selects the tenant with slug `daiwakenpo` when the base
//! domain is `localhost`; any other host name is looked up among the tenants' aliases. Both
//! are one indexed query on a miss and a hash lookup after that, whatever the number of
//! tenants. Unknown hosts are cached too, so random `Host` headers cannot reach the database
//! more than once each. The cache is dropped whenever the tenant generation in the database
//! moves, which every node checks every `tenant_refresh_ms`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use super::Tenant;
use crate::store::{Store, StoreResult};

const CACHE_CAPACITY: u64 = 10_000;

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
            cache: Cache::builder().max_capacity(CACHE_CAPACITY).build(),
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

    /// Drops every cached tenant if the stored definitions changed since the last check.
    pub async fn refresh(&self) -> StoreResult<bool> {
        let now = self.store.tenant_generation().await?;
        let before = self.generation.swap(now, Ordering::AcqRel);
        if before != now {
            self.cache.invalidate_all();
            return Ok(true);
        }
        Ok(false)
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
                    Ok(true) => tracing::info!("tenant definitions changed; cache cleared"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "checking tenant definitions failed"),
                }
            }
        });
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
