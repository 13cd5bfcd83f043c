//! Process configuration: built-in defaults < `portal.toml` < `PORTAL_*` environment.
//!
//! One typed [`Config`] is built at start-up and passed down; nothing reads the
//! environment after that.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Environment variables that configure the process start with this prefix.
pub const ENV_PREFIX: &str = "PORTAL_";

/// Where the optional configuration file is looked for, unless `PORTAL_CONFIG` names another.
pub const DEFAULT_CONFIG_FILE: &str = "portal.toml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Member and society-admin listener.
    pub listen: SocketAddr,
    /// Operations listener (health, readiness, later metrics). Never served on tenant hosts.
    pub ops_listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; when absent, `sqlite://<data_dir>/portal.db`.
    pub database_url: Option<String>,
    /// Largest number of pooled database connections.
    pub database_max_connections: u32,
    /// Local state of the embedded set-up: the SQLite file, mail files, generated keys.
    pub data_dir: PathBuf,
    /// Tenants are served at `<slug>.<base_domain>`.
    pub base_domain: String,
    /// Theme folder: `default/` plus optional `<slug>/` overrides.
    pub themes_dir: PathBuf,
    /// Tenant definitions imported into an empty database at start-up.
    pub tenants_dir: PathBuf,
    /// The society admin console's templates, texts and assets.
    pub admin_ui_dir: PathBuf,
    /// How often each node checks whether a tenant definition changed.
    pub tenant_refresh_ms: u64,
    /// `tracing` filter, e.g. `info` or `portal=debug,info`.
    pub log: String,
    /// Base64 of 32 random bytes; encrypts secrets at rest. Every node must share it.
    /// Without it, a key is generated in the data folder (single node only).
    pub secret_key: Option<String>,
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port`; credentials as `smtp://user:pass@host`. Without it, mail is
    /// written as files to `<data_dir>/mail/`.
    pub smtp_url: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub smtp_timeout_ms: u64,
    /// DKIM keys, one file per sending domain: `<domain>.key`.
    pub dkim_dir: Option<PathBuf>,
    /// How often an idle mail worker looks for due mail.
    pub mail_poll_ms: u64,
    /// First retry delay after a temporary failure; doubled per attempt, with jitter.
    pub mail_retry_base_ms: u64,
    pub mail_retry_max_ms: u64,
    /// Attempts before a mail is given up as failed.
    pub mail_max_attempts: u32,
    /// How long a worker's claim on a mail holds; a dead worker's mail is retried after it.
    pub mail_lease_ms: u64,
    /// Mails each node delivers at once.
    pub mail_concurrency: u32,
    /// Mails one address may be sent per hour by one tenant.
    pub mail_recipient_limit_per_hour: u32,
    /// Mails one tenant may send per hour.
    pub mail_tenant_limit_per_hour: u32,
    /// argon2id memory cost in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// argon2id iterations (OWASP: 2).
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; 0 means one per CPU.
    pub hash_concurrency: u32,
    /// Password checks that may wait for a free hasher; more get "busy, try again".
    pub hash_queue: u32,
    /// Mark cookies `Secure`. Default: on, except when the base domain is `localhost`
    /// (plain http in development and tests).
    pub secure_cookies: Option<bool>,
    /// The port in links the portal mails or prints (invitations, letters). Default: none
    /// behind the standard ports; the listener's own port when the base domain is
    /// `localhost`.
    pub public_port: Option<u16>,
    /// The demo set-up: when seed tenants are imported into a new database, each gets a
    /// demo member and a demo admin invitation, printed to the log. Default: on only when
    /// the base domain is `localhost` (see [`Config::demo`]).
    pub demo: Option<bool>,
    /// Peers (CIDRs, comma-separated) whose `X-Forwarded-*` / `Forwarded` headers are
    /// believed: the TLS-terminating proxies in front. Empty: no one's.
    pub trusted_proxies: String,
    /// Throttles count an IPv6 client by its network of this many leading bits.
    pub throttle_ipv6_prefix: u8,
    /// `text` (default) or `json`: one JSON object per log line.
    pub log_format: String,
    /// On SIGTERM, how long requests in flight may take to finish.
    pub shutdown_grace_ms: u64,
    /// The previous secret key during a key rotation: secrets sealed under it still open,
    /// and `portal secrets rotate` re-seals them under `secret_key`.
    pub secret_key_previous: Option<String>,
    /// How often each node removes what has lapsed (sign-in flows, sessions, one-time
    /// tokens) and what is past its tenant's retention (audit events, delivered mail).
    pub sweep_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            database_url: None,
            database_max_connections: 10,
            data_dir: PathBuf::from("data"),
            base_domain: "localhost".to_owned(),
            themes_dir: PathBuf::from("themes"),
            tenants_dir: PathBuf::from("tenants"),
            admin_ui_dir: PathBuf::from("admin-ui"),
            tenant_refresh_ms: 1000,
            log: "info".to_owned(),
            secret_key: None,
            smtp_url: None,
            smtp_username: None,
            smtp_password: None,
            smtp_timeout_ms: 15_000,
            dkim_dir: None,
            mail_poll_ms: 1000,
            mail_retry_base_ms: 30_000,
            mail_retry_max_ms: 3_600_000,
            mail_max_attempts: 10,
            mail_lease_ms: 120_000,
            mail_concurrency: 16,
            mail_recipient_limit_per_hour: 10,
            mail_tenant_limit_per_hour: 5000,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: 0,
            hash_queue: 256,
            secure_cookies: None,
            public_port: None,
            demo: None,
            trusted_proxies: String::new(),
            throttle_ipv6_prefix: 64,
            log_format: "text".to_owned(),
            shutdown_grace_ms: 10_000,
            secret_key_previous: None,
            sweep_interval_ms: 300_000,
        }
    }
}

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Source(String),
    #[error("configuration: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Config {
    /// Reads defaults, then `portal.toml` (or the file named by `PORTAL_CONFIG`), then the
    /// environment, and checks the result.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("PORTAL_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE));
        Self::from_figment(Self::figment(&file))
    }

    pub fn figment(file: &Path) -> Figment {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .filter(|key| Self::is_key(&key.as_str().to_ascii_lowercase())),
            )
    }

    /// Whether `key` (lower case, without the prefix) is a configuration key. Other
    /// `PORTAL_*` variables (`PORTAL_CONFIG`, test settings) are not configuration.
    fn is_key(key: &str) -> bool {
        serde_json::to_value(Config::default())
            .ok()
            .and_then(|v| v.as_object().map(|o| o.contains_key(key)))
            .unwrap_or(false)
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Source(describe(e)))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.database_kind()?;
        if !is_hostname(&self.base_domain) {
            return Err(ConfigError::Invalid {
                key: "PORTAL_BASE_DOMAIN",
                reason: format!("'{}' is not a host name", self.base_domain),
            });
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "PORTAL_DATABASE_MAX_CONNECTIONS",
                reason: "must be at least 1".into(),
            });
        }
        for (key, value) in [
            ("PORTAL_TENANT_REFRESH_MS", self.tenant_refresh_ms),
            ("PORTAL_SMTP_TIMEOUT_MS", self.smtp_timeout_ms),
            ("PORTAL_MAIL_POLL_MS", self.mail_poll_ms),
            ("PORTAL_MAIL_RETRY_BASE_MS", self.mail_retry_base_ms),
            ("PORTAL_MAIL_MAX_ATTEMPTS", self.mail_max_attempts.into()),
            ("PORTAL_MAIL_CONCURRENCY", self.mail_concurrency.into()),
            ("PORTAL_SWEEP_INTERVAL_MS", self.sweep_interval_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        self.trusted_proxies()?;
        if !(1..=128).contains(&self.throttle_ipv6_prefix) {
            return Err(ConfigError::Invalid {
                key: "PORTAL_THROTTLE_IPV6_PREFIX",
                reason: "must be from 1 to 128".into(),
            });
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid {
                key: "PORTAL_LOG_FORMAT",
                reason: format!("'{}' is neither text nor json", self.log_format),
            });
        }
        if let Some(url) = &self.smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(ConfigError::Invalid {
                    key: "PORTAL_SMTP_URL",
                    reason: "must start with smtp:// or smtps://".into(),
                });
            }
        }
        // A claim must outlive the slowest delivery, or a second worker would send the
        // same mail while the first is still waiting for the server.
        if self.mail_lease_ms < 2 * self.smtp_timeout_ms {
            return Err(ConfigError::Invalid {
                key: "PORTAL_MAIL_LEASE_MS",
                reason: format!(
                    "must be at least twice PORTAL_SMTP_TIMEOUT_MS ({} ms)",
                    self.smtp_timeout_ms
                ),
            });
        }
        Ok(())
    }

    /// The trusted proxies' networks. A bare address is one host (`/32`, `/128`).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError::Invalid {
                        key: "PORTAL_TRUSTED_PROXIES",
                        reason: format!("'{s}' is not an address or a CIDR network"),
                    })
            })
            .collect()
    }

    /// The database URL in force: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("portal.db").display()),
        }
    }

    /// See [`Config::public_port`].
    pub fn public_port(&self) -> Option<u16> {
        self.public_port
            .or_else(|| (self.base_domain == "localhost").then(|| self.listen.port()))
    }

    /// Whether to make demo accounts: as set, else only on `localhost`, so a production
    /// deployment with the seed tenant files never gets an admin invitation in its log.
    pub fn demo(&self) -> bool {
        self.demo.unwrap_or(self.base_domain == "localhost")
    }

    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies
            .unwrap_or(self.base_domain != "localhost")
    }

    pub fn dkim_dir(&self) -> PathBuf {
        self.dkim_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("dkim"))
    }

    pub fn database_kind(&self) -> Result<DatabaseKind, ConfigError> {
        let url = self.database_url();
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(DatabaseKind::Sqlite),
            "postgres" | "postgresql" => Ok(DatabaseKind::Postgres),
            _ => Err(ConfigError::Invalid {
                key: "PORTAL_DATABASE_URL",
                reason: format!(
                    "unsupported scheme '{scheme}' (use sqlite://<file> or postgres://<host>/<db>)"
                ),
            }),
        }
    }
}

