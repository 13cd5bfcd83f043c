//! The admin JSON API under `/admin/api/v1/`, built with poem-openapi: the OpenAPI 3
//! document at `/admin/api/openapi.json`, interactive docs at `/admin/api/docs`. Scripts
//! authenticate with `Authorization: Bearer <token>` (API tokens of the tenant); the token
//! is checked, with the tenant of the host, before any handler runs. Errors are RFC 9457
//! problem documents (`application/problem+json`) with a stable `type`, a Japanese
//! `detail` and, for invalid input, per-field `errors`. Every endpoint calls the same
//! service function as the console.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService, SecurityScheme, Tags};

use crate::admin::members::{self as service, MemberInput};
use crate::admin::{Acting, Ctx, FieldProblem, ServiceError};
use crate::auth::session::token_hash;
use crate::ids::{AdminId, MemberId};
use crate::store::{AdminRole, AuditFilter, Member, MemberSearch};
use crate::theme::DEFAULT_THEME;
use crate::web::{AppState, CurrentTenant};

/// Where problem types are named; a stable identifier, not a page to fetch.
const PROBLEM_BASE: &str = "https://portal.invalid/problems/";
/// The largest request body the API reads.
const MAX_BODY: usize = 64 * 1024;

/// The API's OpenAPI service; `openapi_json` is the committed document's source.
pub fn service() -> OpenApiService<
    (
        Api,
        super::api_settings::SettingsApi,
        super::api_bulk::BulkApi,
    ),
    (),
> {
    OpenApiService::new(
        (Api, super::api_settings::SettingsApi, super::api_bulk::BulkApi),
        "portal admin API", "1.0")
        .description(
            "The society admin console's actions for scripts: members, their sign-in, the \
             audit log and the society's settings (draft, publish, revisions). Authenticate with an API token of the society (Authorization: Bearer).",
        )
        .server("/admin/api/v1")
}

/// The OpenAPI document, as committed in `docs/admin-api.json`.
pub fn openapi_json() -> String {
    service().spec()
}

pub fn routes(_state: &Arc<AppState>) -> Route {
    let api = service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .nest("/v1", api.around(problems))
        .at("/openapi.json", spec)
        .nest("/docs", docs)
}

// --- problem documents ---------------------------------------------------------------------

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A stable identifier of the kind of problem.
    #[oai(rename = "type")]
    pub ty: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, in Japanese.
    pub detail: String,
    /// For invalid input: what is wrong with each field.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<ProblemField>>,
}

#[derive(Debug, Clone, Object)]
pub struct ProblemField {
    pub field: String,
    pub detail: String,
}

fn console_text(state: &AppState, key: &str) -> String {
    state
        .console
        .get(DEFAULT_THEME)
        .map(|ui| ui.text(key).to_owned())
        .unwrap_or_else(|_| key.to_owned())
}

fn problem(state: Option<&AppState>, status: StatusCode, kind: &str) -> Problem {
    let detail = match state {
        Some(state) => console_text(state, &format!("api.{kind}")),
        None => kind.to_owned(),
    };
    Problem {
        ty: format!("{PROBLEM_BASE}{kind}"),
        title: status.canonical_reason().unwrap_or("error").to_owned(),
        status: status.as_u16(),
        detail,
        errors: None,
    }
}

fn problem_response(p: Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&p.to_json()).unwrap_or_default();
    body.with_status(status)
        .with_content_type("application/problem+json")
        .into_response()
}

/// Every error of the API, whatever raised it (routing, parsing, authentication), leaves
/// as a problem document.
async fn problems<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let state = req.data::<Arc<AppState>>().cloned();
    // No request of the API needs more than this (a roster file on its one path);
    // longer bodies are refused unread.
    let limit = if req.uri().path().ends_with("/members/import") {
        crate::admin::roster::MAX_BYTES
    } else {
        MAX_BODY
    };
    let body = match req.take_body().into_bytes_limit(limit).await {
        Ok(body) => body,
        Err(_) => {
            return Ok(problem_response(problem(
                state.as_deref(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
            )))
        }
    };
    req.set_body(poem::Body::from(body));
    // Answers carry members' personal data and, at times, credentials: never kept.
    let answer = match next.call(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(e) => {
            let status = e.status();
            let kind = match status {
                StatusCode::UNAUTHORIZED => "unauthorized",
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                s if s.is_server_error() => {
                    tracing::error!(error = %e, "admin API request failed");
                    "internal"
                }
                _ => "bad_request",
            };
            Ok(problem_response(problem(state.as_deref(), status, kind)))
        }
    };
    answer.map(|r| {
        r.with_header(poem::http::header::CACHE_CONTROL, "no-store")
            .into_response()
    })
}

