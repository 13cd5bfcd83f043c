//! The ops API for platform operators, on the operations listener only (never on a tenant
//! host): list, create, update, disable and enable tenants, and invite a society's first
//! admin. Authenticated by operator tokens (`portal ops token create`); every action runs
//! the same function as the command line (`crate::ops`) and is audited.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService, SecurityScheme};

use crate::ops::{self, Expect, Operator, OpsError};
use crate::store::OperatorToken;
use crate::tenant::TenantFile;
use crate::web::AppState;

/// Largest tenant file the API reads.
const MAX_FILE: usize = 256 * 1024;

pub fn service() -> OpenApiService<OpsApi, ()> {
    OpenApiService::new(OpsApi, "portal ops API", "1.0")
        .description(
            "Platform operations: onboard and change societies (tenants), enable and disable \
             them, invite a society's first admin. Served on the operations listener only. \
             Authenticate with an operator token (Authorization: Bearer ops_…) from \
             `portal ops token create <name>`.",
        )
        .server("/api/v1")
}

/// The OpenAPI document, as committed in `docs/ops-api.json`.
pub fn openapi_json() -> String {
    service().spec()
}

pub fn routes() -> poem::Route {
    let api = service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    poem::Route::new()
        .nest("/v1", poem::EndpointExt::around(api, limit_body))
        .at("/openapi.json", spec)
        .nest("/docs", docs)
}

/// Reads at most [`MAX_FILE`] bytes of a request body; more is refused with 413.
async fn limit_body<E: poem::Endpoint>(
    next: Arc<E>,
    mut req: Request,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse;
    let body = req.take_body();
    match body.into_bytes_limit(MAX_FILE).await {
        Ok(bytes) => {
            req.set_body(bytes);
            next.call(req).await.map(IntoResponse::into_response)
        }
        Err(_) => Ok(serde_json::json!({
            "type": "https://portal.invalid/problems/too_large",
            "title": "Payload Too Large",
            "status": 413,
            "detail": format!("the request body is larger than {MAX_FILE} bytes"),
        })
        .to_string()
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        .with_content_type("application/problem+json")
        .into_response()),
    }
}

