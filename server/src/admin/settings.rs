//! 「設定」: a society edits its rules as a draft, reviews what the draft changes for its
//! members (with the impact counted from its data and warnings where security weakens),
//! previews it, publishes it as a numbered revision, and can publish any earlier revision
//! again. The console pages and the API call these functions; every change is audited
//! with what it changed, field by field.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::{Ctx, FieldProblem, FullAdmin, ServiceError};
use crate::store::Revision;
use crate::tenant::definition::is_operator_field;
use crate::tenant::{
    Change, Definition, FieldErrorKind, FirstLoginStep, MfaMethod, Tenant, TenantFile,
    TenantSettings,
};
use crate::theme::DEFAULT_THEME;

/// How a field of the settings form is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Number,
    Text,
    /// Text of several lines.
    LongText,
    Flag,
    /// Several of a fixed set (`mfa.methods`).
    Choices(&'static [&'static str]),
    /// One of a fixed set.
    Choice(&'static [&'static str]),
    /// Some of a fixed set, in an order (`first_login.steps`).
    Steps(&'static [&'static str]),
}

/// Every setting a society edits here (SPEC §2), by its path in the tenant file, in the
/// order the form shows them. Mail domains, SMTP and DKIM stay with the operators.
pub const FIELDS: &[(&str, Kind)] = &[
    (
        "mfa.methods",
        Kind::Choices(&["passkey", "totp", "email_otp"]),
    ),
    ("mfa.required", Kind::Flag),
    ("mfa.reset_with_password", Kind::Flag),
    ("password.min_length", Kind::Number),
    ("password.max_length", Kind::Number),
    (
        "password.required_classes",
        Kind::Choices(&["lower", "upper", "digit", "symbol"]),
    ),
    ("password.allowed_symbols", Kind::Text),
    ("password.differ_from_user_id", Kind::Flag),
    ("password.differ_from_current", Kind::Flag),
    ("password.history", Kind::Number),
    ("password.reject_common", Kind::Flag),
    ("user_id.min_length", Kind::Number),
    ("user_id.max_length", Kind::Number),
    ("user_id.allowed_symbols", Kind::Text),
    ("lockout.max_failures", Kind::Number),
    (
        "lockout.mode",
        Kind::Choice(&["temporary", "until_unlocked"]),
    ),
    ("lockout.duration_minutes", Kind::Number),
    ("session.idle_timeout_minutes", Kind::Number),
    ("session.absolute_timeout_minutes", Kind::Number),
    ("session.step_up_max_age_minutes", Kind::Number),
    ("totp.digits", Kind::Number),
    ("totp.period_seconds", Kind::Number),
    ("totp.skew_steps", Kind::Number),
    ("totp.issuer", Kind::Text),
    ("email_otp.code_length", Kind::Number),
    ("email_otp.lifetime_minutes", Kind::Number),
    ("email_otp.resend_cooldown_seconds", Kind::Number),
    ("email_otp.max_attempts", Kind::Number),
    ("links.reset_lifetime_minutes", Kind::Number),
    ("links.email_verification_lifetime_minutes", Kind::Number),
    ("first_login.steps", Kind::Steps(&FirstLoginStep::NAMES)),
    (
        "first_login.factor_setup",
        Kind::Choice(&["now", "next_login"]),
    ),
    ("mail.from_name", Kind::Text),
    ("contact", Kind::Text),
];

/// Longest value any field of the form takes, before its own rule.
const MAX_VALUE: usize = 4000;

/// The field of [`FIELDS`] named `name`.
pub fn field(name: &str) -> Option<(&'static str, Kind)> {
    FIELDS.iter().copied().find(|(f, _)| *f == name)
}

/// The draft as it stands: the draft if there is one, else the live definition.
#[derive(Debug, Clone)]
pub struct DraftState {
    pub definition: Definition,
    /// A draft is saved (else this is the live definition).
    pub saved: bool,
    /// Something was published after the draft was started.
    pub stale: bool,
    pub updated_at: Option<i64>,
    pub updated_by: Option<String>,
    /// The tenant revision the draft was started from.
    pub base_revision: i64,
}

