//! Static assets of the tenant's theme and its colour variables.

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::{Data, Path, StaticFileRequest};
use poem::{handler, IntoResponse, Response};

use super::{AppState, CurrentTenant};

const ASSET_CACHE: &str = "public, max-age=3600";
/// `theme.css` is linked with the tenant's revision in its URL, so it may be kept long.
const VERSIONED_CACHE: &str = "public, max-age=86400";

#[handler]
pub async fn static_file(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    Path(path): Path<String>,
    request: StaticFileRequest,
) -> poem::Result<Response> {
    if !crate::tenant::is_asset_path(&path) {
        return Err(poem::error::NotFoundError.into());
    }
    if path.starts_with("uploads/") {
        return uploaded(&state, &tenant, &path).await;
    }
    let Some(file) = state.themes.asset(&tenant.0.slug, &path) else {
        return Err(poem::error::NotFoundError.into());
    };
    if let Some(svg) = tinted_icon(&path, &file, &tenant.0.settings.theme.primary_color) {
        return Ok(svg
            .with_content_type("image/svg+xml")
            .with_header(header::CACHE_CONTROL, ASSET_CACHE)
            .into_response());
    }
    let response = request
        .create_response(&file, true, false)
        .map_err(|_| poem::error::NotFoundError)?;
    Ok(response
        .with_header(header::CACHE_CONTROL, ASSET_CACHE)
        .into_response())
}

/// An image the society uploaded. Its name is derived from its content, so it may be kept
/// for good; an SVG gets a policy that lets nothing in it run or load.
async fn uploaded(state: &AppState, tenant: &CurrentTenant, path: &str) -> poem::Result<Response> {
    let key = (tenant.0.id.as_str().to_owned(), path.to_owned());
    let found = match state.uploads.get(&key).await {
        Some(hit) => Some(hit),
        None => {
            let stored = state
                .store
                .asset(&tenant.0.id, path)
                .await
                .map_err(crate::web::internal)?;
            match stored {
                Some(asset) => {
                    let asset = Arc::new(asset);
                    state.uploads.insert(key, Arc::clone(&asset)).await;
                    Some(asset)
                }
                None => None,
            }
        }
    };
    let Some(asset) = found else {
        return Err(poem::error::NotFoundError.into());
    };
    Ok(asset
        .1
        .clone()
        .with_content_type(asset.0.clone())
        .with_header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .with_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        )
        .into_response())
}

/// A service icon drawn with `currentColor`, in the tenant's primary colour: inside an
/// `<img>` the colour of the page does not reach it, so it would be drawn black.
fn tinted_icon(path: &str, file: &std::path::Path, colour: &str) -> Option<String> {
    if !(path.starts_with("services/") && path.ends_with(".svg")) {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    // The colour is validated as #rrggbb when the tenant is applied.
    text.contains("currentColor")
        .then(|| text.replace("currentColor", colour))
}

/// The tenant's colours as CSS custom properties, used by the theme's stylesheet.
#[handler]
pub fn theme_css(tenant: CurrentTenant) -> Response {
    theme_css_of(&tenant.0)
        .with_header(header::CACHE_CONTROL, VERSIONED_CACHE)
        .into_response()
}

/// The colour variables of `tenant`.
pub fn theme_css_of(tenant: &crate::tenant::Tenant) -> Response {
    let theme = &tenant.settings.theme;
    // Both colours are validated as #rrggbb when the tenant is applied.
    let css = format!(
        ":root {{\n  --color-primary: {};\n  --color-accent: {};\n}}\n",
        theme.primary_color, theme.accent_color
    );
    css.with_content_type("text/css; charset=utf-8")
        .with_status(StatusCode::OK)
        .into_response()
}
