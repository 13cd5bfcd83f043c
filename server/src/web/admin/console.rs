//! The console's pages, server-rendered from `admin-ui/`: dashboard, members (search, the
//! member page, register, the actions with a confirmation page each, letters) and the
//! audit log with its CSV export. Every handler parses its input, calls one service
//! function of [`crate::admin`] and renders the outcome. No page needs JavaScript.

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::{Data, Form, Html, Path, Query, StaticFileRequest};
use poem::{handler, Body, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ConsoleAdmin;
use crate::admin::members::{self as service, MemberInput};
use crate::admin::{Ctx, FieldProblem, ServiceError};
use crate::ids::MemberId;
use crate::store::{AuditFilter, AuditRow, Member, MemberSearch};
use crate::tenant::Tenant;
use crate::theme::DEFAULT_THEME;
use crate::web::pages::{date, date_time};
use crate::web::{internal, AppState, CurrentTenant, RequestMeta};

/// Pages that show personal data or credentials are never kept by a browser or proxy.
const NO_STORE: &str = "no-store";
const PAGE_SIZE: i64 = 50;

#[derive(Serialize)]
struct TenantView<'a> {
    slug: &'a str,
    name: &'a str,
    contact: &'a str,
    logo_url: String,
}

#[derive(Serialize)]
struct AdminView<'a> {
    email: &'a str,
    role: &'a str,
}

/// Renders a console page with the tenant, the signed-in admin (if any) and the form token.
pub fn render(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    admin: Option<&ConsoleAdmin>,
    template: &str,
    mut ctx: tera::Context,
    status: StatusCode,
) -> Response {
    ctx.insert("csrf_token", meta.csrf_token());
    ctx.insert(
        "tenant",
        &TenantView {
            slug: &tenant.slug,
            name: &tenant.display_name,
            contact: &tenant.settings.contact,
            logo_url: format!("/static/{}", tenant.settings.theme.logo),
        },
    );
    if let Some(admin) = admin {
        ctx.insert(
            "admin",
            &AdminView {
                email: &admin.admin.email,
                role: admin.admin.role.as_str(),
            },
        );
    }
    let page = state
        .console
        .get(DEFAULT_THEME)
        .and_then(|ui| ui.render(template, &mut ctx));
    match page {
        Ok(html) => Html(html)
            .with_status(status)
            .with_header(header::CACHE_CONTROL, NO_STORE)
            .into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), template, "rendering failed");
            "Internal Server Error"
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response()
        }
    }
}

/// A console text by key (`errors.not_found`); the key itself if missing.
pub(super) fn text(state: &AppState, key: &str) -> String {
    state
        .console
        .get(DEFAULT_THEME)
        .map(|ui| ui.text(key).to_owned())
        .unwrap_or_else(|_| key.to_owned())
}

/// A page of the console for a signed-in admin.
pub(super) struct Page<'a> {
    pub state: &'a AppState,
    pub tenant: &'a Tenant,
    pub admin: &'a ConsoleAdmin,
    acting: crate::admin::Acting,
}

impl<'a> Page<'a> {
    pub fn new(state: &'a AppState, tenant: &'a CurrentTenant, admin: &'a ConsoleAdmin) -> Self {
        Self {
            state,
            tenant: &tenant.0,
            admin,
            acting: admin.acting(),
        }
    }

    /// What the service functions need to act for this page's admin.
    pub fn service(&self) -> Ctx<'_> {
        Ctx {
            state: self.state,
            tenant: self.tenant,
            acting: &self.acting,
        }
    }

    pub fn render(
        &self,
        nav: &str,
        template: &str,
        mut ctx: tera::Context,
        status: StatusCode,
    ) -> Response {
        ctx.insert("nav", nav);
        render(
            self.state,
            self.tenant,
            &self.admin.meta,
            Some(self.admin),
            template,
            ctx,
            status,
        )
    }

    /// After an action: on to `to` (303) when it happened, else the page that says why.
    pub fn after<T>(&self, result: Result<T, ServiceError>, to: &str) -> Response {
        match result {
            Ok(_) => poem::web::Redirect::see_other(to).into_response(),
            Err(e) => self.failure(e),
        }
    }

    /// The page for an action that did not happen.
    pub fn failure(&self, error: ServiceError) -> Response {
        let (status, key) = match &error {
            ServiceError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ServiceError::Conflict(key) => (StatusCode::CONFLICT, *key),
            ServiceError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ServiceError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            ServiceError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "console action failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let mut ctx = tera::Context::new();
        ctx.insert("title", &text(self.state, &format!("errors.{key}_title")));
        ctx.insert("message", &text(self.state, &format!("errors.{key}")));
        self.render("", "error.html", ctx, status)
    }
}

