//! What every request handler and service function may need, built once at start-up.

use std::sync::Arc;

use crate::auth::password::PasswordHasher;
use crate::config::Config;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tenant::TenantRegistry;
use crate::theme::Themes;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub tenants: Arc<TenantRegistry>,
    pub themes: Themes,
    /// The society admin console's templates and texts.
    pub console: Themes,
    pub mailer: Mailer,
    pub metrics: Arc<Metrics>,
    pub hasher: PasswordHasher,
    /// Seals secrets at rest (TOTP keys, pending set-ups, letters waiting to be printed).
    pub secrets: crate::crypto::SecretBox,
    /// Keys the CSRF tokens; derived from the installation's secret key.
    pub csrf_key: [u8; 32],
    /// The WebAuthn relying party of each tenant host.
    pub passkeys: crate::mfa::passkey::RelyingParties,
    /// Self-service recovery requests waiting to be looked up and mailed.
    pub recovery: crate::member::recovery::Queue,
    /// Uploaded images by (tenant id, path). A path names one content for good, so entries
    /// never go stale; the cache only bounds the memory they take.
    pub uploads: UploadCache,
    /// Peers whose forwarding headers are believed (`PORTAL_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::web::edge::TrustedProxies,
    /// Pages rendered once per tenant and kept (the logged-out top page, the login form).
    pub pages: crate::web::pages::StaticPages,
}

/// An uploaded image as served: its content type and bytes.
pub type Upload = std::sync::Arc<(String, Vec<u8>)>;

/// Uploaded images by (tenant id, path).
pub type UploadCache = moka::future::Cache<(String, String), Upload>;
