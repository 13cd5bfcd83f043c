//! The operations listener: health, readiness and metrics. It serves no tenant and is bound to
//! its own address, so tenant hosts can never reach it.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{get, handler, EndpointExt, IntoResponse, Route};

use super::AppState;

pub fn ops_app(state: Arc<AppState>) -> impl poem::Endpoint {
    Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics))
        .nest("/api", super::ops_api::routes())
        .data(state)
}

/// The process is up and serving.
#[handler]
fn healthz() -> &'static str {
    "ok\n"
}

/// The process can do its work: the database answers and has every migration this binary
/// needs. (Migrations of a newer version, applied during a rolling upgrade, are additive:
/// a running node stays ready; a node starting with an older binary refuses to start.)
#[handler]
async fn readyz(state: Data<&Arc<AppState>>) -> impl IntoResponse {
    match state.store.migration_status().await {
        Ok(status) if !status.pending.is_empty() => {
            "migrations pending\n".with_status(StatusCode::SERVICE_UNAVAILABLE)
        }
        Ok(_) => "ready\n".with_status(StatusCode::OK),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            "database unreachable\n".with_status(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// Prometheus text format.
#[handler]
async fn metrics(state: Data<&Arc<AppState>>) -> impl IntoResponse {
    let mut snapshot = crate::metrics::Snapshot {
        hasher: state.hasher.stats(),
        tenant_cache_entries: state.tenants.cached(),
        ..Default::default()
    };
    match state.store.mail_queue().await {
        Ok((depth, oldest)) => {
            snapshot.mail_queue_depth = depth;
            snapshot.mail_queue_oldest_seconds = oldest
                .map(|ms| ((crate::store::now_ms() - ms).max(0)) as f64 / 1000.0)
                .unwrap_or(0.0);
        }
        Err(error) => tracing::warn!(%error, "reading the mail queue for metrics failed"),
    }
    state
        .metrics
        .render(&snapshot)
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
}
