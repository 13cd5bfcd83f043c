//! What platform operators do, whether from the command line or the ops API: onboard and
//! change tenants, enable and disable them, create a society's first admin, and manage the
//! operators' own tokens. One function per action, each audited.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::state::AppState;
use crate::store::{Actor, ApplyOutcome, AuditEvent, Store, StoreError};
use crate::tenant::definition::{changes_between, flatten, Change};
use crate::tenant::{TenantFile, TenantFileError};

/// Why an operator action did nothing.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The tenant file is not valid; every problem is listed.
    #[error("{0}")]
    Invalid(String),
    #[error("no tenant '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => OpsError::Conflict(what),
            other => OpsError::Internal(other.into()),
        }
    }
}

impl From<TenantFileError> for OpsError {
    fn from(e: TenantFileError) -> Self {
        OpsError::Invalid(e.to_string())
    }
}

/// Whether an apply may create, update, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Create,
    Update,
    Either,
}

/// What an apply did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub slug: String,
    /// `created`, `updated` or `unchanged`.
    pub outcome: &'static str,
    pub dry_run: bool,
    /// Field by field, named by their path in the tenant file.
    pub changes: Vec<Change>,
}

/// Who acts: the name of the operator token, or `cli`.
#[derive(Debug, Clone, Copy)]
pub struct Operator<'a>(pub &'a str);

/// Creates or updates a tenant from its file. A dry run reports the changes and writes
/// nothing. Every node serves the result within its refresh interval (at once on this one).
pub async fn apply(
    state: &AppState,
    by: Operator<'_>,
    file: &TenantFile,
    expect: Expect,
    dry_run: bool,
) -> Result<ApplyReport, OpsError> {
    apply_with(&state.store, Some(state), by, file, expect, dry_run).await
}

/// [`apply`] without a running node (the command line).
pub async fn apply_with(
    store: &Store,
    state: Option<&AppState>,
    by: Operator<'_>,
    file: &TenantFile,
    expect: Expect,
    dry_run: bool,
) -> Result<ApplyReport, OpsError> {
    let existing = store.tenant_by_slug(&file.slug).await?;
    match (expect, &existing) {
        (Expect::Create, Some(_)) => {
            return Err(OpsError::Conflict(format!(
                "tenant '{}' already exists",
                file.slug
            )))
        }
        (Expect::Update, None) => return Err(OpsError::NotFound(file.slug.clone())),
        _ => {}
    }
    let before = existing.as_ref().map(|t| t.to_file());
    let changes = file_changes(before.as_ref(), file);
    let would = match (&existing, changes.is_empty()) {
        (None, _) => "created",
        (Some(_), true) => "unchanged",
        (Some(_), false) => "updated",
    };
    if dry_run {
        return Ok(ApplyReport {
            slug: file.slug.clone(),
            outcome: would,
            dry_run,
            changes,
        });
    }
    let outcome = match store.apply_tenant(file).await? {
        ApplyOutcome::Created => "created",
        ApplyOutcome::Updated => "updated",
        ApplyOutcome::Unchanged => "unchanged",
    };
    if outcome != "unchanged" {
        let tenant = store
            .tenant_by_slug(&file.slug)
            .await?
            .ok_or_else(|| OpsError::NotFound(file.slug.clone()))?;
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        audit(
            store,
            Some(&tenant.id),
            by,
            &format!("tenant_{outcome}"),
            &fields.join(", "),
        )
        .await;
        if let Some(state) = state {
            refresh(state).await;
        }
    }
    Ok(ApplyReport {
        slug: file.slug.clone(),
        outcome,
        dry_run,
        changes,
    })
}

/// Enables or disables a tenant. A disabled tenant's hosts answer 「ご利用いただけません」 and
/// its members' and admins' sessions stop working at their next request, on every node.
pub async fn set_enabled(
    store: &Store,
    state: Option<&AppState>,
    by: Operator<'_>,
    slug: &str,
    enabled: bool,
) -> Result<(), OpsError> {
    let Some(id) = store.set_tenant_enabled(slug, enabled).await? else {
        return Err(OpsError::NotFound(slug.to_owned()));
    };
    let id = crate::tenant::TenantId::from_db(id);
    let event = if enabled {
        "tenant_enabled"
    } else {
        "tenant_disabled"
    };
    audit(store, Some(&id), by, event, "").await;
    if let Some(state) = state {
        refresh(state).await;
    }
    Ok(())
}

/// Invites a society's admin (role `admin`) and mails the invitation.
pub async fn first_admin(
    state: &AppState,
    by: Operator<'_>,
    slug: &str,
    email: &str,
) -> Result<crate::admin::accounts::Invitation, OpsError> {
    let tenant = state
        .store
        .tenant_by_slug(slug)
        .await?
        .ok_or_else(|| OpsError::NotFound(slug.to_owned()))?;
    let invitation =
        crate::admin::accounts::invite(state, &tenant, email, crate::store::AdminRole::Admin, None)
            .await
            .map_err(|e| match e {
                crate::admin::ServiceError::Invalid(_) => {
                    OpsError::Invalid("email: not a valid address".into())
                }
                crate::admin::ServiceError::Conflict(_) => {
                    OpsError::Conflict(format!("'{email}' is already an admin of '{slug}'"))
                }
                other => OpsError::Internal(anyhow::anyhow!("{other}")),
            })?;
    audit(
        &state.store,
        Some(&tenant.id),
        by,
        "operator_invited_admin",
        invitation.admin_id.as_str(),
    )
    .await;
    Ok(invitation)
}

