//! Mail that is never lost: rendered from the tenant's theme, written to the outbox in the
//! same transaction as the change that causes it, delivered by [`worker`].

mod address;
mod smtp;
pub mod transport;
pub mod worker;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use address::{AddressError, EmailAddress};

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::store::{now_ms, NewMail, Store, StoreError, Tx};
use crate::tenant::Tenant;
use crate::theme::Themes;

const HOUR_MS: i64 = 3_600_000;

/// Subject and bodies of one mail, as sealed in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Mails one address may be sent per hour (`PORTAL_MAIL_RECIPIENT_LIMIT_PER_HOUR`) are
/// counted in two budgets: a member's sign-in codes have one of their own, so reset
/// requests, confirmations and notices can never use up the codes a member is waiting for.
const SIGN_IN_CODES: &[&str] = &["email_otp"];

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("too many mails to this address; try again later")]
    RecipientRateLimited,
    #[error("this society has sent too many mails in the last hour")]
    TenantRateLimited,
    #[error("mail template {0}: {1:#}")]
    Template(String, anyhow::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues mail. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Mailer {
    themes: Themes,
    secrets: SecretBox,
    recipient_limit: i64,
    tenant_limit: i64,
    wake: Arc<Notify>,
}

impl Mailer {
    pub fn new(config: &Config, themes: Themes, secrets: SecretBox) -> Self {
        Self {
            themes,
            secrets,
            recipient_limit: config.mail_recipient_limit_per_hour.into(),
            tenant_limit: config.mail_tenant_limit_per_hour.into(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes this node's worker (after the transaction that queued mail committed).
    pub fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Renders `template` of the tenant's theme (`mail/<template>.subject.txt`, `.txt`,
    /// `.html`) with `context` and queues it in `tx`. Returns the outbox id.
    pub async fn enqueue(
        &self,
        tx: &mut Tx,
        tenant: &Tenant,
        to: &EmailAddress,
        template: &str,
        mut context: tera::Context,
    ) -> Result<String, MailError> {
        let now = now_ms();
        let budget = (SIGN_IN_CODES, SIGN_IN_CODES.contains(&template));
        let (to_recipient, by_tenant) = tx
            .recent_mail(&tenant.id, to.as_str(), budget, now - HOUR_MS)
            .await?;
        if to_recipient >= self.recipient_limit {
            return Err(MailError::RecipientRateLimited);
        }
        if by_tenant >= self.tenant_limit {
            return Err(MailError::TenantRateLimited);
        }

        context.insert("tenant", &MailTenant::new(tenant));
        let content = self
            .render(&tenant.slug, template, &mut context)
            .map_err(|e| MailError::Template(template.to_owned(), e))?;
        let id = crate::random_token(16);
        let sealed = self.secrets.seal(
            &serde_json::to_vec(&content).expect("mail content serialises"),
            &id,
        );
        let mail = NewMail {
            id,
            tenant_id: tenant.id.clone(),
            template: template.to_owned(),
            recipient: to.as_str().to_owned(),
            from_name: tenant.settings.mail.from_name.clone(),
            from_address: sender_address(tenant),
            content: sealed,
        };
        tx.enqueue_mail(&mail, now).await?;
        Ok(mail.id)
    }

    /// Queues one mail in a transaction of its own and wakes the worker.
    pub async fn send(
        &self,
        store: &Store,
        tenant: &Tenant,
        to: &EmailAddress,
        template: &str,
        context: tera::Context,
    ) -> Result<String, MailError> {
        let mut tx = store.begin().await?;
        let id = self.enqueue(&mut tx, tenant, to, template, context).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(id)
    }

    fn render(
        &self,
        slug: &str,
        template: &str,
        context: &mut tera::Context,
    ) -> anyhow::Result<Content> {
        let theme = self.themes.get(slug)?;
        let part = |suffix: &str, context: &mut tera::Context| {
            theme.render(&format!("mail/{template}.{suffix}"), context)
        };
        Ok(Content {
            // A subject is one line, whatever the template's trailing newline.
            subject: part("subject.txt", context)?
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_owned(),
            text: part("txt", context)?,
            html: part("html", context)?,
        })
    }

    pub fn open(&self, id: &str, sealed: &str) -> Option<Content> {
        let plain = self.secrets.open(sealed, id).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// What mail templates know of the tenant.
#[derive(Serialize)]
struct MailTenant<'a> {
    slug: &'a str,
    name: &'a str,
    contact: &'a str,
    mail_domain: &'a str,
}

impl<'a> MailTenant<'a> {
    fn new(tenant: &'a Tenant) -> Self {
        Self {
            slug: &tenant.slug,
            name: &tenant.display_name,
            contact: &tenant.settings.contact,
            mail_domain: &tenant.settings.mail.domain,
        }
    }
}

/// The address the society's mail comes from, which members are told to let through
/// (kanekakenpo 【2-6】 「no-reply@…からのメール」).
pub fn sender_address(tenant: &crate::tenant::Tenant) -> String {
    format!("no-reply@{}", tenant.settings.mail.domain)
}
