//! 「設定」 pages: the draft form, the review (what changes, for how many members, which
//! warnings) with 「公開」, the preview of member pages at phone and PC widths, and the
//! history of revisions with 「この版に戻す」. Every action calls [`crate::admin::settings`].

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::{Data, Form, Path, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::console::{field_errors, Page};
use super::{ConsoleAdmin, ConsoleFullAdmin};
use crate::admin::settings::{self as service, Kind, Review, FIELDS};
use crate::admin::{Ctx, FieldProblem, ServiceError};
use crate::store::Revision;
use crate::tenant::{Definition, Tenant};
use crate::web::pages::{date_time, render_preview, MemberView};
use crate::web::{AppState, CurrentTenant};

/// The form name of a field: dots are not safe in template lookups.
fn form_name(field: &str) -> String {
    field.replace('.', "__")
}

#[derive(Serialize)]
struct OptionView {
    value: &'static str,
    label: String,
    checked: bool,
    /// Where the option stands in an ordered field (1 = first); 0 where it is left out.
    position: usize,
}

#[derive(Serialize)]
struct FieldView {
    name: String,
    label: String,
    hint: String,
    kind: &'static str,
    inputmode: &'static str,
    value: String,
    options: Vec<OptionView>,
}

#[derive(Serialize)]
struct GroupView {
    legend: String,
    fields: Vec<FieldView>,
}

/// The form's fields grouped by section, filled from `settings` (as JSON) or, after a
/// refused submission, from what was typed.
fn groups(
    ctx: &Ctx<'_>,
    settings: &Value,
    typed: Option<&HashMap<String, Vec<String>>>,
) -> Vec<GroupView> {
    let mut out: Vec<GroupView> = Vec::new();
    let mut current = "";
    for (field, kind) in FIELDS {
        let section = match field.split_once('.') {
            Some((s, _)) => s,
            None => "display",
        };
        let section = if section == "mail" {
            "display"
        } else {
            section
        };
        if section != current {
            out.push(GroupView {
                legend: service::say(ctx, &format!("settings.groups.{section}"), &[]),
                fields: Vec::new(),
            });
            current = section;
        }
        let name = form_name(field);
        let mut stored = settings;
        for part in field.split('.') {
            stored = &stored[part];
        }
        let typed_values = typed.map(|t| t.get(&name).cloned().unwrap_or_default());
        let value = match (&typed_values, stored) {
            (Some(v), _) => v.first().cloned().unwrap_or_default(),
            (None, Value::String(s)) => s.clone(),
            (None, Value::Number(n)) => n.to_string(),
            (None, Value::Bool(b)) => b.to_string(),
            _ => String::new(),
        };
        let chosen = |option: &str| -> bool {
            match &typed_values {
                Some(v) => v.iter().any(|x| x == option),
                None => match stored {
                    Value::Array(items) => items.iter().any(|x| x.as_str() == Some(option)),
                    Value::String(s) => s == option,
                    _ => false,
                },
            }
        };
        let options = match kind {
            Kind::Choices(all) | Kind::Choice(all) => all
                .iter()
                .map(|o| OptionView {
                    value: o,
                    label: service::say(ctx, &format!("settings.choice.{o}"), &[]),
                    checked: chosen(o),
                    position: 0,
                })
                .collect(),
            Kind::Steps(all) => step_options(ctx, &name, all, stored, typed),
            Kind::Flag => vec![OptionView {
                value: "true",
                label: String::new(),
                checked: match &typed_values {
                    Some(v) => v.iter().any(|x| x == "true"),
                    None => stored.as_bool() == Some(true),
                },
                position: 0,
            }],
            _ => Vec::new(),
        };
        let hint_key = format!("settings.hints.{field}");
        let hint = service::say(ctx, &hint_key, &[]);
        out.last_mut().expect("a group").fields.push(FieldView {
            label: service::label(ctx, field, &service::Names::default()),
            hint: if hint == hint_key {
                String::new()
            } else {
                hint
            },
            kind: match kind {
                Kind::Number => "number",
                Kind::Text => "text",
                Kind::LongText => "textarea",
                Kind::Flag => "flag",
                Kind::Choices(_) => "choices",
                Kind::Choice(_) => "choice",
                Kind::Steps(_) => "steps",
            },
            inputmode: if *kind == Kind::Number { "numeric" } else { "" },
            name,
            value,
            options,
        });
    }
    out
}

/// The options of an ordered field, those chosen first in their order: each with its
/// position as stored or, after a refused submission, as typed.
fn step_options(
    ctx: &Ctx<'_>,
    name: &str,
    all: &[&'static str],
    stored: &Value,
    typed: Option<&HashMap<String, Vec<String>>>,
) -> Vec<OptionView> {
    let position = |o: &str| -> usize {
        match typed {
            Some(t) => t
                .get(&format!("{name}-{o}"))
                .and_then(|v| v.first())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            None => stored
                .as_array()
                .and_then(|items| items.iter().position(|x| x.as_str() == Some(o)))
                .map_or(0, |i| i + 1),
        }
    };
    let mut options: Vec<OptionView> = all
        .iter()
        .map(|o| OptionView {
            value: o,
            label: service::say(ctx, &format!("settings.choice.{o}"), &[]),
            checked: position(o) > 0,
            position: position(o),
        })
        .collect();
    options.sort_by_key(|o| {
        if o.position == 0 {
            usize::MAX
        } else {
            o.position
        }
    });
    options
}

/// The chosen options of an ordered field, by the position typed for each; two at one
/// position are a problem of the field.
fn steps_from_form(
    name: &str,
    all: &[&'static str],
    typed: &HashMap<String, Vec<String>>,
) -> Result<Value, &'static str> {
    let mut chosen: Vec<(u32, &str)> = Vec::new();
    for o in all {
        let Some(text) = typed
            .get(&format!("{name}-{o}"))
            .and_then(|v| v.first())
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        match text.nfkc().collect::<String>().trim().parse::<u32>() {
            Ok(n) if n >= 1 => chosen.push((n, o)),
            _ => return Err("settings_wrong_value"),
        }
    }
    chosen.sort();
    if chosen.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("settings_steps_order");
    }
    Ok(Value::Array(
        chosen.into_iter().map(|(_, o)| Value::from(o)).collect(),
    ))
}

#[derive(Serialize)]
struct DraftView {
    saved: bool,
    stale: bool,
    updated_at: String,
}

fn draft_view(d: &service::DraftState) -> DraftView {
    DraftView {
        saved: d.saved,
        stale: d.stale,
        updated_at: d.updated_at.map(date_time).unwrap_or_default(),
    }
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// Only the words of known outcomes are shown; anything else in the address is ignored.
fn done_key(q: &Done) -> Option<&'static str> {
    match q.done.as_deref() {
        Some("saved") => Some("saved"),
        Some("published") => Some("published"),
        Some("restored") => Some("restored"),
        Some("discarded") => Some("discarded"),
        _ => None,
    }
}

#[handler]
pub async fn form(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Query(q): Query<Done>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let d = match service::draft(&ctx_s).await {
        Ok(d) => d,
        Err(e) => return page.failure(e),
    };
    let settings = serde_json::to_value(&d.definition.settings).expect("settings serialise");
    let mut ctx = tera::Context::new();
    ctx.insert("groups", &groups(&ctx_s, &settings, None));
    ctx.insert("draft", &draft_view(&d));
    ctx.insert("done", &done_key(&q));
    page.render("settings", "settings.html", ctx, StatusCode::OK)
}

/// The typed values of the form as edits, or the problems of those that are not numbers.
/// What the form held: the edits, the fields that are not numbers, and every value as
/// typed (to show the form again).
type FormRead = (
    Vec<(String, Value)>,
    Vec<FieldProblem>,
    HashMap<String, Vec<String>>,
);

fn edits_from_form(pairs: &[(String, String)]) -> FormRead {
    let mut typed: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        typed.entry(k.clone()).or_default().push(v.clone());
    }
    let mut edits = Vec::new();
    let mut problems = Vec::new();
    for (field, kind) in FIELDS {
        let values = typed.get(&form_name(field));
        let first = values.and_then(|v| v.first()).map(String::as_str);
        let value = match kind {
            Kind::Number => {
                // Full-width digits typed with a Japanese keyboard count as digits.
                let text: String = first.unwrap_or("").nfkc().collect::<String>();
                match text.trim().parse::<u32>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        problems.push(FieldProblem::new(field, "settings_not_a_number"));
                        continue;
                    }
                }
            }
            Kind::Text => Value::from(first.unwrap_or("").trim()),
            Kind::LongText => Value::from(first.unwrap_or("").trim().replace("\r\n", "\n")),
            Kind::Flag => Value::Bool(first == Some("true")),
            Kind::Choice(_) => Value::from(first.unwrap_or("")),
            Kind::Choices(all) => Value::Array(
                all.iter()
                    .filter(|o| values.is_some_and(|v| v.iter().any(|x| x == *o)))
                    .map(|o| Value::from(*o))
                    .collect(),
            ),
            Kind::Steps(all) => match steps_from_form(&form_name(field), all, &typed) {
                Ok(value) => value,
                Err(code) => {
                    problems.push(FieldProblem::new(field, code));
                    continue;
                }
            },
        };
        edits.push((field.to_string(), value));
    }
    (edits, problems, typed)
}