/// A multipart form: its text fields and its one file (name, bytes), if one was chosen.
pub(super) async fn read_form(
    mut multipart: poem::web::Multipart,
) -> (HashMap<String, String>, Option<(String, Vec<u8>)>) {
    let mut fields = HashMap::new();
    let mut file = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or("").to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            // A form sent without choosing a file carries an empty part with no name.
            if let Ok(bytes) = field.bytes().await {
                if !file_name.is_empty() {
                    file = Some((file_name, bytes));
                }
            }
        } else if let Ok(text) = field.text().await {
            fields.insert(name, text);
        }
    }
    (fields, file)
}

/// Field problems as the forms show them: field → messages.
pub(super) fn field_errors(
    state: &AppState,
    problems: &[FieldProblem],
) -> HashMap<&'static str, Vec<String>> {
    let mut map: HashMap<&'static str, Vec<String>> = HashMap::new();
    for p in problems {
        let message = p
            .message
            .clone()
            .unwrap_or_else(|| text(state, &format!("errors.{}", p.code)));
        map.entry(p.field).or_default().push(message);
    }
    map
}

/// A time, or nothing when there is none.
pub(super) fn date_or_empty(unix: Option<i64>) -> String {
    unix.map(date_time).unwrap_or_default()
}

#[derive(Serialize)]
struct MemberView {
    id: String,
    user_id: String,
    display_name: String,
    name_kana: String,
    birth_date: String,
    email: String,
    email_confirmed: bool,
    state: &'static str,
    card_symbol: String,
    card_number: String,
    terms_version: String,
    terms_accepted_at: String,
    created_at: String,
}

impl MemberView {
    fn of(m: &Member) -> Self {
        Self {
            id: m.id.to_string(),
            user_id: m.user_id.clone(),
            display_name: m.display_name.clone(),
            name_kana: m.name_kana.clone(),
            birth_date: m.birth_date.replace('-', "/"),
            email: m.email.clone(),
            email_confirmed: m.email_confirmed,
            state: m.console_state(crate::store::now_unix()),
            card_symbol: m.card_symbol.clone(),
            card_number: m.card_number.clone(),
            terms_version: m.terms_version.clone().unwrap_or_default(),
            terms_accepted_at: m.terms_accepted_at.map(date_time).unwrap_or_default(),
            created_at: date(m.created_at),
        }
    }
}

// --- dashboard -----------------------------------------------------------------------------

#[derive(Serialize)]
struct Count {
    key: String,
    count: i64,
}

#[derive(Serialize)]
struct Adoption {
    kind: String,
    count: i64,
    percent: i64,
}