/// An operator token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_token")]
pub struct OperatorAuth(OperatorToken);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<OperatorToken> {
    let unauthorized = || poem::Error::from_status(StatusCode::UNAUTHORIZED);
    let state = req.data::<Arc<AppState>>().ok_or_else(unauthorized)?;
    match ops::check_token(&state.store, &bearer.token).await {
        Ok(Some(token)) => Ok(token),
        Ok(None) => Err(unauthorized()),
        Err(error) => {
            tracing::error!(%error, "checking an operator token failed");
            Err(poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

/// A problem document (RFC 9457).
#[derive(Debug, Clone, Object)]
pub struct OpsProblem {
    #[oai(rename = "type")]
    pub ty: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

#[derive(Debug, Clone, Object)]
pub struct TenantSummary {
    pub slug: String,
    pub display_name: String,
    pub enabled: bool,
    /// Extra host names besides `<slug>.<base domain>`.
    pub hosts: Vec<String>,
    /// Moves with every change of the definition.
    pub revision: i64,
}

#[derive(Debug, Clone, Object)]
pub struct FieldChange {
    /// Path in the tenant file, e.g. `password.min_length`.
    pub field: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

#[derive(Debug, Clone, Object)]
pub struct ApplyResult {
    pub slug: String,
    /// `created`, `updated` or `unchanged` (in a dry run: what would happen).
    pub outcome: String,
    pub dry_run: bool,
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Clone, Object)]
pub struct AdminRequest {
    /// The admin's e-mail address; the invitation is mailed there.
    pub email: String,
}

#[derive(Debug, Clone, Object)]
pub struct AdminInvitation {
    pub admin_id: String,
    /// Where the admin sets a password and a second factor (valid 24 hours).
    pub setup_url: String,
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum Reply<T: poem_openapi::types::ToJSON + Send + Sync> {
    #[oai(status = 200)]
    Ok(Json<T>),
    #[oai(status = 201)]
    Created(Json<T>),
    /// The request could not be read.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<OpsProblem>),
    /// No valid operator token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<OpsProblem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<OpsProblem>),
    /// The tenant (or admin) exists already, or a host belongs to another tenant.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<OpsProblem>),
    /// The request body is too large.
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<OpsProblem>),
    /// The tenant file is invalid; `detail` lists every field. Nothing changed.
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<OpsProblem>),
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<OpsProblem>),
}

fn problem(status: StatusCode, kind: &str, detail: String) -> Json<OpsProblem> {
    Json(OpsProblem {
        ty: format!("https://portal.invalid/problems/{kind}"),
        title: status.canonical_reason().unwrap_or("").to_owned(),
        status: status.as_u16(),
        detail,
    })
}

fn bad_request<T: poem_openapi::types::ToJSON + Send + Sync>(err: poem::Error) -> Reply<T> {
    if err.status() == StatusCode::UNAUTHORIZED {
        return Reply::Unauthorized(problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid operator token is required (Authorization: Bearer ops_…)".into(),
        ));
    }
    Reply::BadRequest(problem(
        StatusCode::BAD_REQUEST,
        "bad_request",
        err.to_string(),
    ))
}

impl<T: poem_openapi::types::ToJSON + Send + Sync> Reply<T> {
    fn failed(error: OpsError) -> Self {
        match error {
            OpsError::Invalid(d) => {
                Reply::Invalid(problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid", d))
            }
            OpsError::NotFound(slug) => Reply::NotFound(problem(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no tenant '{slug}'"),
            )),
            OpsError::Conflict(d) => Reply::Conflict(problem(StatusCode::CONFLICT, "conflict", d)),
            OpsError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "ops API action failed");
                Reply::Internal(problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the action failed; nothing changed".into(),
                ))
            }
        }
    }
}

fn parse_file(text: &str) -> Result<TenantFile, OpsError> {
    if text.len() > MAX_FILE {
        return Err(OpsError::Invalid(format!(
            "the tenant file is larger than {MAX_FILE} bytes"
        )));
    }
    Ok(TenantFile::parse(text)?)
}

fn result(report: ops::ApplyReport) -> ApplyResult {
    ApplyResult {
        slug: report.slug,
        outcome: report.outcome.to_owned(),
        dry_run: report.dry_run,
        changes: report
            .changes
            .into_iter()
            .map(|c| FieldChange {
                field: c.field,
                before: c.before,
                after: c.after,
            })
            .collect(),
    }
}

pub struct OpsApi;

