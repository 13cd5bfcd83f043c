//! Every state-changing request must carry the CSRF token of its form: a missing or
//! wrong token gets the 403 page and changes nothing. Checked here, before any handler,
//! so no handler can forget it.
//!
//! The token and its cookie are the `csrf` crate's AES-GCM pair (the cookie holds a
//! random secret, the token proves it under the installation's key). A token is made
//! only for a page that has a form ([`FormToken::get`]); a page without one costs no
//! randomness, no encryption and no `Set-Cookie`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use csrf::{AesGcmCsrfProtection, CsrfProtection, UnencryptedCsrfCookie};
use poem::http::{Method, StatusCode};
use poem::web::cookie::{Cookie, CookieJar, SameSite};
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

/// The cookie that holds the secret a form token proves.
const COOKIE: &str = "portal_csrf";
/// How long a form token and its cookie stay good.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Makes and checks form tokens under the installation's key.
pub struct Guard {
    protect: AesGcmCsrfProtection,
    /// `Secure` on the cookie (HTTPS deployments).
    secure: bool,
}

impl Guard {
    pub fn new(key: [u8; 32], secure: bool) -> Self {
        Self {
            protect: AesGcmCsrfProtection::from_key(key),
            secure,
        }
    }

    /// The secret of the request's cookie, if it carries a genuine one.
    fn cookie_secret(&self, jar: &CookieJar) -> Option<UnencryptedCsrfCookie> {
        let cookie = jar.get(COOKIE)?;
        let sealed = STANDARD.decode(cookie.value_str()).ok()?;
        self.protect.parse_cookie(&sealed).ok()
    }

    /// Whether `token` was made for the secret in the request's cookie.
    fn is_valid(&self, jar: &CookieJar, token: &str) -> bool {
        let Some(secret) = self.cookie_secret(jar) else {
            return false;
        };
        let Ok(token) = STANDARD.decode(token) else {
            return false;
        };
        match self.protect.parse_token(&token) {
            Ok(token) => self.protect.verify_token_pair(&token, &secret).is_ok(),
            Err(_) => false,
        }
    }
}

/// The form token of one request, made the first time a page asks for it. Making it
/// keeps the secret of the request's cookie (so tokens in other open tabs stay good)
/// or starts a new one, and sends the cookie back with the response.
#[derive(Clone)]
pub struct FormToken(Arc<FormTokenInner>);

struct FormTokenInner {
    guard: Arc<Guard>,
    jar: CookieJar,
    token: OnceLock<String>,
}

impl FormToken {
    pub fn get(&self) -> &str {
        let inner = &*self.0;
        inner.token.get_or_init(|| {
            let guard = &inner.guard;
            let existing = guard.cookie_secret(&inner.jar);
            let previous: Option<[u8; 64]> =
                existing.as_ref().and_then(|c| c.value().try_into().ok());
            let (token, cookie) = guard
                .protect
                .generate_token_pair(previous.as_ref(), TTL.as_secs() as i64)
                .expect("the system's random source works");
            let mut set = Cookie::new_with_str(COOKIE, STANDARD.encode(cookie.value()));
            set.set_secure(guard.secure);
            set.set_http_only(true);
            set.set_same_site(SameSite::Lax);
            set.set_max_age(TTL);
            set.set_path("/");
            inner.jar.add(set);
            STANDARD.encode(token.value())
        })
    }
}

pub async fn verify<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
    guard: Arc<Guard>,
) -> poem::Result<Response> {
    let jar = req.cookie().clone();
    req.extensions_mut()
        .insert(FormToken(Arc::new(FormTokenInner {
            guard: Arc::clone(&guard),
            jar: jar.clone(),
            token: OnceLock::new(),
        })));
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
    let valid = token.is_some_and(|token| guard.is_valid(&jar, &token));
    if !valid {
        tracing::warn!(path = %req.uri().path(), "request without a valid CSRF token refused");
        return Ok(forbidden(&state)
            .with_status(StatusCode::FORBIDDEN)
            .into_response());
    }
    req.set_body(Body::from(body));
    next.call(req).await.map(IntoResponse::into_response)
}