#[handler]
pub async fn dashboard(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> poem::Result<Response> {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let d = match crate::admin::stats::dashboard(&ctx_s).await {
        Ok(d) => d,
        Err(e) => return Ok(page.failure(e)),
    };
    let states: Vec<Count> = d
        .states
        .iter()
        .map(|(key, count)| Count {
            key: (*key).to_owned(),
            count: *count,
        })
        .collect();
    let locked = d
        .states
        .iter()
        .find(|(k, _)| *k == "locked")
        .map_or(0, |(_, n)| *n);
    let adoption: Vec<Adoption> = d
        .adoption
        .iter()
        .map(|(kind, count)| Adoption {
            percent: if d.total > 0 {
                count * 100 / d.total
            } else {
                0
            },
            kind: (*kind).to_owned(),
            count: *count,
        })
        .collect();
    let events: Vec<EventView> = state
        .store
        .audit_page(&tenant.0.id, &AuditFilter::default(), 10)
        .await
        .map_err(internal)?
        .iter()
        .map(|r| EventView::of(&state, r))
        .collect();
    let (ok, failed) = d
        .signins
        .iter()
        .fold((0, 0), |(o, f), day| (o + day.ok, f + day.failed));
    let adoption_of = |k: &str| {
        d.adoption
            .iter()
            .find(|(kind, _)| *kind == k)
            .map_or(0, |(_, n)| *n)
            .to_string()
    };
    let mut ctx = tera::Context::new();
    ctx.insert("states", &states);
    ctx.insert("total", &d.total);
    ctx.insert("locked", &locked);
    ctx.insert("adoption", &adoption);
    ctx.insert("events", &events);
    ctx.insert("mail_queued", &d.mail_waiting);
    ctx.insert("mail_failed", &d.mail_failed);
    ctx.insert("signins", &d.signins);
    ctx.insert(
        "signins_alt",
        &text(&state, "dashboard.signins_alt")
            .replace("{ok}", &ok.to_string())
            .replace("{failed}", &failed.to_string()),
    );
    ctx.insert(
        "adoption_alt",
        &text(&state, "dashboard.adoption_alt")
            .replace("{passkey}", &adoption_of("passkey"))
            .replace("{totp}", &adoption_of("totp"))
            .replace("{email_otp}", &adoption_of("email_otp")),
    );
    Ok(page.render("dashboard", "dashboard.html", ctx, StatusCode::OK))
}

// --- members -------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    after: String,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[handler]
pub async fn members(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Query(query): Query<SearchQuery>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let search = MemberSearch {
        query: non_empty(&query.q),
        birth_date: non_empty(&query.birth_date),
        state: non_empty(&query.state),
        after: non_empty(&query.after),
        limit: PAGE_SIZE + 1,
    };
    let mut ctx = tera::Context::new();
    ctx.insert("q", &query.q);
    ctx.insert("birth_date", &query.birth_date);
    ctx.insert("state", &query.state);
    match service::search(&ctx_s, &search).await {
        Ok(mut found) => {
            if found.len() as i64 > PAGE_SIZE {
                found.truncate(PAGE_SIZE as usize);
                if let Some(last) = found.last() {
                    let next = form_urlencoded::Serializer::new(String::new())
                        .append_pair("q", &query.q)
                        .append_pair("birth_date", &query.birth_date)
                        .append_pair("state", &query.state)
                        .append_pair("after", &last.user_id)
                        .finish();
                    ctx.insert("next_url", &format!("/admin/members?{next}"));
                }
            }
            let views: Vec<MemberView> = found.iter().map(MemberView::of).collect();
            ctx.insert("members", &views);
            page.render("members", "members.html", ctx, StatusCode::OK)
        }
        Err(ServiceError::Invalid(problems)) => {
            ctx.insert("members", &Vec::<MemberView>::new());
            ctx.insert("errors", &field_errors(&state, &problems));
            page.render("members", "members.html", ctx, StatusCode::BAD_REQUEST)
        }
        Err(e) => page.failure(e),
    }
}

#[derive(Serialize)]
struct FactorView {
    kind: String,
    name: String,
    created_at: String,
    last_used_at: String,
}

#[derive(Serialize)]
struct SessionView {
    created_at: String,
    last_seen_at: String,
    auth_method: String,
}

#[derive(Serialize)]
struct EventView {
    at: String,
    event: String,
    event_label: String,
    detail: String,
    ip: String,
    actor_type: String,
    actor_name: String,
    member_id: Option<String>,
    member_user_id: Option<String>,
    before_value: String,
    after_value: String,
}

impl EventView {
    fn of(state: &AppState, r: &AuditRow) -> Self {
        let actor_name = r
            .actor_name
            .clone()
            .unwrap_or_else(|| text(state, &format!("actors.{}", r.actor_type)));
        Self {
            at: date_time(r.created_at),
            event: r.event.clone(),
            event_label: event_label(state, &r.event),
            detail: detail_label(state, &r.detail),
            ip: r.ip.clone(),
            actor_type: r.actor_type.clone(),
            actor_name,
            member_id: r.member_id.clone(),
            member_user_id: r.member_user_id.clone(),
            before_value: r.before_value.clone().unwrap_or_default(),
            after_value: r.after_value.clone().unwrap_or_default(),
        }
    }
}

/// An event's detail as the console shows it: the notes the server records in English
/// ("wrong password", "credential of another account: …") in the clerk's words, anything
/// else (device names, addresses) as recorded. The CSV export keeps the recorded text.
fn detail_label(state: &AppState, detail: &str) -> String {
    let label = |phrase: &str| {
        let key = format!("details.{phrase}");
        let found = text(state, &key);
        (!phrase.is_empty() && !phrase.contains('.') && found != key).then_some(found)
    };
    if let Some(found) = label(detail.trim()) {
        return found;
    }
    // "verification failed: <why>": the known part in words, the rest as recorded.
    match detail.split_once(':') {
        Some((phrase, rest)) => match label(phrase.trim()) {
            Some(found) => format!("{found}（{}）", rest.trim()),
            None => detail.to_owned(),
        },
        None => detail.to_owned(),
    }
}

fn event_label(state: &AppState, event: &str) -> String {
    let key = format!("events.{event}");
    let label = text(state, &key);
    if label == key {
        event.to_owned()
    } else {
        label
    }
}

async fn member_page(
    page: &Page<'_>,
    ctx_s: &Ctx<'_>,
    id: &MemberId,
    notice: Option<String>,
) -> Response {
    let detail = match service::detail(ctx_s, id).await {
        Ok(d) => d,
        Err(e) => return page.failure(e),
    };
    let factors: Vec<FactorView> = detail
        .devices
        .iter()
        .map(|d| FactorView {
            kind: d.kind.clone(),
            name: d.name.clone(),
            created_at: date(d.created_at),
            last_used_at: d.last_used_at.map(date).unwrap_or_default(),
        })
        .chain(detail.member.email_otp_enabled.then(|| FactorView {
            kind: "email_otp".into(),
            name: detail.member.email.clone(),
            created_at: String::new(),
            last_used_at: String::new(),
        }))
        .collect();
    let sessions: Vec<SessionView> = detail
        .sessions
        .iter()
        .map(|s| SessionView {
            created_at: date_time(s.created_at),
            last_seen_at: date_time(s.last_seen_at),
            auth_method: s.auth_method.clone(),
        })
        .collect();
    let events: Vec<EventView> = detail
        .events
        .iter()
        .map(|r| EventView::of(page.state, r))
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("member", &MemberView::of(&detail.member));
    ctx.insert("factors", &factors);
    ctx.insert("sessions", &sessions);
    ctx.insert("events", &events);
    if let Some(notice) = notice {
        ctx.insert("notice", &notice);
    }
    page.render("members", "member.html", ctx, StatusCode::OK)
}

#[handler]
pub async fn member(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    member_page(&page, &ctx_s, &MemberId::from_db(id), None).await
}

#[derive(Deserialize, Serialize, Default)]
pub struct NewMemberForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    name_kana: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    card_symbol: String,
    #[serde(default)]
    card_number: String,
}