/// Answers of every endpoint: the result, or a problem document.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum Reply<T: ToJSON + Send + Sync + Type> {
    #[oai(status = 200)]
    Ok(Json<T>),
    /// Created.
    #[oai(status = 201)]
    Created(Json<T>),
    /// The request could not be read (wrong types, missing fields).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No valid API token for this society.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The token's role may not do this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// Invalid input; `errors` names each field. Nothing changed.
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    /// Something went wrong on the server; nothing changed.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// Busy; try again shortly.
    #[oai(status = 503, content_type = "application/problem+json")]
    Busy(Json<Problem>),
}

fn bad_request<T: ToJSON + Send + Sync + Type>(err: poem::Error) -> Reply<T> {
    match err.status() {
        StatusCode::UNAUTHORIZED => Reply::Unauthorized(Json(problem(
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ))),
        StatusCode::FORBIDDEN => {
            Reply::Forbidden(Json(problem(None, StatusCode::FORBIDDEN, "forbidden")))
        }
        _ => {
            let field = err
                .downcast_ref::<poem_openapi::error::ParseParamError>()
                .map(|e| e.name.to_owned());
            let mut p = problem(None, StatusCode::BAD_REQUEST, "bad_request");
            if let Some(field) = field {
                p.errors = Some(vec![ProblemField {
                    field,
                    detail: "値の形式が正しくありません。".to_owned(),
                }]);
            }
            Reply::BadRequest(Json(p))
        }
    }
}

impl<T: ToJSON + Send + Sync + Type> Reply<T> {
    /// A service error as its problem document, with Japanese texts.
    pub(super) fn failed(state: &AppState, error: ServiceError) -> Self {
        let mk = |status, kind: &str| problem(Some(state), status, kind);
        match error {
            ServiceError::Invalid(fields) => {
                let mut p = mk(StatusCode::UNPROCESSABLE_ENTITY, "invalid");
                p.errors = Some(
                    fields
                        .iter()
                        .map(|f: &FieldProblem| ProblemField {
                            field: f.field.to_owned(),
                            detail: f.message.clone().unwrap_or_else(|| {
                                console_text(state, &format!("errors.{}", f.code))
                            }),
                        })
                        .collect(),
                );
                Reply::Invalid(Json(p))
            }
            ServiceError::NotFound => Reply::NotFound(Json(mk(StatusCode::NOT_FOUND, "not_found"))),
            ServiceError::Forbidden => {
                Reply::Forbidden(Json(mk(StatusCode::FORBIDDEN, "forbidden")))
            }
            ServiceError::Conflict(key) => {
                let mut p = mk(StatusCode::CONFLICT, "conflict");
                p.detail = console_text(state, &format!("errors.{key}"));
                Reply::Conflict(Json(p))
            }
            ServiceError::Busy => Reply::Busy(Json(mk(StatusCode::SERVICE_UNAVAILABLE, "busy"))),
            ServiceError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "admin API action failed");
                Reply::Internal(Json(mk(StatusCode::INTERNAL_SERVER_ERROR, "internal")))
            }
        }
    }

    pub(super) fn from(state: &AppState, result: Result<T, ServiceError>) -> Self {
        match result {
            Ok(v) => Reply::Ok(Json(v)),
            Err(e) => Self::failed(state, e),
        }
    }
}

// --- authentication ------------------------------------------------------------------------