#[handler]
pub async fn save(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let (edits, mut problems, typed) = edits_from_form(&pairs);
    if problems.is_empty() {
        match service::save_settings(&ctx_s, &full, &edits).await {
            Ok(_) => {
                return Redirect::see_other("/admin/settings/review?done=saved").into_response()
            }
            Err(ServiceError::Invalid(p)) => problems = p,
            Err(e) => return page.failure(e),
        }
    }
    let d = match service::draft(&ctx_s).await {
        Ok(d) => d,
        Err(e) => return page.failure(e),
    };
    let settings = serde_json::to_value(&d.definition.settings).expect("settings serialise");
    let errors: HashMap<String, Vec<String>> = field_errors(&state, &problems)
        .into_iter()
        .map(|(k, v)| (form_name(k), v))
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("groups", &groups(&ctx_s, &settings, Some(&typed)));
    ctx.insert("draft", &draft_view(&d));
    ctx.insert("errors", &errors);
    ctx.insert("error_count", &problems.len());
    page.render("settings", "settings.html", ctx, StatusCode::BAD_REQUEST)
}

#[derive(Serialize)]
struct ChangeView {
    label: String,
    before: String,
    after: String,
}

fn review_context(ctx_s: &Ctx<'_>, found: &Review) -> tera::Context {
    let mut ctx = tera::Context::new();
    let changes: Vec<ChangeView> = found
        .changes
        .iter()
        .map(|c| ChangeView {
            label: service::label(ctx_s, &c.field, &found.names),
            before: service::show(ctx_s, &c.field, &c.before, &found.names),
            after: service::show(ctx_s, &c.field, &c.after, &found.names),
        })
        .collect();
    ctx.insert("changes", &changes);
    ctx.insert("summary", &found.summary);
    ctx.insert("impact", &found.impact);
    ctx.insert("warnings", &found.warnings);
    ctx
}