#[handler]
pub async fn new_member_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.render(
        "members",
        "member_new.html",
        tera::Context::new(),
        StatusCode::OK,
    )
}

#[derive(Serialize)]
struct CredentialsView<'a> {
    user_id: &'a str,
    password: &'a str,
}

fn credentials_page(
    page: &Page<'_>,
    issued: &service::Issued,
    display_name: &str,
    created: bool,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert(
        "member",
        &serde_json::json!({
            "id": issued.member_id.as_str(),
            "user_id": issued.user_id,
            "display_name": display_name,
        }),
    );
    ctx.insert(
        "credentials",
        &CredentialsView {
            user_id: &issued.user_id,
            password: &issued.password,
        },
    );
    ctx.insert(
        "letter_url",
        &format!("/admin/letters/{}", issued.letter_batch),
    );
    ctx.insert("created", &created);
    page.render("members", "credentials.html", ctx, StatusCode::OK)
}

#[handler]
pub async fn create_member(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Form(form): Form<NewMemberForm>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let input = MemberInput {
        display_name: form.display_name.clone(),
        name_kana: form.name_kana.clone(),
        birth_date: form.birth_date.clone(),
        email: form.email.clone(),
        card_symbol: form.card_symbol.clone(),
        card_number: form.card_number.clone(),
        user_id: String::new(),
    };
    match service::create(&ctx_s, &input).await {
        Ok(issued) => credentials_page(&page, &issued, form.display_name.trim(), true),
        Err(ServiceError::Invalid(problems)) => {
            let mut ctx = tera::Context::new();
            ctx.insert("form", &form);
            ctx.insert("errors", &field_errors(&state, &problems));
            page.render("members", "member_new.html", ctx, StatusCode::BAD_REQUEST)
        }
        Err(e) => page.failure(e),
    }
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    name_kana: String,
}