/// A sentence for the review page, with the key of its text.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub code: String,
    pub text: String,
}

/// What publishing the draft would do.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub changes: Vec<Change>,
    /// What changes for members, in plain words.
    pub summary: Vec<Notice>,
    /// How many members it touches, counted from the data.
    pub impact: Vec<Notice>,
    /// Where the draft weakens security.
    pub warnings: Vec<Notice>,
    /// The services' titles by id, to name them in the changes.
    pub names: Names,
}

/// Service titles by id, from one or more definitions (the newest title wins), so that
/// changes name 「健康相談」 rather than `service-1`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Names(std::collections::HashMap<String, String>);

impl Names {
    pub fn of(definitions: &[&Definition]) -> Self {
        let mut map = std::collections::HashMap::new();
        for d in definitions.iter().rev() {
            for s in &d.services {
                map.insert(s.id.clone(), s.title.clone());
            }
        }
        Names(map)
    }

    fn title<'a>(&'a self, id: &'a str) -> &'a str {
        self.0.get(id).map_or(id, String::as_str)
    }
}

fn by(ctx: &Ctx<'_>) -> String {
    format!("admin:{}", ctx.acting.admin)
}

/// A console text with `{name}` parameters filled in.
pub fn say(ctx: &Ctx<'_>, key: &str, params: &[(&str, String)]) -> String {
    let mut text = match ctx.state.console.get(DEFAULT_THEME) {
        Ok(ui) => ui.text(key).to_owned(),
        Err(_) => key.to_owned(),
    };
    for (name, value) in params {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

/// The draft as it stands. A draft holds only what the society owns; the operator-owned
/// fields are the live ones, whenever the draft was started.
pub async fn draft(ctx: &Ctx<'_>) -> Result<DraftState, ServiceError> {
    let stored = ctx.state.store.tenant_draft(&ctx.tenant.id).await?;
    let live = ctx.tenant.definition();
    Ok(match stored {
        Some(d) => DraftState {
            stale: d.base_revision != ctx.tenant.revision,
            base_revision: d.base_revision,
            definition: d.definition.with_operator_fields_of(&live),
            saved: true,
            updated_at: Some(d.updated_at),
            updated_by: Some(d.updated_by),
        },
        None => DraftState {
            definition: ctx.tenant.definition(),
            saved: false,
            stale: false,
            updated_at: None,
            updated_by: None,
            base_revision: ctx.tenant.revision,
        },
    })
}

/// Writes `edits` (field path → JSON value) into `settings`; a value of the wrong type
/// or an unknown field is a problem of that field.
pub fn apply_edits(
    settings: &TenantSettings,
    edits: &[(String, Value)],
) -> Result<TenantSettings, Vec<FieldProblem>> {
    let mut tree = serde_json::to_value(settings).expect("settings serialise");
    let mut problems = Vec::new();
    for (name, value) in edits {
        let Some((field, kind)) = field(name) else {
            problems.push(FieldProblem::new("settings", "settings_unknown_field"));
            continue;
        };
        if let Some(code) = type_problem(kind, value) {
            problems.push(FieldProblem::new(field, code));
            continue;
        }
        let mut at = &mut tree;
        for part in field.split('.') {
            at = &mut at[part];
        }
        *at = value.clone();
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::from_value(tree)
        .map_err(|_| vec![FieldProblem::new("settings", "settings_invalid")])
}

fn type_problem(kind: Kind, value: &Value) -> Option<&'static str> {
    let text_ok = |s: &str| s.chars().count() <= MAX_VALUE;
    match (kind, value) {
        (Kind::Number, Value::Number(n)) if n.as_u64().is_some_and(|n| n <= u32::MAX as u64) => {
            None
        }
        (Kind::Number, _) => Some("settings_not_a_number"),
        (Kind::Text | Kind::LongText, Value::String(s)) if text_ok(s) => None,
        (Kind::Text | Kind::LongText, Value::String(_)) => Some("settings_too_long"),
        (Kind::Flag, Value::Bool(_)) => None,
        (Kind::Choice(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => None,
        (Kind::Choices(allowed) | Kind::Steps(allowed), Value::Array(items))
            if items
                .iter()
                .all(|v| v.as_str().is_some_and(|s| allowed.contains(&s))) =>
        {
            None
        }
        _ => Some("settings_wrong_value"),
    }
}

/// Every rule of a tenant definition, for `settings`, as Japanese field problems.
pub(crate) fn check(ctx: &Ctx<'_>, definition: &Definition) -> Result<(), ServiceError> {
    let mut file: TenantFile = ctx.tenant.to_file();
    file.settings = definition.settings.clone();
    file.services = definition.services.clone();
    let errors = file.validate();
    if errors.is_empty() {
        return Ok(());
    }
    let problems = errors
        .into_iter()
        .map(|e| {
            let known = field(&e.field).map(|(f, _)| f);
            let message = match e.kind {
                FieldErrorKind::Range { min, max } => say(
                    ctx,
                    "settings.rule.range",
                    &[("min", min.to_string()), ("max", max.to_string())],
                ),
                FieldErrorKind::Empty => say(ctx, "settings.rule.empty", &[]),
                FieldErrorKind::TooLong { max } => {
                    say(ctx, "settings.rule.too_long", &[("max", max.to_string())])
                }
                FieldErrorKind::Control => say(ctx, "settings.rule.control", &[]),
                FieldErrorKind::Rule => {
                    let key = format!("settings.rule.{}", e.field);
                    let text = say(ctx, &key, &[]);
                    if text == key {
                        say(ctx, "settings.rule.other", &[])
                    } else {
                        text
                    }
                }
            };
            FieldProblem {
                field: known.unwrap_or("settings"),
                code: "settings_rule",
                message: Some(message),
            }
        })
        .collect();
    Err(ServiceError::Invalid(problems))
}

/// Saves `edits` into the draft (started from the live definition if there is none).
/// Nothing is saved if any field is wrong.
pub async fn save_settings(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    edits: &[(String, Value)],
) -> Result<DraftState, ServiceError> {
    let current = draft(ctx).await?;
    let settings =
        apply_edits(&current.definition.settings, edits).map_err(ServiceError::Invalid)?;
    let definition = Definition {
        settings,
        services: current.definition.services.clone(),
    };
    check(ctx, &definition)?;
    save(ctx, &current, definition).await
}

/// Stores `definition` as the draft and audits what it changed in the draft.
pub async fn save(
    ctx: &Ctx<'_>,
    current: &DraftState,
    definition: Definition,
) -> Result<DraftState, ServiceError> {
    let changed = definition.changes_from(&current.definition);
    let base = current.base_revision;
    ctx.state
        .store
        .save_tenant_draft(&ctx.tenant.id, &definition.society_part(), base, &by(ctx))
        .await?;
    if !changed.is_empty() {
        let (before, after) = change_json(&changed);
        ctx.audit(
            "settings_draft_saved",
            None,
            &fields_of(&changed),
            Some((&before, &after)),
        )
        .await;
    }
    draft(ctx).await
}

fn fields_of(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| c.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The before and after of a change as two JSON objects keyed by field.
fn change_json(changes: &[Change]) -> (String, String) {
    let before: serde_json::Map<String, Value> = changes
        .iter()
        .map(|c| (c.field.clone(), c.before.clone()))
        .collect();
    let after: serde_json::Map<String, Value> = changes
        .iter()
        .map(|c| (c.field.clone(), c.after.clone()))
        .collect();
    (
        Value::Object(before).to_string(),
        Value::Object(after).to_string(),
    )
}

/// Throws the draft away.
pub async fn discard(ctx: &Ctx<'_>, _full: &FullAdmin) -> Result<bool, ServiceError> {
    let had = ctx.state.store.discard_tenant_draft(&ctx.tenant.id).await?;
    if had {
        ctx.audit("settings_draft_discarded", None, "", None).await;
    }
    Ok(had)
}

/// The tenant as members would see it with the draft published (for previews).
pub async fn preview(ctx: &Ctx<'_>) -> Result<Tenant, ServiceError> {
    let d = draft(ctx).await?;
    Ok(ctx.tenant.with_definition(&d.definition))
}

/// What publishing the draft would change, for whom, and where it weakens security.
pub async fn review(ctx: &Ctx<'_>) -> Result<Review, ServiceError> {
    let d = draft(ctx).await?;
    review_of(ctx, &ctx.tenant.definition(), &d.definition).await
}

/// What publishing `after` over `before` would do.
pub async fn review_of(
    ctx: &Ctx<'_>,
    before: &Definition,
    after: &Definition,
) -> Result<Review, ServiceError> {
    let changes = after.changes_from(before);
    let names = Names::of(&[after, before]);
    let mut summary = Vec::new();
    for c in &changes {
        summary.extend(describe(ctx, c, &names));
    }
    let impact = impact(ctx, &before.settings, &after.settings).await?;
    let warnings = warnings(ctx, &after.settings);
    Ok(Review {
        changes,
        summary,
        impact,
        warnings,
        names,
    })
}

/// A value as the console shows it.
pub fn show(ctx: &Ctx<'_>, field: &str, value: &Value, names: &Names) -> String {
    if field == "services.order" {
        if let Value::Array(ids) = value {
            return ids
                .iter()
                .filter_map(Value::as_str)
                .map(|id| format!("「{}」", names.title(id)))
                .collect::<Vec<_>>()
                .join("→");
        }
    }
    if field == "theme.logo" || field.ends_with(".image") {
        if let Some(path) = value.as_str() {
            if path.starts_with("uploads/") {
                return say(ctx, "settings.value.uploaded", &[]);
            }
        }
    }
    match value {
        Value::Null => say(ctx, "settings.value.none", &[]),
        Value::Bool(true) => say(ctx, "settings.value.yes", &[]),
        Value::Bool(false) => say(ctx, "settings.value.no", &[]),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.is_empty() => say(ctx, "settings.value.empty", &[]),
        Value::String(s) => {
            let key = format!("settings.choice.{s}");
            let named = say(ctx, &key, &[]);
            if named != key && !field.ends_with("symbols") {
                named
            } else {
                s.clone()
            }
        }
        Value::Array(items) if items.is_empty() => say(ctx, "settings.value.none", &[]),
        // The screens of the first login, in their order.
        Value::Array(items) if field == "first_login.steps" => items
            .iter()
            .map(|v| format!("「{}」", show(ctx, field, v, names)))
            .collect::<Vec<_>>()
            .join("→"),
        Value::Array(items) => items
            .iter()
            .map(|v| show(ctx, field, v, names))
            .collect::<Vec<_>>()
            .join("、"),
        Value::Object(_) => value.to_string(),
    }
}

/// The label of a field.
pub fn label(ctx: &Ctx<'_>, field: &str, names: &Names) -> String {
    let key = format!("settings.labels.{field}");
    let text = say(ctx, &key, &[]);
    if text != key {
        return text;
    }
    // Service fields: services.<id>.<part>
    if let Some(rest) = field.strip_prefix("services.") {
        if let Some((id, part)) = rest.rsplit_once('.') {
            return say(
                ctx,
                "settings.labels.service_part",
                &[
                    ("id", names.title(id).to_owned()),
                    (
                        "part",
                        say(ctx, &format!("settings.labels.service.{part}"), &[]),
                    ),
                ],
            );
        }
    }
    field.to_owned()
}

/// Plain sentences for one change.
fn describe(ctx: &Ctx<'_>, c: &Change, names: &Names) -> Vec<Notice> {
    let notice = |code: String, params: &[(&str, String)]| Notice {
        text: say(ctx, &format!("settings.summary.{code}"), params),
        code,
    };
    match (c.field.as_str(), &c.before, &c.after) {
        ("mfa.methods", Value::Array(b), Value::Array(a)) => {
            let mut out = Vec::new();
            for m in a.iter().filter(|m| !b.contains(m)) {
                out.push(notice(
                    "method_added".into(),
                    &[("method", show(ctx, "", m, names))],
                ));
            }
            for m in b.iter().filter(|m| !a.contains(m)) {
                out.push(notice(
                    "method_removed".into(),
                    &[("method", show(ctx, "", m, names))],
                ));
            }
            out
        }
        (field, _, Value::Bool(on)) => {
            let code = format!("{field}.{}", if *on { "on" } else { "off" });
            let key = format!("settings.summary.{code}");
            if say(ctx, &key, &[]) != key {
                vec![notice(code, &[])]
            } else {
                vec![generic(ctx, c, names)]
            }
        }
        (field, before, after) => {
            let key = format!("settings.summary.{field}");
            if say(ctx, &key, &[]) != key {
                vec![notice(
                    field.to_owned(),
                    &[
                        ("before", show(ctx, field, before, names)),
                        ("after", show(ctx, field, after, names)),
                    ],
                )]
            } else {
                vec![generic(ctx, c, names)]
            }
        }
    }
}

fn generic(ctx: &Ctx<'_>, c: &Change, names: &Names) -> Notice {
    Notice {
        code: "changed".into(),
        text: say(
            ctx,
            "settings.summary.changed",
            &[
                ("label", label(ctx, &c.field, names)),
                ("before", show(ctx, &c.field, &c.before, names)),
                ("after", show(ctx, &c.field, &c.after, names)),
            ],
        ),
    }
}

/// The password rules of `after` are stricter than `before` in some way.
fn password_tightened(before: &TenantSettings, after: &TenantSettings) -> bool {
    let (b, a) = (&before.password, &after.password);
    a.min_length > b.min_length
        || a.max_length < b.max_length
        || a.required_classes
            .iter()
            .any(|c| !b.required_classes.contains(c))
        || b.allowed_symbols
            .chars()
            .any(|c| !a.allowed_symbols.contains(c))
        || (a.reject_common && !b.reject_common)
        || (a.differ_from_user_id && !b.differ_from_user_id)
}

async fn impact(
    ctx: &Ctx<'_>,
    before: &TenantSettings,
    after: &TenantSettings,
) -> Result<Vec<Notice>, ServiceError> {
    let store = &ctx.state.store;
    let tenant = &ctx.tenant.id;
    let mut out = Vec::new();
    let notice = |code: &str, n: usize| Notice {
        code: code.to_owned(),
        text: say(
            ctx,
            &format!("settings.impact.{code}"),
            &[("n", n.to_string())],
        ),
    };
    if password_tightened(before, after) {
        let active = store
            .member_state_counts(tenant)
            .await?
            .into_iter()
            .filter(|(state, _)| state == "active")
            .map(|(_, n)| n as usize)
            .sum();
        out.push(notice("password_rule", active));
    }
    if before.first_login != after.first_login {
        // Members under way resume at the first screen of the new order not yet done.
        let under_way = store
            .member_state_counts(tenant)
            .await?
            .into_iter()
            .filter(|(state, _)| state == "temporary")
            .map(|(_, n)| n as usize)
            .sum();
        out.push(notice("first_login_order", under_way));
    }
    let removed: HashSet<&str> = before
        .mfa
        .methods
        .iter()
        .filter(|m| !after.mfa.methods.contains(m))
        .map(|m| m.as_str())
        .collect();
    let newly_required = after.mfa.required && !before.mfa.required;
    if !removed.is_empty() || newly_required {
        let held = store.factor_kinds(tenant).await?;
        let mut by_member: HashMap<String, HashSet<String>> = HashMap::new();
        for (member, kind) in held {
            by_member.entry(member).or_default().insert(kind);
        }
        if !removed.is_empty() {
            let stranded = by_member
                .values()
                .filter(|kinds| kinds.iter().all(|k| removed.contains(k.as_str())))
                .count();
            out.push(notice("only_removed_method", stranded));
        }
        if newly_required {
            let active = store.active_member_ids(tenant).await?;
            let without = active
                .iter()
                .filter(|id| !by_member.contains_key(*id))
                .count();
            out.push(notice("mfa_now_required", without));
        }
    }
    Ok(out)
}

fn warnings(ctx: &Ctx<'_>, s: &TenantSettings) -> Vec<Notice> {
    let mut codes = Vec::new();
    if s.mfa.methods.contains(&MfaMethod::EmailOtp) {
        codes.push("email_factor");
    }
    if !s.mfa.required {
        codes.push("mfa_optional");
    }
    if s.mfa.reset_with_password {
        codes.push("reset_by_email");
    }
    if s.password.min_length < 8 {
        codes.push("short_passwords");
    }
    codes
        .into_iter()
        .map(|code| Notice {
            code: code.to_owned(),
            text: say(ctx, &format!("settings.warnings.{code}"), &[]),
        })
        .collect()
}

/// 「公開」: the draft becomes live as a new revision; this node serves it at once, the
/// others at their next poll of the tenant generation.
pub async fn publish(ctx: &Ctx<'_>, _full: &FullAdmin) -> Result<i64, ServiceError> {
    let d = draft(ctx).await?;
    if !d.saved {
        return Err(ServiceError::Conflict("settings_no_draft"));
    }
    let live = ctx.tenant.definition();
    let changes = d.definition.changes_from(&live);
    if changes.is_empty() {
        return Err(ServiceError::Conflict("settings_nothing_to_publish"));
    }
    check(ctx, &d.definition)?;
    let number = ctx
        .state
        .store
        .publish_definition(&ctx.tenant.id, &live, &d.definition, &by(ctx), None)
        .await?;
    let (before, after) = change_json(&changes);
    ctx.audit(
        "settings_published",
        None,
        &format!("revision {number}: {}", fields_of(&changes)),
        Some((&before, &after)),
    )
    .await;
    refresh(ctx).await;
    Ok(number)
}

/// A revision as a society sees it: its own fields as published, the operator-owned ones
/// as they are live today, and no change of an operator-owned field listed.
fn society_view(ctx: &Ctx<'_>, mut r: Revision) -> Revision {
    r.definition = r
        .definition
        .with_operator_fields_of(&ctx.tenant.definition());
    r.changes.retain(|c| !is_operator_field(&c.field));
    r
}

/// Every published revision, newest first.
pub async fn history(ctx: &Ctx<'_>) -> Result<Vec<Revision>, ServiceError> {
    Ok(ctx
        .state
        .store
        .tenant_revisions(&ctx.tenant.id)
        .await?
        .into_iter()
        .map(|r| society_view(ctx, r))
        .collect())
}

pub async fn revision(ctx: &Ctx<'_>, number: i64) -> Result<Revision, ServiceError> {
    ctx.state
        .store
        .tenant_revision(&ctx.tenant.id, number)
        .await?
        .map(|r| society_view(ctx, r))
        .ok_or(ServiceError::NotFound)
}

/// 「この版に戻す」: revision `number` is published again, as a new revision. A draft in
/// progress is kept.
pub async fn restore(ctx: &Ctx<'_>, _full: &FullAdmin, number: i64) -> Result<i64, ServiceError> {
    let old = revision(ctx, number).await?;
    let live = ctx.tenant.definition();
    let changes = old.definition.changes_from(&live);
    if changes.is_empty() {
        return Err(ServiceError::Conflict("settings_already_live"));
    }
    check(ctx, &old.definition)?;
    let draft = ctx.state.store.tenant_draft(&ctx.tenant.id).await?;
    let new = ctx
        .state
        .store
        .publish_definition(
            &ctx.tenant.id,
            &live,
            &old.definition,
            &by(ctx),
            Some(number),
        )
        .await?;
    // Publishing ends the draft; one in progress survives a restore.
    if let Some(d) = draft {
        ctx.state
            .store
            .save_tenant_draft(
                &ctx.tenant.id,
                &d.definition.society_part(),
                d.base_revision,
                &d.updated_by,
            )
            .await?;
    }
    let (before, after) = change_json(&changes);
    ctx.audit(
        "settings_restored",
        None,
        &format!("revision {new} restores {number}: {}", fields_of(&changes)),
        Some((&before, &after)),
    )
    .await;
    refresh(ctx).await;
    Ok(new)
}

/// This node serves the new definition at once.
pub(crate) async fn refresh(ctx: &Ctx<'_>) {
    if let Err(error) = ctx.state.tenants.refresh().await {
        tracing::warn!(%error, "refreshing the tenant cache failed");
    }
}