#[OpenApi]
impl OpsApi {
    /// Every tenant.
    #[oai(path = "/tenants", method = "get")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: OperatorAuth,
    ) -> Reply<Vec<TenantSummary>> {
        match state.store.tenants().await {
            Ok(tenants) => Reply::Ok(Json(
                tenants
                    .into_iter()
                    .map(|t| TenantSummary {
                        slug: t.slug,
                        display_name: t.display_name,
                        enabled: t.enabled,
                        hosts: t.aliases,
                        revision: t.revision,
                    })
                    .collect(),
            )),
            Err(e) => Reply::failed(OpsError::Internal(e.into())),
        }
    }

    /// Creates a tenant from its tenant file (TOML, as `portal tenant new` writes it). It is
    /// served on every node within the refresh interval, with the default theme.
    #[oai(path = "/tenants", method = "post")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        auth: OperatorAuth,
        /// Report what would be created and change nothing.
        dry_run: Query<Option<bool>>,
        body: PlainText<String>,
    ) -> Reply<ApplyResult> {
        let dry_run = dry_run.0.unwrap_or(false);
        let file = match parse_file(&body.0) {
            Ok(f) => f,
            Err(e) => return Reply::failed(e),
        };
        match ops::apply(
            &state,
            Operator(&auth.0.name),
            &file,
            Expect::Create,
            dry_run,
        )
        .await
        {
            Ok(report) if dry_run => Reply::Ok(Json(result(report))),
            Ok(report) => Reply::Created(Json(result(report))),
            Err(e) => Reply::failed(e),
        }
    }

    /// Replaces a tenant's definition with this tenant file; the slug must match.
    #[oai(path = "/tenants/:slug", method = "put")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        auth: OperatorAuth,
        slug: Path<String>,
        /// Report the changes field by field and change nothing.
        dry_run: Query<Option<bool>>,
        body: PlainText<String>,
    ) -> Reply<ApplyResult> {
        let file = match parse_file(&body.0) {
            Ok(f) => f,
            Err(e) => return Reply::failed(e),
        };
        if file.slug != slug.0 {
            return Reply::failed(OpsError::Invalid(format!(
                "slug: the file names '{}', the address '{}'",
                file.slug, slug.0
            )));
        }
        let dry_run = dry_run.0.unwrap_or(false);
        match ops::apply(
            &state,
            Operator(&auth.0.name),
            &file,
            Expect::Update,
            dry_run,
        )
        .await
        {
            Ok(report) => Reply::Ok(Json(result(report))),
            Err(e) => Reply::failed(e),
        }
    }

    /// Stops serving the tenant: its pages answer 「ご利用いただけません」 and its sessions
    /// stop working at their next request, on every node.
    #[oai(path = "/tenants/:slug/disable", method = "post")]
    async fn disable(
        &self,
        state: Data<&Arc<AppState>>,
        auth: OperatorAuth,
        slug: Path<String>,
    ) -> Reply<TenantSummary> {
        self.set_enabled(&state, &auth, &slug.0, false).await
    }

    /// Serves a disabled tenant again.
    #[oai(path = "/tenants/:slug/enable", method = "post")]
    async fn enable(
        &self,
        state: Data<&Arc<AppState>>,
        auth: OperatorAuth,
        slug: Path<String>,
    ) -> Reply<TenantSummary> {
        self.set_enabled(&state, &auth, &slug.0, true).await
    }

    /// Invites an admin of the society (role `admin`) and mails the invitation.
    #[oai(path = "/tenants/:slug/admins", method = "post")]
    async fn admin(
        &self,
        state: Data<&Arc<AppState>>,
        auth: OperatorAuth,
        slug: Path<String>,
        body: Json<AdminRequest>,
    ) -> Reply<AdminInvitation> {
        match ops::first_admin(&state, Operator(&auth.0.name), &slug.0, &body.0.email).await {
            Ok(i) => Reply::Created(Json(AdminInvitation {
                admin_id: i.admin_id.to_string(),
                setup_url: i.setup_url,
            })),
            Err(e) => Reply::failed(e),
        }
    }
}

impl OpsApi {
    async fn set_enabled(
        &self,
        state: &AppState,
        auth: &OperatorAuth,
        slug: &str,
        enabled: bool,
    ) -> Reply<TenantSummary> {
        if let Err(e) = ops::set_enabled(
            &state.store,
            Some(state),
            Operator(&auth.0.name),
            slug,
            enabled,
        )
        .await
        {
            return Reply::failed(e);
        }
        match state.store.tenant_by_slug(slug).await {
            Ok(Some(t)) => Reply::Ok(Json(TenantSummary {
                slug: t.slug,
                display_name: t.display_name,
                enabled: t.enabled,
                hosts: t.aliases,
                revision: t.revision,
            })),
            Ok(None) => Reply::failed(OpsError::NotFound(slug.to_owned())),
            Err(e) => Reply::failed(OpsError::Internal(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The committed `docs/ops-api.json` is the generated document.
    #[test]
    fn the_committed_ops_openapi_document_is_current() {
        crate::web::admin::api::tests::check_committed("ops-api.json", &super::openapi_json());
    }
}