#[handler]
pub async fn rename_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    match service::get(&ctx_s, &MemberId::from_db(id)).await {
        Ok(m) => {
            let mut ctx = tera::Context::new();
            ctx.insert("display_name", &m.display_name);
            ctx.insert("name_kana", &m.name_kana);
            ctx.insert("member", &MemberView::of(&m));
            page.render("members", "member_name.html", ctx, StatusCode::OK)
        }
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn rename(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    Form(form): Form<RenameForm>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let id = MemberId::from_db(id);
    match service::rename(&ctx_s, &id, &form.display_name, &form.name_kana).await {
        Ok(_) => {
            let notice = text(&state, "actions.rename.done");
            member_page(&page, &ctx_s, &id, Some(notice)).await
        }
        Err(ServiceError::Invalid(problems)) => match service::get(&ctx_s, &id).await {
            Ok(m) => {
                let mut ctx = tera::Context::new();
                ctx.insert("display_name", &form.display_name);
                ctx.insert("name_kana", &form.name_kana);
                ctx.insert("member", &MemberView::of(&m));
                ctx.insert("errors", &field_errors(&state, &problems));
                page.render("members", "member_name.html", ctx, StatusCode::BAD_REQUEST)
            }
            Err(e) => page.failure(e),
        },
        Err(e) => page.failure(e),
    }
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

fn email_form(
    page: &Page<'_>,
    m: &crate::store::Member,
    typed: &str,
    errors: Option<&[FieldProblem]>,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("email", typed);
    ctx.insert("email_factor", &m.email_otp_enabled);
    ctx.insert("member", &MemberView::of(m));
    let status = match errors {
        Some(problems) => {
            ctx.insert("errors", &field_errors(page.state, problems));
            StatusCode::BAD_REQUEST
        }
        None => StatusCode::OK,
    };
    page.render("members", "member_email.html", ctx, status)
}

#[handler]
pub async fn email_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    match service::get(&ctx_s, &MemberId::from_db(id)).await {
        Ok(m) => email_form(&page, &m, "", None),
        Err(e) => page.failure(e),
    }
}

/// 「メールアドレス変更」 (FAQ Q3): the society corrects the address.
#[handler]
pub async fn change_email(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    Form(form): Form<EmailForm>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let id = MemberId::from_db(id);
    match service::change_email(&ctx_s, &id, &form.email).await {
        Ok(_) => {
            let notice = text(&state, "actions.change_email.done");
            member_page(&page, &ctx_s, &id, Some(notice)).await
        }
        Err(ServiceError::Invalid(problems)) => match service::get(&ctx_s, &id).await {
            Ok(m) => email_form(&page, &m, &form.email, Some(&problems)),
            Err(e) => page.failure(e),
        },
        Err(e) => page.failure(e),
    }
}

/// The actions of the member page that a confirmation page asks about first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Unlock,
    ResetPassword,
    ResetFactors,
    Disable,
    Enable,
    Logout,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unlock" => Action::Unlock,
            "reset-password" => Action::ResetPassword,
            "reset-factors" => Action::ResetFactors,
            "disable" => Action::Disable,
            "enable" => Action::Enable,
            "logout" => Action::Logout,
            _ => return None,
        })
    }

    /// Its key among the console's texts (`actions.<key>.…`).
    fn key(self) -> &'static str {
        match self {
            Action::Unlock => "unlock",
            Action::ResetPassword => "reset_password",
            Action::ResetFactors => "reset_factors",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Logout => "logout",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Action::Unlock => "unlock",
            Action::ResetPassword => "reset-password",
            Action::ResetFactors => "reset-factors",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Logout => "logout",
        }
    }
}

#[handler]
pub async fn confirm_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let Some(action) = Action::parse(&action) else {
        return page.failure(ServiceError::NotFound);
    };
    let ctx_s = page.service();
    match service::get(&ctx_s, &MemberId::from_db(id)).await {
        Ok(m) => {
            let key = action.key();
            let mut ctx = tera::Context::new();
            ctx.insert("member", &MemberView::of(&m));
            ctx.insert("action", action.slug());
            ctx.insert("title", &text(&state, &format!("actions.{key}.title")));
            ctx.insert(
                "explanation",
                &text(&state, &format!("actions.{key}.explanation")),
            );
            ctx.insert("button", &text(&state, &format!("actions.{key}.button")));
            page.render("members", "member_confirm.html", ctx, StatusCode::OK)
        }
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn act(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let Some(action) = Action::parse(&action) else {
        return page.failure(ServiceError::NotFound);
    };
    let ctx_s = page.service();
    let id = MemberId::from_db(id);
    let outcome = match action {
        Action::ResetPassword => {
            return match service::reset_password(&ctx_s, &id).await {
                Ok(issued) => {
                    let name = service::get(&ctx_s, &id)
                        .await
                        .map(|m| m.display_name)
                        .unwrap_or_default();
                    credentials_page(&page, &issued, &name, false)
                }
                Err(e) => page.failure(e),
            };
        }
        Action::Unlock => service::unlock(&ctx_s, &id).await.map(|_| ()),
        Action::ResetFactors => service::reset_factors(&ctx_s, &id).await.map(|_| ()),
        Action::Disable => service::set_disabled(&ctx_s, &id, true).await.map(|_| ()),
        Action::Enable => service::set_disabled(&ctx_s, &id, false).await.map(|_| ()),
        Action::Logout => service::end_sessions(&ctx_s, &id).await.map(|_| ()),
    };
    match outcome {
        Ok(()) => {
            let notice = text(&state, &format!("actions.{}.done", action.key()));
            member_page(&page, &ctx_s, &id, Some(notice)).await
        }
        Err(e) => page.failure(e),
    }
}

/// The member ids a batch form names (`ids`, repeated), as typed ids.
fn batch_ids(fields: &[(String, String)]) -> Vec<MemberId> {
    fields
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| MemberId::from_db(v.clone()))
        .collect()
}

