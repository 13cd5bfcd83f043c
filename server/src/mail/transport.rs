//! Delivery: SMTP through lettre, or `.eml` files when no SMTP server is configured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::dkim::{DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use super::smtp::Relay;
use super::Content;
use crate::config::Config;
use crate::store::OutboxMail;

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Worth another attempt later (server down, 4xx, time-out).
    Temporary(String),
    /// The server refused the mail for good (5xx) or it cannot be built.
    Permanent(String),
}

enum Transport {
    Smtp(Relay),
    Files(AsyncFileTransport<Tokio1Executor>),
}

pub struct Transports {
    default: Transport,
    /// Tenants' own SMTP servers, by URL.
    overrides: moka::sync::Cache<String, Arc<Relay>>,
    timeout: Duration,
    dkim_dir: PathBuf,
}

impl Transports {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(config.smtp_timeout_ms);
        let credentials = match (&config.smtp_username, &config.smtp_password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            _ => None,
        };
        let default = match &config.smtp_url {
            Some(url) => Transport::Smtp(
                Relay::from_url(url, timeout, credentials).context("PORTAL_SMTP_URL")?,
            ),
            None => {
                let dir = config.data_dir.join("mail");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Transport::Files(AsyncFileTransport::new(dir))
            }
        };
        Ok(Self {
            default,
            overrides: moka::sync::Cache::new(64),
            timeout,
            dkim_dir: config.dkim_dir(),
        })
    }

    /// One attempt to deliver `mail`, through the tenant's own SMTP server if it has one,
    /// DKIM-signed if the tenant names a selector.
    pub async fn deliver(
        &self,
        mail: &OutboxMail,
        content: &Content,
        smtp_override: Option<&str>,
        dkim_selector: Option<&str>,
    ) -> Delivery {
        let mut message = match build(mail, content) {
            Ok(message) => message,
            Err(e) => return Delivery::Permanent(format!("{e:#}")),
        };
        if let Some(selector) = dkim_selector {
            match self.dkim(selector, &domain_of(&mail.from_address)) {
                Ok(config) => message.sign(&config),
                // Unsigned mail from a domain that publishes DKIM is likely to be junked;
                // better late than unsigned.
                Err(e) => return Delivery::Temporary(format!("DKIM: {e:#}")),
            }
        }
        let result = match smtp_override {
            Some(url) => match self.override_transport(url) {
                Ok(smtp) => send_smtp(&smtp, message).await,
                Err(e) => Delivery::Temporary(format!("tenant SMTP URL: {e:#}")),
            },
            None => match &self.default {
                Transport::Smtp(smtp) => send_smtp(smtp, message).await,
                Transport::Files(files) => match files.send(message).await {
                    Ok(file) => {
                        tracing::info!(
                            to = %mail.recipient,
                            subject = %content.subject,
                            file = %file,
                            "mail written to file"
                        );
                        Delivery::Sent
                    }
                    Err(e) => Delivery::Temporary(format!("writing mail file: {e}")),
                },
            },
        };
        result
    }

    /// A society's own relay. It gets only the credentials its own URL carries, never the
    /// platform's (`PORTAL_SMTP_USERNAME`/`PASSWORD` belong to the platform's relay).
    fn override_transport(&self, url: &str) -> anyhow::Result<Arc<Relay>> {
        if let Some(smtp) = self.overrides.get(url) {
            return Ok(smtp);
        }
        let smtp = Arc::new(Relay::from_url(url, self.timeout, None)?);
        self.overrides.insert(url.to_owned(), Arc::clone(&smtp));
        Ok(smtp)
    }

    fn dkim(&self, selector: &str, domain: &str) -> anyhow::Result<DkimConfig> {
        let path = self.dkim_dir.join(format!("{domain}.key"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no key at {}", path.display()))?;
        // PEM is RSA; a bare base64 line is an Ed25519 key.
        let algorithm = if text.contains("-----BEGIN") {
            DkimSigningAlgorithm::Rsa
        } else {
            DkimSigningAlgorithm::Ed25519
        };
        let key = DkimSigningKey::new(text.trim(), algorithm)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(DkimConfig::default_config(
            selector.to_owned(),
            domain.to_owned(),
            key,
        ))
    }
}

async fn send_smtp(smtp: &Relay, message: Message) -> Delivery {
    match smtp.send(message.envelope(), &message.formatted()).await {
        Ok(()) => Delivery::Sent,
        Err(e) if e.permanent => Delivery::Permanent(e.message),
        Err(e) => Delivery::Temporary(e.message),
    }
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("")
        .to_owned()
}

/// The MIME message: Japanese names and subject encoded per RFC 2047, text and HTML
/// alternatives in UTF-8, and a Message-ID that stays the same across attempts.
fn build(mail: &OutboxMail, content: &Content) -> anyhow::Result<Message> {
    let from = Mailbox::new(
        Some(mail.from_name.clone()),
        mail.from_address.parse().context("sender address")?,
    );
    let to = Mailbox::new(None, mail.recipient.parse().context("recipient address")?);
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(content.subject.clone())
        .message_id(Some(format!(
            "<{}@{}>",
            mail.id,
            domain_of(&mail.from_address)
        )))
        .multipart(MultiPart::alternative_plain_html(
            content.text.clone(),
            content.html.clone(),
        ))
        .context("building the message")?;
    Ok(message)
}

#[cfg(test)]
mod relay_credentials {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        Config {
            data_dir: dir.to_owned(),
            smtp_url: Some("smtp://platform-relay.invalid:25".into()),
            smtp_username: Some("platform-user".into()),
            smtp_password: Some("platform-secret".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_platforms_smtp_credentials_are_never_sent_to_a_societys_relay() {
        let dir = tempfile::tempdir().unwrap();
        let transports = Transports::from_config(&config(dir.path())).unwrap();
        let platform = Some(Credentials::new(
            "platform-user".into(),
            "platform-secret".into(),
        ));
        match &transports.default {
            Transport::Smtp(relay) => assert!(relay.credentials() == platform.as_ref()),
            Transport::Files(_) => panic!("the platform relay is SMTP"),
        }
        // A society's relay without credentials of its own gets none.
        let own = transports
            .override_transport("smtp://relay.society.invalid:25")
            .unwrap();
        assert!(own.credentials().is_none());
        // One with its own user and password in the URL gets those, and only those.
        let own = transports
            .override_transport("smtp://society-user:society%40pass@relay2.society.invalid:587")
            .unwrap();
        assert!(
            own.credentials()
                == Some(&Credentials::new(
                    "society-user".into(),
                    "society@pass".into()
                ))
        );
    }
}
