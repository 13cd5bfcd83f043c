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

/// Why an upload was not read to its end.
enum Refused {
    /// Larger than the route takes (or broken off).
    TooLarge,
    /// No valid form token in a header or in the body's first part.
    Forbidden,
}

/// The longest first part (the form token) looked for before the upload is refused.
const FIRST_PART_BYTES: usize = 8 * 1024;

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// What the first part of a `multipart/form-data` body says so far: `None` while it is
/// not complete, then the value of the part if it is the `csrf_token` field (and not a
/// file), or `Some(None)` if the first part is anything else.
fn first_part_token(buf: &[u8], boundary: &str) -> Option<Option<String>> {
    let opening = format!("--{boundary}\r\n");
    let start = find(buf, opening.as_bytes(), 0)?;
    let headers_at = start + opening.len();
    let headers_end = find(buf, b"\r\n\r\n", headers_at)?;
    let value_at = headers_end + 4;
    let end = find(buf, format!("\r\n--{boundary}").as_bytes(), value_at)?;
    let headers = String::from_utf8_lossy(&buf[headers_at..headers_end]).to_ascii_lowercase();
    let is_token = headers.lines().any(|line| {
        line.starts_with("content-disposition:")
            && line.contains("name=\"csrf_token\"")
            && !line.contains("filename")
    });
    Some(
        is_token
            .then(|| String::from_utf8(buf[value_at..end].to_vec()).ok())
            .flatten(),
    )
}

/// Reads an upload of at most `limit` bytes, but only once its form token is proven: by
/// the `X-CSRF-Token` header, or else by the body's first part, which must be the
/// `csrf_token` field (the console's forms put it first). A body that does not start so
/// is refused as soon as its first part has arrived, without reading the rest. A larger
/// upload (a 20 MB photo chosen by mistake) is read on and dropped, so the browser shows
/// the 「大きすぎます」 page rather than a broken connection.
async fn read_upload(
    body: poem::Body,
    limit: usize,
    boundary: &str,
    header_valid: Option<bool>,
    valid: impl Fn(&str) -> bool,
) -> Result<bytes::Bytes, Refused> {
    use tokio::io::AsyncReadExt;
    let mut checked = match header_valid {
        Some(true) => true,
        Some(false) => return Err(Refused::Forbidden),
        None => false,
    };
    let mut reader = body.into_async_read();
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = reader
            .read(&mut chunk)
            .await
            .map_err(|_| Refused::TooLarge)?;
        if n == 0 {
            break;
        }
        total += n;
        if total <= limit {
            kept.extend_from_slice(&chunk[..n]);
        } else if total > DRAIN_BYTES {
            return Err(Refused::TooLarge);
        }
        if !checked {
            match first_part_token(&kept, boundary) {
                Some(Some(token)) if valid(&token) => checked = true,
                Some(_) => return Err(Refused::Forbidden),
                None if kept.len() > FIRST_PART_BYTES || total > limit => {
                    return Err(Refused::Forbidden)
                }
                None => {}
            }
        }
    }
    if !checked {
        return Err(Refused::Forbidden);
    }
    if total > limit {
        Err(Refused::TooLarge)
    } else {
        Ok(kept.into())
    }
}

/// Whether the request carries a console session of its tenant that is still current
/// (the handler checks the admin in full; this only keeps strangers from uploading).
async fn has_console_session(
    state: &AppState,
    tenant: Option<&CurrentTenant>,
    jar: &CookieJar,
) -> bool {
    let (Some(tenant), Some(hash)) = (
        tenant,
        crate::auth::session::cookie_token_hash(jar, crate::auth::session::ADMIN_SESSION_COOKIE),
    ) else {
        return false;
    };
    let now = crate::store::now_unix();
    match state.store.admin_session(&tenant.0.id, &hash).await {
        Ok(Some(session)) => {
            now - session.last_seen_at <= super::admin::IDLE_SECS
                && now - session.created_at <= super::admin::ABSOLUTE_SECS
        }
        Ok(None) => false,
        Err(error) => {
            tracing::error!(%error, "checking the session of an upload failed");
            false
        }
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
    // Scripts posting JSON (passkey ceremonies) send the token in a header.
    let header = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = req.uri().path().to_owned();
    let refuse = |state: &AppState| {
        tracing::warn!(%path, "request without a valid CSRF token refused");
        forbidden(state)
            .with_status(StatusCode::FORBIDDEN)
            .into_response()
    };
    if multipart && upload {
        // An upload is read only for a signed-in admin whose form token is proven first:
        // a stranger's 5 MB is never buffered.
        if !has_console_session(&state, tenant.as_ref(), &jar).await {
            return Ok(refuse(&state));
        }
        let Ok(boundary) = multer::parse_boundary(&content_type) else {
            return Ok(refuse(&state));
        };
        let header_valid = header.as_deref().map(|t| guard.is_valid(&jar, t));
        let body = match read_upload(req.take_body(), limit, &boundary, header_valid, |t| {
            guard.is_valid(&jar, t)
        })
        .await
        {
            Ok(body) => body,
            Err(Refused::Forbidden) => return Ok(refuse(&state)),
            Err(Refused::TooLarge) => return Ok(error_page(&state, None, ErrorKind::TooLarge)),
        };
        req.set_body(Body::from(body));
        return next.call(req).await.map(IntoResponse::into_response);
    }
    let body = match req.take_body().into_bytes_limit(limit).await {
        Ok(body) => body,
        Err(_) => return Ok(error_page(&state, None, ErrorKind::TooLarge)),
    };
    let token = match header {
        Some(token) => Some(token),
        None if multipart => multipart_token(&content_type, body.clone()).await,
        None => form_urlencoded::parse(&body)
            .find(|(key, _)| key == "csrf_token")
            .map(|(_, value)| value.into_owned()),
    };
    let valid = token.is_some_and(|token| guard.is_valid(&jar, &token));
    if !valid {
        return Ok(refuse(&state));
    }
    req.set_body(Body::from(body));
    next.call(req).await.map(IntoResponse::into_response)
}
