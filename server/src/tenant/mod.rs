//! Tenants: one society each, with its hosts, settings, service icons and terms.

pub mod definition;
mod file;
pub mod registry;
pub mod settings;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use definition::{Change, Definition};
pub(crate) use file::is_asset_path;
pub use file::{FieldError, FieldErrorKind, TenantFile, TenantFileError};
pub use registry::{normalize_host, TenantRegistry};
pub use settings::{FactorSetup, FirstLoginStep, MfaMethod, TenantSettings};

/// Database identity of a tenant. Every member-owned row carries one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TenantId(String);

impl TenantId {
    pub fn generate() -> Self {
        Self(crate::random_token(16))
    }

    pub fn from_db(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tile on the member's top page linking to one of the society's services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceIcon {
    /// Stable key within the tenant, `[a-z0-9-]`.
    pub id: String,
    pub title: String,
    /// Path among the theme's static assets, or an `https://` URL.
    pub image: String,
    pub url: String,
    #[serde(default = "yes")]
    pub visible: bool,
}

/// One published version of the terms of use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermsVersion {
    pub version: String,
    /// `YYYY-MM-DD`
    pub published_at: String,
    pub title: String,
    pub body: String,
}

/// The terms section of a tenant file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Terms {
    /// The version members must have accepted; empty when the society has no terms.
    pub current: String,
    pub versions: Vec<TermsVersion>,
}

fn yes() -> bool {
    true
}

/// A tenant as the running server sees it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub display_name: String,
    pub enabled: bool,
    /// Extra host names besides `<slug>.<base domain>`.
    pub aliases: Vec<String>,
    pub settings: TenantSettings,
    /// In display order.
    pub services: Vec<ServiceIcon>,
    pub terms: Terms,
    /// Changes whenever the definition changes; used to bust asset caches.
    pub revision: i64,
    /// What pages show of this tenant, as the key of rendered pages; made on first use.
    pub page_key: Memo,
}

/// A value derived from the rest of a [`Tenant`], made once. Loaded tenants are shared
/// read-only; a clone (which may then be changed) starts without it.
#[derive(Default)]
pub struct Memo(std::sync::OnceLock<String>);

impl Memo {
    pub fn get_or_init(&self, make: impl FnOnce() -> String) -> &str {
        self.0.get_or_init(make)
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

impl Tenant {
    /// The tenant's definition in the onboarding format.
    pub fn to_file(&self) -> TenantFile {
        TenantFile {
            slug: self.slug.clone(),
            display_name: self.display_name.clone(),
            enabled: self.enabled,
            hosts: self.aliases.clone(),
            settings: self.settings.clone(),
            services: self.services.clone(),
            terms: self.terms.clone(),
        }
    }
}
