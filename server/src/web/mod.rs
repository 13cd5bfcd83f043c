//! HTTP: the member/admin listener (tenant hosts) and the operations listener.

mod assets;
mod ops;
mod pages;
mod tenant_host;

use std::sync::Arc;

use poem::{get, EndpointExt, Route};

pub use ops::ops_app;
pub use tenant_host::CurrentTenant;

use crate::config::Config;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tenant::TenantRegistry;
use crate::theme::Themes;

/// Everything a request handler may need, built once at start-up.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub tenants: Arc<TenantRegistry>,
    pub themes: Themes,
    pub mailer: Mailer,
    pub metrics: Arc<Metrics>,
}

/// The listener that tenant hosts reach. Every route runs with its tenant resolved.
pub fn member_app(state: Arc<AppState>) -> impl poem::Endpoint {
    Route::new()
        .at("/", get(pages::top))
        .at("/theme.css", get(assets::theme_css))
        .at("/static/*path", get(assets::static_file))
        .around(tenant_host::resolve_tenant)
        .data(state)
}