#[handler]
pub async fn review_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Query(q): Query<Done>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let (d, found) = match (service::draft(&ctx_s).await, service::review(&ctx_s).await) {
        (Ok(d), Ok(r)) => (d, r),
        (Err(e), _) | (_, Err(e)) => return page.failure(e),
    };
    let mut ctx = review_context(&ctx_s, &found);
    ctx.insert("draft", &draft_view(&d));
    ctx.insert("done", &done_key(&q));
    page.render("settings", "settings_review.html", ctx, StatusCode::OK)
}

#[handler]
pub async fn publish(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.after(
        service::publish(&page.service(), &full).await,
        "/admin/settings/history?done=published",
    )
}

#[handler]
pub async fn discard(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.after(
        service::discard(&page.service(), &full).await,
        "/admin/settings?done=discarded",
    )
}

#[handler]
pub async fn preview_frames(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.render(
        "settings",
        "settings_preview.html",
        tera::Context::new(),
        StatusCode::OK,
    )
}

/// One member page as the draft would show it, for the preview's frames only.
#[handler]
pub async fn preview_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(which): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let draft = match service::preview(&page.service()).await {
        Ok(t) => t,
        Err(e) => return page.failure(e),
    };
    let css = "/admin/settings/preview/theme.css";
    let response = match which.as_str() {
        "login" => render_preview(&state, &draft, "login.html", tera::Context::new(), css),
        "top" => render_preview(&state, &draft, "top.html", tera::Context::new(), css),
        "home" => {
            let mut ctx = tera::Context::new();
            ctx.insert(
                "member",
                &MemberView {
                    name: service::say(&page.service(), "settings.preview.sample_name", &[]),
                    user_id: "sample".to_owned(),
                },
            );
            ctx.insert(
                "services",
                &crate::web::member::account::service_views(&draft),
            );
            render_preview(&state, &draft, "member_top.html", ctx, css)
        }
        _ => return page.failure(ServiceError::NotFound),
    };
    framed(response)
}