/// The confirmation page of a batch 「パスワード再発行」, naming every member chosen.
#[handler]
pub async fn batch_confirm(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let ids = batch_ids(&fields);
    let confirmed = fields.iter().any(|(k, v)| k == "confirm" && v == "yes");
    if !confirmed {
        return match service::batch_members(&ctx_s, &ids).await {
            Ok(chosen) => {
                let views: Vec<MemberView> = chosen.iter().map(MemberView::of).collect();
                let mut ctx = tera::Context::new();
                ctx.insert("members", &views);
                page.render("members", "batch_confirm.html", ctx, StatusCode::OK)
            }
            Err(ServiceError::Invalid(_)) => {
                let mut ctx = tera::Context::new();
                ctx.insert("title", &text(&state, "batch.none_title"));
                ctx.insert("message", &text(&state, "batch.none"));
                ctx.insert("back_url", "/admin/members");
                ctx.insert("back_label", &text(&state, "batch.back"));
                page.render("members", "done.html", ctx, StatusCode::BAD_REQUEST)
            }
            Err(e) => page.failure(e),
        };
    }
    match service::reset_passwords(&ctx_s, &ids).await {
        Ok((issued, batch)) => {
            let mut ctx = tera::Context::new();
            ctx.insert("issued", &issued);
            ctx.insert("letter_url", &format!("/admin/letters/{batch}"));
            page.render("members", "batch_done.html", ctx, StatusCode::OK)
        }
        Err(e) => page.failure(e),
    }
}

#[derive(Serialize)]
struct LetterView {
    display_name: String,
    user_id: String,
    password: String,
}

#[handler]
pub async fn letters(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(batch): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    match service::take_letters(&ctx_s, &batch).await {
        Ok(letters) => render_letters(&page, letters, "once"),
        Err(e) => page.failure(e),
    }
}

/// The print view of `letters`, one per page; none shows the message `gone` (a key
/// under `letters.`).
pub(super) fn render_letters(
    page: &Page<'_>,
    printed: Vec<crate::admin::members::Letter>,
    gone: &str,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("expired", &printed.is_empty());
    ctx.insert("gone", gone);
    let views: Vec<LetterView> = printed
        .into_iter()
        .map(|l| LetterView {
            display_name: l.display_name,
            user_id: l.user_id,
            password: l.password,
        })
        .collect();
    ctx.insert("letters", &views);
    ctx.insert(
        "login_url",
        &format!("{}/", crate::admin::tenant_url(page.state, page.tenant)),
    );
    ctx.insert("issued_on", &date(crate::store::now_unix()));
    page.render("members", "letters.html", ctx, StatusCode::OK)
}

// --- audit log -----------------------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
pub struct AuditQuery {
    #[serde(default)]
    member: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: String,
}

/// Midnight in Japan of a `YYYY-MM-DD` date, as Unix seconds.
fn jst_midnight(date: &str) -> Option<i64> {
    let normalized = service::parse_birth_date(date).ok()?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(&normalized, &format).ok()?;
    Some(
        day.with_hms(0, 0, 0)
            .ok()?
            .assume_offset(time::macros::offset!(+9))
            .unix_timestamp(),
    )
}

