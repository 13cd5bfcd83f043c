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
        .data(state)
}

/// The process is up and serving.
#[handler]
fn healthz() -> &'static str {
    "ok\n"
}

/// The process can do its work: the database answers.
#[handler]
async fn readyz(state: Data<&Arc<AppState>>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => "ready\n".with_status(StatusCode::OK),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            "database unreachable\n".with_status(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// Prometheus text format.
#[handler]
fn metrics(state: Data<&Arc<AppState>>) -> impl IntoResponse {
    state
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
}
