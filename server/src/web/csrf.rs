//! Every state-changing request must carry the CSRF token of its form: a missing or
//! wrong token gets the 403 page and changes nothing. Checked here, before any handler,
//! so no handler can forget it.

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use poem::web::CsrfVerifier;
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use super::pages::{error_page, ErrorKind};
use super::{AppState, CurrentTenant};

/// Largest form body read to find the token; longer bodies are refused.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest file upload (a roster file and its form), on the upload routes only.
const MAX_UPLOAD_BYTES: usize = crate::admin::roster::MAX_BYTES + 64 * 1024;
/// Where files are uploaded (these paths and those below them).
const UPLOAD_PATHS: [&str; 4] = [
    "/admin/import",
    "/admin/look",
    "/admin/services",
    "/admin/bulk-reset",
];

/// An upload larger than this is not even read to its end: the connection is dropped.
const DRAIN_BYTES: usize = 32 * 1024 * 1024;

/// Reads an upload of at most `limit` bytes. A larger one (a 20 MB photo chosen by
/// mistake) is read on and dropped, so the browser shows the 「大きすぎます」 page rather
/// than a broken connection.
async fn read_upload(body: poem::Body, limit: usize) -> Result<bytes::Bytes, ()> {
    use tokio::io::AsyncReadExt;
    let mut reader = body.into_async_read();
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = reader.read(&mut chunk).await.map_err(|_| ())?;
        if n == 0 {
            break;
        }
        total += n;
        if total <= limit {
            kept.extend_from_slice(&chunk[..n]);
        } else if total > DRAIN_BYTES {
            return Err(());
        }
    }
    if total > limit {
        Err(())
    } else {
        Ok(kept.into())
    }
}

/// The `csrf_token` field of a `multipart/form-data` body.
async fn multipart_token(content_type: &str, body: bytes::Bytes) -> Option<String> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("csrf_token") {
            return field.text().await.ok();
        }
    }
    None
}

pub async fn verify<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    // The JSON API authenticates with a bearer token only, never a cookie, so a forged
    // cross-site request has nothing to ride on.
    let api = req.uri().path().starts_with("/admin/api/");
    if api || matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.call(req).await.map(IntoResponse::into_response);
    }
    let state = req.data::<Arc<AppState>>().cloned().expect("AppState");
    let tenant = req.extensions().get::<CurrentTenant>().cloned();
    let forbidden = |state: &AppState| {
        error_page(
            state,
            tenant.as_ref().map(|t| t.0.as_ref()),
            ErrorKind::Forbidden,
        )
    };
    let content_type = req
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let multipart = content_type.starts_with("multipart/form-data");
    let path = req.uri().path();
    let upload = UPLOAD_PATHS
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')));
    let limit = if multipart && upload {
        MAX_UPLOAD_BYTES
    } else {
        MAX_FORM_BYTES
    };
    let body = if multipart && upload {
        read_upload(req.take_body(), limit).await
    } else {
        req.take_body()
            .into_bytes_limit(limit)
            .await
            .map_err(|_| ())
    };
    let body = match body {
        Ok(body) => body,
        Err(()) => return Ok(error_page(&state, None, ErrorKind::TooLarge)),
    };
    // Scripts posting JSON (passkey ceremonies) send the token in a header.
    let header = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let token = match header {
        Some(token) => Some(token),
        None if multipart => multipart_token(&content_type, body.clone()).await,
        None => form_urlencoded::parse(&body)
            .find(|(key, _)| key == "csrf_token")
            .map(|(_, value)| value.into_owned()),
    };
    let valid = match (token, req.extensions().get::<CsrfVerifier>()) {
        (Some(token), Some(verifier)) => verifier.is_valid(&token),
        _ => false,
    };
    if !valid {
        tracing::warn!(path = %req.uri().path(), "request without a valid CSRF token refused");
        return Ok(forbidden(&state)
            .with_status(StatusCode::FORBIDDEN)
            .into_response());
    }
    req.set_body(Body::from(body));
    next.call(req).await.map(IntoResponse::into_response)
}