/// The filter a query asks for; field problems when it cannot be understood.
async fn audit_filter(
    state: &AppState,
    tenant: &Tenant,
    q: &AuditQuery,
) -> poem::Result<Result<AuditFilter, String>> {
    let bad = |key: &str| Ok(Err(text(state, key)));
    let mut filter = AuditFilter::default();
    if let Some(user_id) = non_empty(&q.member) {
        if user_id.chars().count() > 64 || user_id.chars().any(char::is_control) {
            return bad("errors.query_too_long");
        }
        match state
            .store
            .member_by_user_id(&tenant.id, &user_id.to_lowercase())
            .await
            .map_err(internal)?
        {
            Some(m) => filter.member_id = Some(m.id.to_string()),
            // No such member: nothing matches, and the page says so by its empty table.
            None => filter.member_id = Some(String::new()),
        }
    }
    if let Some(actor) = non_empty(&q.actor) {
        // A kind of actor, or one admin of this society (`admin:<id>`).
        if let Some(id) = actor.strip_prefix("admin:") {
            let known = id.len() <= 64
                && state
                    .store
                    .admin(&tenant.id, id)
                    .await
                    .map_err(internal)?
                    .is_some();
            if !known {
                return bad("errors.actor_unknown");
            }
            filter.actor_type = Some("admin".to_owned());
            filter.actor_id = Some(id.to_owned());
        } else if matches!(actor.as_str(), "member" | "admin" | "system" | "anonymous") {
            filter.actor_type = Some(actor);
        } else {
            return bad("errors.actor_unknown");
        }
    }
    if let Some(event) = non_empty(&q.event) {
        if event.len() > 64 || !event.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return bad("errors.event_unknown");
        }
        filter.event = Some(event);
    }
    if let Some(from) = non_empty(&q.from) {
        match jst_midnight(&from) {
            Some(t) => filter.from = Some(t),
            None => return bad("errors.date_format"),
        }
    }
    if let Some(until) = non_empty(&q.until) {
        match jst_midnight(&until) {
            // The whole of the last day.
            Some(t) => filter.until = Some(t + 24 * 60 * 60),
            None => return bad("errors.date_format"),
        }
    }
    if let Some(before) = non_empty(&q.before) {
        let cursor = before
            .split_once('.')
            .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())));
        match cursor {
            Some(c) => filter.before = Some(c),
            None => return bad("errors.invalid"),
        }
    }
    Ok(Ok(filter))
}

fn audit_query_string(q: &AuditQuery, before: Option<&str>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("member", &q.member)
        .append_pair("actor", &q.actor)
        .append_pair("event", &q.event)
        .append_pair("from", &q.from)
        .append_pair("until", &q.until);
    if let Some(before) = before {
        s.append_pair("before", before);
    }
    s.finish()
}

/// The event kinds the filter offers.
const EVENT_OPTIONS: &[&str] = &[
    "login_succeeded",
    "login_failed",
    "account_locked",
    "password_changed",
    "factor_removed",
    "admin_login_succeeded",
    "admin_login_failed",
    "member_created",
    "member_unlocked",
    "member_renamed",
    "member_password_reset",
    "member_factors_reset",
    "member_disabled",
    "member_enabled",
    "member_sessions_ended",
    "letter_printed",
    "audit_exported",
];

/// One admin of the society in the 「操作した人」 filter.
#[derive(Serialize)]
struct ActorOption {
    key: String,
    label: String,
}

#[derive(Serialize)]
struct EventOption {
    key: &'static str,
    label: String,
}

#[handler]
pub async fn audit(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Query(query): Query<AuditQuery>,
) -> poem::Result<Response> {
    let page = Page::new(&state, &tenant, &admin);
    let mut ctx = tera::Context::new();
    ctx.insert("member", &query.member);
    ctx.insert("actor", &query.actor);
    ctx.insert("event", &query.event);
    ctx.insert("from", &query.from);
    ctx.insert("until", &query.until);
    let options: Vec<EventOption> = EVENT_OPTIONS
        .iter()
        .map(|key| EventOption {
            key,
            label: event_label(&state, key),
        })
        .collect();
    ctx.insert("event_options", &options);
    let admins: Vec<ActorOption> = state
        .store
        .admins(&tenant.0.id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|a| ActorOption {
            key: format!("admin:{}", a.id),
            label: a.email,
        })
        .collect();
    ctx.insert("admin_options", &admins);
    ctx.insert(
        "csv_url",
        &format!("/admin/audit.csv?{}", audit_query_string(&query, None)),
    );
    let filter = match audit_filter(&state, &tenant.0, &query).await? {
        Ok(f) => f,
        Err(message) => {
            ctx.insert("error", &message);
            ctx.insert("rows", &Vec::<EventView>::new());
            return Ok(page.render("audit", "audit.html", ctx, StatusCode::BAD_REQUEST));
        }
    };
    let mut rows = state
        .store
        .audit_page(&tenant.0.id, &filter, PAGE_SIZE + 1)
        .await
        .map_err(internal)?;
    if rows.len() as i64 > PAGE_SIZE {
        rows.truncate(PAGE_SIZE as usize);
        if let Some(last) = rows.last() {
            let cursor = format!("{}.{}", last.created_at, last.id);
            ctx.insert(
                "next_url",
                &format!("/admin/audit?{}", audit_query_string(&query, Some(&cursor))),
            );
        }
    }
    let views: Vec<EventView> = rows.iter().map(|r| EventView::of(&state, r)).collect();
    ctx.insert("rows", &views);
    Ok(page.render("audit", "audit.html", ctx, StatusCode::OK))
}