/// figment reports every problem; the first one, named as the operator wrote it
/// (`PORTAL_LISTEN` or `listen` in `portal.toml`), is what needs reading.
fn describe(error: figment::Error) -> String {
    let error = error
        .into_iter()
        .next()
        .expect("a figment error holds at least one error");
    let from_env = error
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains("environment"));
    let key = if from_env {
        format!("{ENV_PREFIX}{}", error.path.join("__").to_ascii_uppercase())
    } else {
        error.path.join(".")
    };
    let source = match &error.metadata {
        _ if from_env => " (from the environment)".to_owned(),
        Some(m) => match &m.source {
            Some(source) => format!(" (in {source})"),
            None => format!(" (in {})", m.name),
        },
        None => String::new(),
    };
    format!("{key}: {}{source}", error.kind)
}

/// A DNS host name: labels of `[a-z0-9-]`, 1–63 characters each, not starting or ending with
/// a hyphen; 253 characters at most.
pub fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
// figment's Jail closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in(jail: &Jail) -> Result<Config, ConfigError> {
        Config::from_figment(Config::figment(&jail.directory().join("portal.toml")))
    }

    #[test]
    fn defaults_apply_without_file_or_environment() {
        Jail::expect_with(|jail| {
            let config = load_in(jail).unwrap();
            assert_eq!(config, Config::default());
            assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(config.ops_listen.to_string(), "127.0.0.1:9090");
            assert_eq!(config.database_url(), "sqlite://data/portal.db");
            assert_eq!(config.database_kind().unwrap(), DatabaseKind::Sqlite);
            Ok(())
        });
    }

    #[test]
    fn file_overrides_defaults_and_environment_overrides_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "portal.toml",
                r#"
                listen = "127.0.0.1:7000"
                ops_listen = "127.0.0.1:7001"
                base_domain = "portal.example.jp"
                data_dir = "/var/lib/portal"
                "#,
            )?;
            let from_file = load_in(jail).unwrap();
            assert_eq!(from_file.listen.to_string(), "127.0.0.1:7000");
            assert_eq!(from_file.ops_listen.to_string(), "127.0.0.1:7001");
            assert_eq!(from_file.base_domain, "portal.example.jp");
            assert_eq!(
                from_file.database_url(),
                "sqlite:///var/lib/portal/portal.db"
            );

            jail.set_env("PORTAL_LISTEN", "0.0.0.0:8443");
            jail.set_env("PORTAL_BASE_DOMAIN", "portal.kosmo-web.jp");
            jail.set_env("PORTAL_DATABASE_URL", "postgres://db.internal/portal");
            let from_env = load_in(jail).unwrap();
            assert_eq!(from_env.listen.to_string(), "0.0.0.0:8443");
            // Not set in the environment: the file's value stays.
            assert_eq!(from_env.ops_listen.to_string(), "127.0.0.1:7001");
            assert_eq!(from_env.base_domain, "portal.kosmo-web.jp");
            assert_eq!(from_env.database_kind().unwrap(), DatabaseKind::Postgres);
            Ok(())
        });
    }

    #[test]
    fn bad_listen_address_names_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("PORTAL_LISTEN", "not-an-address");
            let message = load_in(jail).unwrap_err().to_string();
            assert!(message.contains("PORTAL_LISTEN"), "{message}");
            assert!(message.contains("socket address"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn unknown_database_scheme_names_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("PORTAL_DATABASE_URL", "mysql://localhost/portal");
            let message = load_in(jail).unwrap_err().to_string();
            assert!(message.contains("PORTAL_DATABASE_URL"), "{message}");
            assert!(message.contains("mysql"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_in_file_is_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("portal.toml", "listn = \"127.0.0.1:1\"\n")?;
            let message = load_in(jail).unwrap_err().to_string();
            assert!(message.contains("listn"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn host_names() {
        assert!(is_hostname("localhost"));
        assert!(is_hostname("portal.kosmo-web.jp"));
        assert!(!is_hostname("Portal.jp"));
        assert!(!is_hostname("-bad.jp"));
        assert!(!is_hostname("a..b"));
        assert!(!is_hostname(""));
    }
}
