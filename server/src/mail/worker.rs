//! The delivery worker every node runs: claim due mail with a lease, deliver, record.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use rand::Rng;
use tokio::sync::Notify;

use super::transport::{Delivery, Transports};
use super::Mailer;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{now_ms, OutboxMail, Store};

pub struct Worker {
    store: Store,
    mailer: Mailer,
    transports: Transports,
    metrics: Arc<Metrics>,
    /// Names this worker's claims; unique per process.
    owner: String,
    wake: Arc<Notify>,
    poll: Duration,
    lease_ms: i64,
    concurrency: i64,
    retry_base_ms: u64,
    retry_max_ms: u64,
    max_attempts: i64,
    /// Tenant slug, SMTP override and DKIM selector by tenant id.
    tenants: moka::future::Cache<String, Arc<TenantMail>>,
}

struct TenantMail {
    slug: String,
    smtp_url: Option<String>,
    dkim_selector: Option<String>,
}

impl Worker {
    pub fn new(
        config: &Config,
        store: Store,
        mailer: Mailer,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            transports: Transports::from_config(config)?,
            wake: mailer.wake(),
            store,
            mailer,
            metrics,
            owner: crate::random_token(8),
            poll: Duration::from_millis(config.mail_poll_ms),
            lease_ms: config.mail_lease_ms as i64,
            concurrency: config.mail_concurrency.into(),
            retry_base_ms: config.mail_retry_base_ms,
            retry_max_ms: config.mail_retry_max_ms,
            max_attempts: config.mail_max_attempts.into(),
            tenants: moka::future::Cache::builder()
                .time_to_live(Duration::from_secs(30))
                .build(),
        })
    }

    /// Delivers until `stop` turns true: then the batch in hand is finished, nothing more
    /// is claimed, and any claim still held is released for the other nodes.
    pub fn spawn(self, stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run(stop).await })
    }

    async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.round().await {
                Ok(0) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll) => {}
                        _ = self.wake.notified() => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(_) => {} // there may be more
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "mail worker round failed");
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        match self.store.release_mail_claims(&self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(mails = n, "mail claims released for other nodes"),
            Err(e) => {
                tracing::warn!(error = %e, "releasing mail claims failed; they lapse with their lease")
            }
        }
    }

    /// Claims and delivers one batch; returns how many mails it handled.
    pub async fn round(&self) -> anyhow::Result<usize> {
        let claimed = self
            .store
            .claim_mail(&self.owner, now_ms(), self.lease_ms, self.concurrency)
            .await?;
        let n = claimed.len();
        // Concurrently: a slow server for one mail does not hold the others back.
        let results = join_all(claimed.into_iter().map(|mail| self.deliver_one(mail))).await;
        for result in results {
            result?;
        }
        Ok(n)
    }

    async fn deliver_one(&self, mail: OutboxMail) -> anyhow::Result<()> {
        let tenant = self.tenant(&mail.tenant_id).await?;
        let outcome = match self.mailer.open(&mail.id, &mail.content) {
            Some(content) => {
                self.transports
                    .deliver(
                        &mail,
                        &content,
                        tenant.smtp_url.as_deref(),
                        tenant.dkim_selector.as_deref(),
                    )
                    .await
            }
            // During a key rotation another node may hold the key that opens it: try again
            // later (and give up after the usual attempts) rather than at once.
            None => {
                Delivery::Temporary("content cannot be opened with this node's secret key".into())
            }
        };
        let labels = [tenant.slug.as_str()];
        match outcome {
            Delivery::Sent => {
                if !self
                    .store
                    .mail_delivered(&mail.id, &self.owner, now_ms())
                    .await?
                {
                    tracing::warn!(mail = %mail.id, "delivered after the claim ran out");
                }
                self.metrics.mail_sent.with_label_values(&labels).inc();
                tracing::info!(mail = %mail.id, tenant = %tenant.slug, attempts = mail.attempts, "mail delivered");
            }
            Delivery::Temporary(error) if mail.attempts < self.max_attempts => {
                let delay = self.backoff(mail.attempts);
                self.store
                    .mail_retry_at(&mail.id, &self.owner, now_ms() + delay as i64, &error)
                    .await?;
                self.metrics.mail_retried.with_label_values(&labels).inc();
                tracing::warn!(mail = %mail.id, tenant = %tenant.slug, attempts = mail.attempts, retry_in_ms = delay, %error, "mail delivery failed; will retry");
            }
            Delivery::Temporary(error) | Delivery::Permanent(error) => {
                self.store
                    .mail_failed(&mail.id, &self.owner, &error)
                    .await?;
                self.metrics.mail_failed.with_label_values(&labels).inc();
                tracing::error!(mail = %mail.id, tenant = %tenant.slug, attempts = mail.attempts, %error, "mail delivery failed for good");
            }
        }
        Ok(())
    }

    /// Exponential backoff with jitter: base × 2^(attempts−1), capped, then a random
    /// value between half of that and all of it, so retries of many mails spread out.
    fn backoff(&self, attempts: i64) -> u64 {
        let exp = attempts.clamp(1, 30) as u32 - 1;
        let full = self
            .retry_base_ms
            .saturating_mul(1u64 << exp)
            .min(self.retry_max_ms)
            .max(1);
        rand::thread_rng().gen_range(full / 2..=full)
    }

    async fn tenant(&self, id: &str) -> anyhow::Result<Arc<TenantMail>> {
        let store = &self.store;
        self.tenants
            .try_get_with(id.to_owned(), async move {
                let tenant = store
                    .tenant_by_id(id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("tenant {id} is gone"))?;
                Ok::<_, anyhow::Error>(Arc::new(TenantMail {
                    slug: tenant.slug,
                    smtp_url: tenant.settings.mail.smtp_url,
                    dkim_selector: tenant.settings.mail.dkim_selector,
                }))
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }
}