/// A new operator token named `name`; the token is shown this once (only its hash is kept).
pub async fn create_token(store: &Store, name: &str) -> Result<String, OpsError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(OpsError::Invalid(
            "name: 1 to 100 characters, no control characters".into(),
        ));
    }
    let (secret, hash) = crate::auth::session::new_token();
    let id = crate::random_token(16);
    store.create_operator_token(&id, name, &hash).await?;
    audit(store, None, Operator("cli"), "operator_token_created", name).await;
    Ok(format!("{TOKEN_PREFIX}{secret}"))
}

/// Operator tokens start with this, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "ops_";

/// The operator a bearer token belongs to, if it is live.
pub async fn check_token(
    store: &Store,
    bearer: &str,
) -> Result<Option<crate::store::OperatorToken>, StoreError> {
    let Some(secret) = bearer.strip_prefix(TOKEN_PREFIX) else {
        return Ok(None);
    };
    if !crate::auth::session::is_token_shaped(secret) {
        return Ok(None);
    }
    store
        .use_operator_token(&crate::auth::session::token_hash(secret))
        .await
}

async fn audit(
    store: &Store,
    tenant: Option<&crate::tenant::TenantId>,
    by: Operator<'_>,
    event: &str,
    detail: &str,
) {
    let detail = if detail.is_empty() {
        format!("operator {}", by.0)
    } else {
        format!("operator {}: {detail}", by.0)
    };
    let event = AuditEvent {
        tenant,
        member_id: None,
        actor: Actor::System,
        event,
        ip: "",
        user_agent: "",
        detail: &detail,
        before: None,
        after: None,
    };
    if let Err(error) = store.audit(&event).await {
        tracing::error!(%error, "writing an operator audit event failed");
    }
}

async fn refresh(state: &AppState) {
    if let Err(error) = state.tenants.refresh().await {
        tracing::warn!(%error, "refreshing the tenant cache failed");
    }
}

/// Every field of a tenant file that differs, by its path: settings as `password.min_length`,
/// services by id (`services.notices.url`) and terms by version (`terms.versions.2025-10.body`).
pub fn file_changes(before: Option<&TenantFile>, after: &TenantFile) -> Vec<Change> {
    let old = before.map(fields).unwrap_or_default();
    changes_between(&old, &fields(after))
}

fn fields(file: &TenantFile) -> BTreeMap<String, Value> {
    let mut value = serde_json::to_value(file).expect("a tenant file serialises");
    let mut out = BTreeMap::new();
    if let Value::Object(map) = &mut value {
        // Lists of records are keyed by their id, so moving one is one change.
        if let Some(Value::Array(services)) = map.remove("services") {
            let order: Vec<Value> = services
                .iter()
                .filter_map(|s| s.get("id").cloned())
                .collect();
            out.insert("services.order".to_owned(), Value::Array(order));
            for s in services {
                let id = s.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
                flatten(&format!("services.{id}"), &s, &mut out);
            }
        }
        if let Some(Value::Object(mut terms)) = map.remove("terms") {
            if let Some(Value::Array(versions)) = terms.remove("versions") {
                for v in versions {
                    let id = v
                        .get("version")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    flatten(&format!("terms.versions.{id}"), &v, &mut out);
                }
            }
            flatten("terms", &Value::Object(terms), &mut out);
        }
    }
    flatten("", &value, &mut out);
    out.retain(|k, _| !k.ends_with(".id") && !k.ends_with(".version"));
    out
}

/// The text of a new tenant file: every setting at its default, each with a comment.
pub fn scaffold(slug: &str) -> Result<String, OpsError> {
    let valid = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if !valid {
        return Err(OpsError::Invalid(format!(
            "slug: '{slug}' must be 1 to 63 characters a-z, 0-9 and '-', not starting or ending with '-'"
        )));
    }
    let text = include_str!("tenant/scaffold.toml").replace("{slug}", slug);
    // The scaffold always parses; a test keeps it that way.
    TenantFile::parse(&text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaffold_is_a_valid_tenant_with_every_section() {
        let text = scaffold("sample-kenpo").unwrap();
        let file = TenantFile::parse(&text).unwrap();
        assert_eq!(file.slug, "sample-kenpo");
        for key in crate::tenant::TenantSettings::KEYS {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("[{key}]"))
                        || l.starts_with(&format!("{key} ="))),
                "{key} missing from the scaffold"
            );
        }
        // Every setting line is explained by a comment just above it.
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.contains(" = ") && !line.starts_with('#') {
                assert!(
                    lines[..i].last().is_some_and(|l| l.starts_with('#')),
                    "no comment above '{line}'"
                );
            }
        }
        assert!(scaffold("Bad_Slug").is_err());
    }

    #[test]
    fn changes_are_named_by_path() {
        let a = TenantFile::parse(&scaffold("a").unwrap()).unwrap();
        let mut b = a.clone();
        b.settings.password.min_length = 12;
        b.display_name = "別名".into();
        let changes = file_changes(Some(&a), &b);
        let names: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(names, ["display_name", "password.min_length"]);
        assert_eq!(changes[1].before, serde_json::json!(8));
        assert!(file_changes(Some(&a), &a).is_empty());
    }
}