/// The draft's colours for the preview's frames.
#[handler]
pub async fn preview_css(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    match service::preview(&page.service()).await {
        Ok(t) => crate::web::assets::theme_css_of(&t)
            .with_header(header::CACHE_CONTROL, "no-store")
            .into_response(),
        Err(e) => page.failure(e),
    }
}

/// A preview page may be framed by the console (same origin), and is never stored.
pub(super) fn framed(response: Response) -> Response {
    response
        .with_header(header::X_FRAME_OPTIONS, "SAMEORIGIN")
        .with_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' https: data:; object-src 'none'; \
             base-uri 'none'; frame-ancestors 'self'; form-action 'none'",
        )
        .with_header(header::CACHE_CONTROL, "no-store")
        .into_response()
}

#[derive(Serialize)]
struct RevisionView {
    number: i64,
    published_at: String,
    published_by: String,
    restored_from: Option<i64>,
    changes: Vec<ChangeView>,
    live: bool,
}

fn revision_view(
    ctx_s: &Ctx<'_>,
    r: &Revision,
    live: &Definition,
    names: &HashMap<String, String>,
) -> RevisionView {
    let titles = service::Names::of(&[&r.definition, live]);
    RevisionView {
        number: r.number,
        published_at: date_time(r.published_at),
        published_by: names
            .get(&r.published_by)
            .cloned()
            .unwrap_or_else(|| service::say(ctx_s, "settings.history.by_file", &[])),
        restored_from: r.restored_from,
        changes: r
            .changes
            .iter()
            .map(|c| ChangeView {
                label: service::label(ctx_s, &c.field, &titles),
                before: service::show(ctx_s, &c.field, &c.before, &titles),
                after: service::show(ctx_s, &c.field, &c.after, &titles),
            })
            .collect(),
        live: &r.definition == live,
    }
}

/// `admin:<id>` → the admin's e-mail address, for the society's own admins.
async fn admin_names(state: &AppState, tenant: &Tenant) -> HashMap<String, String> {
    match state.store.admins(&tenant.id).await {
        Ok(admins) => admins
            .into_iter()
            .map(|a| (format!("admin:{}", a.id), a.email))
            .collect(),
        Err(_) => HashMap::new(),
    }
}

#[handler]
pub async fn history_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Query(q): Query<Done>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let revisions = match service::history(&ctx_s).await {
        Ok(r) => r,
        Err(e) => return page.failure(e),
    };
    let names = admin_names(&state, &tenant.0).await;
    let live = tenant.0.definition();
    // Only the newest revision that matches the live definition is marked as live.
    let mut seen_live = false;
    let views: Vec<RevisionView> = revisions
        .iter()
        .map(|r| {
            let mut v = revision_view(&ctx_s, r, &live, &names);
            v.live = v.live && !seen_live;
            seen_live |= v.live;
            v
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("revisions", &views);
    ctx.insert("done", &done_key(&q));
    page.render("settings", "settings_history.html", ctx, StatusCode::OK)
}

#[handler]
pub async fn restore_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(number): Path<i64>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let old = match service::revision(&ctx_s, number).await {
        Ok(r) => r,
        Err(e) => return page.failure(e),
    };
    let found = match service::review_of(&ctx_s, &tenant.0.definition(), &old.definition).await {
        Ok(r) => r,
        Err(e) => return page.failure(e),
    };
    let mut ctx = review_context(&ctx_s, &found);
    ctx.insert("number", &number);
    ctx.insert("published_at", &date_time(old.published_at));
    page.render("settings", "settings_restore.html", ctx, StatusCode::OK)
}

#[handler]
pub async fn restore(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Path(number): Path<i64>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.after(
        service::restore(&page.service(), &full, number).await,
        "/admin/settings/history?done=restored",
    )
}