pub use crate::csv_cell;

fn csv_line(fields: &[&str]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let cells: Vec<std::borrow::Cow<'_, str>> = fields.iter().map(|f| csv_cell(f)).collect();
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(cells.iter().map(|c| c.as_ref()));
    writer.into_inner().unwrap_or_default()
}

/// The filtered audit log as CSV: UTF-8 with a BOM (so Excel reads it), streamed row by
/// row from the database, formula cells neutralised. The export itself is audited.
#[handler]
pub async fn audit_csv(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Query(query): Query<AuditQuery>,
) -> poem::Result<Response> {
    let filter = match audit_filter(&state, &tenant.0, &query).await? {
        Ok(f) => f,
        Err(message) => {
            return Ok(message
                .with_status(StatusCode::BAD_REQUEST)
                .with_content_type("text/plain; charset=utf-8")
                .into_response())
        }
    };
    admin
        .meta
        .record(
            &state.store,
            &tenant.0,
            crate::store::Actor::Admin(&admin.admin.id),
            None,
            "audit_exported",
            &audit_query_string(&query, None),
            None,
        )
        .await;
    let state = Arc::clone(&state);
    let tenant = Arc::clone(&tenant.0);
    let header_line = {
        let mut bytes = "\u{feff}".as_bytes().to_vec();
        let names: Vec<String> = [
            "at",
            "actor_type",
            "actor",
            "member",
            "event",
            "detail",
            "before",
            "after",
            "ip",
            "user_agent",
        ]
        .iter()
        .map(|k| text(&state, &format!("csv.{k}")))
        .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        bytes.extend(csv_line(&refs));
        bytes
    };
    let stream = async_stream(state, tenant, filter, header_line);
    Ok(Body::from_bytes_stream(stream)
        .into_response()
        .with_content_type("text/csv; charset=utf-8")
        .with_header(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"audit-log.csv\"",
        )
        .with_header(header::CACHE_CONTROL, NO_STORE)
        .into_response())
}

/// The CSV body: the header line, then one line per row as the database yields it.
fn async_stream(
    state: Arc<AppState>,
    tenant: Arc<Tenant>,
    filter: AuditFilter,
    header_line: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        if tx.send(Ok(header_line.into())).await.is_err() {
            return;
        }
        let mut rows = state.store.audit_stream(&tenant.id, &filter);
        while let Some(row) = rows.next().await {
            let chunk = match row {
                Ok(r) => {
                    let at = date_time(r.created_at);
                    let actor = r.actor_name.clone().unwrap_or_default();
                    let member_name = r.member_user_id.clone().unwrap_or_default();
                    let line = csv_line(&[
                        &at,
                        &r.actor_type,
                        &actor,
                        &member_name,
                        &r.event,
                        &r.detail,
                        r.before_value.as_deref().unwrap_or(""),
                        r.after_value.as_deref().unwrap_or(""),
                        &r.ip,
                        &r.user_agent,
                    ]);
                    Ok(bytes::Bytes::from(line))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    Err(std::io::Error::other("audit export failed"))
                }
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
        .boxed()
}

#[handler]
pub async fn static_file(
    state: Data<&Arc<AppState>>,
    Path(path): Path<String>,
    request: StaticFileRequest,
) -> poem::Result<Response> {
    if !crate::tenant::is_asset_path(&path) {
        return Err(poem::error::NotFoundError.into());
    }
    let Some(file) = state.console.asset(DEFAULT_THEME, &path) else {
        return Err(poem::error::NotFoundError.into());
    };
    let response = request
        .create_response(&file, true, false)
        .map_err(|_| poem::error::NotFoundError)?;
    Ok(response
        .with_header(header::CACHE_CONTROL, "public, max-age=3600")
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("山田"), "山田");
        let line = String::from_utf8(csv_line(&["a,b", "=1", "\"q\""])).unwrap();
        assert_eq!(line, "\"a,b\",'=1,\"\"\"q\"\"\"\r\n");
    }
}