/// An API token of the society whose host the request was sent to.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_token")]
pub struct Token(pub Acting);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<Acting> {
    let unauthorized = || poem::Error::from_status(StatusCode::UNAUTHORIZED);
    let state = req.data::<Arc<AppState>>().ok_or_else(unauthorized)?;
    let tenant = req
        .extensions()
        .get::<CurrentTenant>()
        .ok_or_else(unauthorized)?;
    let secret = bearer.token.strip_prefix("pat_").unwrap_or("");
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unauthorized());
    }
    let token = state
        .store
        .use_api_token(&tenant.0.id, &token_hash(secret))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "checking an API token failed");
            poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR)
        })?
        .ok_or_else(unauthorized)?;
    let meta = crate::web::RequestMeta::from_request_without_body(req).await?;
    Ok(Acting {
        admin: AdminId::from_db(token.admin_id),
        role: AdminRole::parse(&token.role).unwrap_or(AdminRole::Operator),
        ip: meta.ip,
        user_agent: meta.user_agent,
    })
}

// --- payloads ------------------------------------------------------------------------------

#[derive(Debug, Clone, Object)]
pub struct MemberOut {
    pub id: String,
    pub user_id: String,
    pub display_name: String,
    pub name_kana: String,
    /// YYYY-MM-DD
    pub birth_date: String,
    pub email: String,
    pub email_confirmed: bool,
    /// active | temporary | locked | disabled
    pub state: String,
    pub card_symbol: String,
    pub card_number: String,
    #[oai(skip_serializing_if_is_none)]
    pub terms_version: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl MemberOut {
    fn of(m: &Member) -> Self {
        Self {
            id: m.id.to_string(),
            user_id: m.user_id.clone(),
            display_name: m.display_name.clone(),
            name_kana: m.name_kana.clone(),
            birth_date: m.birth_date.clone(),
            email: m.email.clone(),
            email_confirmed: m.email_confirmed,
            state: m.console_state(crate::store::now_unix()).to_owned(),
            card_symbol: m.card_symbol.clone(),
            card_number: m.card_number.clone(),
            terms_version: m.terms_version.clone(),
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct MemberPage {
    pub members: Vec<MemberOut>,
    /// Pass as `after` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct FactorOut {
    /// totp | passkey | email_otp
    pub kind: String,
    pub name: String,
    #[oai(skip_serializing_if_is_none)]
    pub created_at: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, Object)]
pub struct SessionOut {
    pub created_at: i64,
    pub last_seen_at: i64,
    pub auth_method: String,
}

#[derive(Debug, Clone, Object)]
pub struct AuditEventOut {
    pub id: String,
    pub created_at: i64,
    /// member | admin | system | anonymous
    pub actor_type: String,
    #[oai(skip_serializing_if_is_none)]
    pub actor_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub actor_name: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub member_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub member_user_id: Option<String>,
    pub event: String,
    pub detail: String,
    #[oai(skip_serializing_if_is_none)]
    pub before: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub after: Option<String>,
    pub ip: String,
    pub user_agent: String,
}

impl AuditEventOut {
    fn of(r: crate::store::AuditRow) -> Self {
        Self {
            id: r.id,
            created_at: r.created_at,
            actor_type: r.actor_type,
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            member_id: r.member_id,
            member_user_id: r.member_user_id,
            event: r.event,
            detail: r.detail,
            before: r.before_value,
            after: r.after_value,
            ip: r.ip,
            user_agent: r.user_agent,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct MemberDetailOut {
    pub member: MemberOut,
    pub factors: Vec<FactorOut>,
    pub sessions: Vec<SessionOut>,
    pub recent_events: Vec<AuditEventOut>,
}

#[derive(Debug, Clone, Object)]
pub struct MemberCreate {
    #[oai(validator(max_length = 200))]
    pub display_name: String,
    #[oai(default, validator(max_length = 200))]
    pub name_kana: String,
    /// YYYY-MM-DD
    #[oai(validator(max_length = 20))]
    pub birth_date: String,
    #[oai(validator(max_length = 320))]
    pub email: String,
    #[oai(default, validator(max_length = 100))]
    pub card_symbol: String,
    #[oai(default, validator(max_length = 100))]
    pub card_number: String,
}

#[derive(Debug, Clone, Object)]
pub struct Rename {
    #[oai(validator(max_length = 200))]
    pub display_name: String,
    #[oai(default, validator(max_length = 200))]
    pub name_kana: String,
}

#[derive(Debug, Clone, Object)]
pub struct EmailChange {
    /// The member's new address; both the old and the new one are told.
    #[oai(validator(max_length = 320))]
    pub email: String,
}

/// Temporary credentials, shown this once, and the print view of their letter.
#[derive(Debug, Clone, Object)]
pub struct IssuedOut {
    pub member_id: String,
    pub user_id: String,
    pub password: String,
    /// The console page that prints the letter (valid for an hour).
    pub letter_url: String,
}

impl IssuedOut {
    fn of(i: service::Issued) -> Self {
        Self {
            member_id: i.member_id.to_string(),
            user_id: i.user_id,
            password: i.password,
            letter_url: format!("/admin/letters/{}", i.letter_batch),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct Count {
    pub count: i64,
}

#[derive(Debug, Clone, Object)]
pub struct AuditPage {
    pub events: Vec<AuditEventOut>,
    /// Pass as `before` for older events; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_before: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct AdminOut {
    pub id: String,
    pub email: String,
    /// admin | operator
    pub role: String,
    /// invited | active | disabled
    pub state: String,
}

#[derive(Tags)]
pub(super) enum Tag {
    /// Members of the society.
    Members,
    /// The audit log.
    Audit,
    /// The society's admins (role `admin` only).
    Admins,
    /// The society's settings: a draft, what it would change, publishing, revisions.
    Settings,
}

// --- endpoints -----------------------------------------------------------------------------

pub struct Api;

/// A member id from a path: anything else is a member that does not exist.
fn member_id(id: &str) -> Result<MemberId, ServiceError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(MemberId::from_db(id.to_owned()))
    } else {
        Err(ServiceError::NotFound)
    }
}

#[OpenApi]
impl Api {
    /// Search members by user ID, name, e-mail, birth date and state, 50 at a time.
    #[oai(path = "/members", method = "get", tag = "Tag::Members")]
    #[allow(clippy::too_many_arguments)]
    async fn list_members(
        &self,
        req: &Request,
        Token(acting): Token,
        /// Start of the user ID or e-mail address, or part of the name.
        q: Query<Option<String>>,
        /// YYYY-MM-DD
        birth_date: Query<Option<String>>,
        /// active | temporary | locked | disabled
        state: Query<Option<String>>,
        /// The `next_after` of the previous page.
        after: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<i64>,
    ) -> Reply<MemberPage> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let search = MemberSearch {
            query: q.0.filter(|s| !s.is_empty()),
            birth_date: birth_date.0.filter(|s| !s.is_empty()),
            state: state.0.filter(|s| !s.is_empty()),
            after: after.0.filter(|s| !s.is_empty()),
            limit: limit.0 + 1,
        };
        let result = service::search(&ctx, &search).await.map(|mut found| {
            let mut next_after = None;
            if found.len() as i64 > limit.0 {
                found.truncate(limit.0 as usize);
                next_after = found.last().map(|m| m.user_id.clone());
            }
            MemberPage {
                members: found.iter().map(MemberOut::of).collect(),
                next_after,
            }
        });
        Reply::from(app, result)
    }

    /// Register a member; the temporary user ID and password are returned this once.
    #[oai(path = "/members", method = "post", tag = "Tag::Members")]
    async fn create_member(
        &self,
        req: &Request,
        Token(acting): Token,
        body: Json<MemberCreate>,
    ) -> Reply<IssuedOut> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let input = MemberInput {
            display_name: body.0.display_name,
            name_kana: body.0.name_kana,
            birth_date: body.0.birth_date,
            email: body.0.email,
            card_symbol: body.0.card_symbol,
            card_number: body.0.card_number,
            user_id: String::new(),
        };
        match service::create(&ctx, &input).await {
            Ok(issued) => Reply::Created(Json(IssuedOut::of(issued))),
            Err(e) => Reply::failed(app, e),
        }
    }

    /// A member with their factors, sessions and recent audit events.
    #[oai(path = "/members/:id", method = "get", tag = "Tag::Members")]
    async fn get_member(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<MemberDetailOut> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let result = match member_id(&id.0) {
            Ok(id) => service::detail(&ctx, &id).await,
            Err(e) => Err(e),
        }
        .map(|d| MemberDetailOut {
            factors: d
                .devices
                .iter()
                .map(|dev| FactorOut {
                    kind: dev.kind.clone(),
                    name: dev.name.clone(),
                    created_at: Some(dev.created_at),
                    last_used_at: dev.last_used_at,
                })
                .chain(d.member.email_otp_enabled.then(|| FactorOut {
                    kind: "email_otp".into(),
                    name: d.member.email.clone(),
                    created_at: None,
                    last_used_at: None,
                }))
                .collect(),
            sessions: d
                .sessions
                .iter()
                .map(|s| SessionOut {
                    created_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                    auth_method: s.auth_method.clone(),
                })
                .collect(),
            recent_events: d.events.into_iter().map(AuditEventOut::of).collect(),
            member: MemberOut::of(&d.member),
        });
        Reply::from(app, result)
    }

    /// 「ロック解除」: lift the member's lock.
    #[oai(path = "/members/:id/unlock", method = "post", tag = "Tag::Members")]
    async fn unlock(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<MemberOut> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let result = match member_id(&id.0) {
            Ok(id) => service::unlock(&ctx, &id).await,
            Err(e) => Err(e),
        };
        Reply::from(app, result.map(|m| MemberOut::of(&m)))
    }

    /// 「氏名変更」: change the member's name.
    #[oai(path = "/members/:id/name", method = "put", tag = "Tag::Members")]
    async fn rename(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
        body: Json<Rename>,
    ) -> Reply<MemberOut> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let result = match member_id(&id.0) {
            Ok(id) => service::rename(&ctx, &id, &body.0.display_name, &body.0.name_kana).await,
            Err(e) => Err(e),
        };
        Reply::from(app, result.map(|m| MemberOut::of(&m)))
    }

    /// 「メールアドレス変更」: the society corrects the member's address (the member cannot
    /// receive mail at the registered one). Both addresses are told; e-mail codes stop
    /// being a factor until the member proves the new address.
    #[oai(path = "/members/:id/email", method = "put", tag = "Tag::Members")]
    async fn change_email(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
        body: Json<EmailChange>,
    ) -> Reply<MemberOut> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let result = match member_id(&id.0) {
            Ok(id) => service::change_email(&ctx, &id, &body.0.email).await,
            Err(e) => Err(e),
        };
        Reply::from(app, result.map(|m| MemberOut::of(&m)))
    }

    /// 「パスワード再発行」: new temporary credentials (returned this once) and a letter.
    #[oai(
        path = "/members/:id/password-reset",
        method = "post",
        tag = "Tag::Members"
    )]
    async fn reset_password(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<IssuedOut> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let result = match member_id(&id.0) {
            Ok(id) => service::reset_password(&ctx, &id).await,
            Err(e) => Err(e),
        };
        Reply::from(app, result.map(IssuedOut::of))
    }

    /// 「二要素認証リセット」: remove every second factor; returns how many were removed.
    #[oai(
        path = "/members/:id/factor-reset",
        method = "post",
        tag = "Tag::Members"
    )]
    async fn reset_factors(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<Count> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let result = match member_id(&id.0) {
            Ok(id) => service::reset_factors(&ctx, &id).await,
            Err(e) => Err(e),
        };
        Reply::from(app, result.map(|n| Count { count: n as i64 }))
    }

    /// 「利用停止」: the member can no longer sign in; every session ends at once.
    #[oai(path = "/members/:id/disable", method = "post", tag = "Tag::Members")]
    async fn disable(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<MemberOut> {
        self.set_disabled(req, acting, id, true).await
    }

    /// 「利用再開」: the member may sign in again.
    #[oai(path = "/members/:id/enable", method = "post", tag = "Tag::Members")]
    async fn enable(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<MemberOut> {
        self.set_disabled(req, acting, id, false).await
    }

    /// 「ログアウトさせる」: end every session of the member; returns how many ended.
    #[oai(path = "/members/:id/logout", method = "post", tag = "Tag::Members")]
    async fn logout(&self, req: &Request, Token(acting): Token, id: Path<String>) -> Reply<Count> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let result = match member_id(&id.0) {
            Ok(id) => service::end_sessions(&ctx, &id).await,
            Err(e) => Err(e),
        };
        Reply::from(app, result.map(|n| Count { count: n as i64 }))
    }

    /// The audit log, newest first, 100 at a time.
    #[oai(path = "/audit-events", method = "get", tag = "Tag::Audit")]
    #[allow(clippy::too_many_arguments)]
    async fn audit_events(
        &self,
        req: &Request,
        Token(_acting): Token,
        /// Events about this member (id).
        member_id: Query<Option<String>>,
        /// member | admin | system | anonymous
        actor_type: Query<Option<String>>,
        event: Query<Option<String>>,
        /// Unix seconds, inclusive.
        from: Query<Option<i64>>,
        /// Unix seconds, exclusive.
        until: Query<Option<i64>>,
        /// The `next_before` of the previous page.
        before: Query<Option<String>>,
    ) -> Reply<AuditPage> {
        let (app, tenant) = parts(req);
        let mut problems = Vec::new();
        if let Some(a) = actor_type.0.as_deref() {
            if !matches!(a, "member" | "admin" | "system" | "anonymous") {
                problems.push(FieldProblem::new("actor_type", "actor_unknown"));
            }
        }
        let cursor = match before.0.as_deref() {
            None | Some("") => None,
            Some(b) => match b
                .split_once('.')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
            {
                Some(c) => Some(c),
                None => {
                    problems.push(FieldProblem::new("before", "invalid"));
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Reply::failed(app, ServiceError::Invalid(problems));
        }
        let filter = AuditFilter {
            member_id: member_id.0.filter(|s| !s.is_empty()),
            actor_type: actor_type.0.filter(|s| !s.is_empty()),
            actor_id: None,
            event: event.0.filter(|s| !s.is_empty()),
            from: from.0,
            until: until.0,
            before: cursor,
        };
        const LIMIT: i64 = 100;
        let rows = app.store.audit_page(&tenant.0.id, &filter, LIMIT + 1).await;
        let result = rows.map_err(ServiceError::from).map(|mut rows| {
            let mut next_before = None;
            if rows.len() as i64 > LIMIT {
                rows.truncate(LIMIT as usize);
                next_before = rows.last().map(|r| format!("{}.{}", r.created_at, r.id));
            }
            AuditPage {
                events: rows.into_iter().map(AuditEventOut::of).collect(),
                next_before,
            }
        });
        Reply::from(app, result)
    }

    /// The society's admins (role `admin` only).
    #[oai(path = "/admins", method = "get", tag = "Tag::Admins")]
    async fn admins(&self, req: &Request, Token(acting): Token) -> Reply<Vec<AdminOut>> {
        let (app, tenant) = parts(req);
        let result = async {
            let full = acting.require_admin()?;
            let admins = crate::admin::accounts::list(app, &tenant.0, &full).await?;
            Ok(admins.iter().map(AdminOut::of).collect())
        }
        .await;
        Reply::from(app, result)
    }

    /// Invite an admin: the invitation link is mailed; an address still invited is invited
    /// afresh and its earlier links stop working (role `admin` only).
    #[oai(path = "/admins", method = "post", tag = "Tag::Admins")]
    async fn invite_admin(
        &self,
        req: &Request,
        Token(acting): Token,
        body: Json<AdminInvite>,
    ) -> Reply<InvitedOut> {
        let (app, tenant) = parts(req);
        let result = async {
            let full = acting.require_admin()?;
            let role = parse_role(&body.0.role)?;
            crate::admin::accounts::invite(app, &tenant.0, &body.0.email, role, Some(&full)).await
        }
        .await;
        match result {
            Ok(i) => Reply::Created(Json(InvitedOut {
                admin_id: i.admin_id.to_string(),
            })),
            Err(e) => Reply::failed(app, e),
        }
    }

    /// Change another admin's role or disable/enable them; an admin's own account is changed
    /// by another admin only, the society keeps one active `admin`, and disabling revokes
    /// the admin's tokens for good (role `admin` only).
    #[oai(path = "/admins/:id", method = "put", tag = "Tag::Admins")]
    async fn update_admin(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
        body: Json<AdminUpdate>,
    ) -> Reply<AdminOut> {
        let (app, tenant) = parts(req);
        let result = async {
            let full = acting.require_admin()?;
            let role = parse_role(&body.0.role)?;
            let id = AdminId::from_db(id.0.clone());
            crate::admin::accounts::update(app, &tenant.0, &full, &id, role, body.0.disabled).await
        }
        .await;
        Reply::from(app, result.map(|a| AdminOut::of(&a)))
    }

    /// 「ロック解除」 of another admin; they are told by mail (role `admin` only).
    #[oai(path = "/admins/:id/unlock", method = "post", tag = "Tag::Admins")]
    async fn unlock_admin(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<AdminOut> {
        let (app, tenant) = parts(req);
        let result = async {
            let full = acting.require_admin()?;
            let id = AdminId::from_db(id.0.clone());
            crate::admin::accounts::unlock(app, &tenant.0, Some(&full), &id).await
        }
        .await;
        Reply::from(app, result.map(|a| AdminOut::of(&a)))
    }

    /// 「二要素認証リセット」 of another admin: their factors and sessions end, they are
    /// `invited` again and a fresh invitation link is mailed to them (role `admin` only).
    #[oai(
        path = "/admins/:id/reset-factors",
        method = "post",
        tag = "Tag::Admins"
    )]
    async fn reset_admin_factors(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<AdminOut> {
        let (app, tenant) = parts(req);
        let result = async {
            let full = acting.require_admin()?;
            let id = AdminId::from_db(id.0.clone());
            crate::admin::accounts::reset_factors(app, &tenant.0, Some(&full), &id).await
        }
        .await;
        Reply::from(app, result.map(|r| AdminOut::of(&r.admin)))
    }

    /// The society's API tokens, newest first (role `admin` only).
    #[oai(path = "/tokens", method = "get", tag = "Tag::Admins")]
    async fn tokens(&self, req: &Request, Token(acting): Token) -> Reply<Vec<TokenOut>> {
        let (app, tenant) = parts(req);
        let result = async {
            let full = acting.require_admin()?;
            let list = crate::admin::tokens::list(app, &tenant.0, &full).await?;
            Ok(list.iter().map(TokenOut::of).collect())
        }
        .await;
        Reply::from(app, result)
    }

    /// Create a token for the calling admin: shown this once (role `admin` only).
    #[oai(path = "/tokens", method = "post", tag = "Tag::Admins")]
    async fn create_token(
        &self,
        req: &Request,
        Token(acting): Token,
        body: Json<TokenCreate>,
    ) -> Reply<TokenCreated> {
        let (app, tenant) = parts(req);
        let result = async {
            let full = acting.require_admin()?;
            let role = parse_role(&body.0.role)?;
            let a = full.acting();
            crate::admin::tokens::create(
                app,
                &tenant.0,
                &a.admin,
                a.role,
                &body.0.name,
                role,
                body.0.days,
                (&a.ip, &a.user_agent),
            )
            .await
        }
        .await;
        match result {
            Ok(t) => Reply::Created(Json(TokenCreated {
                id: t.id,
                token: t.token,
                expires_at: t.expires_at,
            })),
            Err(e) => Reply::failed(app, e),
        }
    }

    /// Revoke a token at once (role `admin` only).
    #[oai(path = "/tokens/:id/revoke", method = "post", tag = "Tag::Admins")]
    async fn revoke_token(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<Count> {
        let (app, tenant) = parts(req);
        let result = async {
            let full = acting.require_admin()?;
            crate::admin::tokens::revoke(app, &tenant.0, &full, &id.0).await?;
            Ok(Count { count: 1 })
        }
        .await;
        Reply::from(app, result)
    }
}

fn parse_role(role: &str) -> Result<AdminRole, ServiceError> {
    AdminRole::parse(role)
        .ok_or_else(|| ServiceError::Invalid(vec![FieldProblem::new("role", "role_unknown")]))
}

#[derive(Debug, Clone, Object)]
pub struct AdminInvite {
    #[oai(validator(max_length = 320))]
    pub email: String,
    /// admin | operator
    #[oai(validator(max_length = 20))]
    pub role: String,
}

#[derive(Debug, Clone, Object)]
pub struct InvitedOut {
    pub admin_id: String,
}

#[derive(Debug, Clone, Object)]
pub struct AdminUpdate {
    /// admin | operator
    #[oai(validator(max_length = 20))]
    pub role: String,
    pub disabled: bool,
}

#[derive(Debug, Clone, Object)]
pub struct TokenCreate {
    #[oai(validator(max_length = 200))]
    pub name: String,
    /// admin | operator (at most the caller's role)
    #[oai(validator(max_length = 20))]
    pub role: String,
    /// Days until it expires, 1–365.
    pub days: i64,
}

#[derive(Debug, Clone, Object)]
pub struct TokenCreated {
    pub id: String,
    /// Shown this once.
    pub token: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Object)]
pub struct TokenOut {
    pub id: String,
    pub name: String,
    pub admin_id: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: i64,
    #[oai(skip_serializing_if_is_none)]
    pub last_used_at: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub revoked_at: Option<i64>,
}

impl TokenOut {
    fn of(t: &crate::store::ApiToken) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            admin_id: t.admin_id.clone(),
            role: t.role.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

impl AdminOut {
    fn of(a: &crate::store::Admin) -> Self {
        Self {
            id: a.id.to_string(),
            email: a.email.clone(),
            role: a.role.as_str().to_owned(),
            state: a.state.as_str().to_owned(),
        }
    }
}

impl Api {
    async fn set_disabled(
        &self,
        req: &Request,
        acting: Acting,
        id: Path<String>,
        disabled: bool,
    ) -> Reply<MemberOut> {
        let (app, tenant) = parts(req);
        let ctx = Ctx {
            state: app,
            tenant: &tenant.0,
            acting: &acting,
        };
        let result = match member_id(&id.0) {
            Ok(id) => service::set_disabled(&ctx, &id, disabled).await,
            Err(e) => Err(e),
        };
        Reply::from(app, result.map(|m| MemberOut::of(&m)))
    }
}

fn default_limit() -> i64 {
    50
}

/// What the service functions need for a request that passed the token check.
pub(super) fn service_ctx<'a>(req: &'a Request, acting: &'a Acting) -> Ctx<'a> {
    let (state, tenant) = parts(req);
    Ctx {
        state,
        tenant: &tenant.0,
        acting,
    }
}

/// The application and the tenant of a request that passed the token check (both are
/// attached before any API handler runs).
pub(super) fn parts(req: &Request) -> (&AppState, &CurrentTenant) {
    let state = req
        .data::<Arc<AppState>>()
        .expect("AppState is attached to the tenant listener");
    let tenant = req
        .extensions()
        .get::<CurrentTenant>()
        .expect("the tenant is resolved before the API");
    (state, tenant)
}

#[cfg(test)]
pub(crate) mod tests {
    /// The committed `docs/admin-api.json` is the generated document: a change to the API
    /// is a visible diff. `PORTAL_WRITE_OPENAPI=1 cargo test openapi` rewrites it.
    #[test]
    fn the_committed_openapi_document_is_current() {
        check_committed("admin-api.json", &super::openapi_json());
    }

    /// Compares `docs/<name>` with `generated` (rewriting it first when
    /// `PORTAL_WRITE_OPENAPI` is set).
    pub(crate) fn check_committed(name: &str, generated: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(name);
        let generated = format!("{generated}\n");
        if std::env::var_os("PORTAL_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/{name} differs from the API; run \
             `PORTAL_WRITE_OPENAPI=1 cargo test openapi` and commit the file"
        );
    }
}
