//! What a society edits and publishes as one revision: its settings (rules and look) and
//! its service menu. Host names, the society's name and whether it is enabled belong to
//! the platform operators; the terms of use have a publishing cycle of their own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ServiceIcon, Tenant, TenantSettings};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub settings: TenantSettings,
    #[serde(default)]
    pub services: Vec<ServiceIcon>,
}

/// One field that differs between two definitions, named by its path in the tenant file
/// (`password.min_length`, `services.notices.title`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

impl Tenant {
    pub fn definition(&self) -> Definition {
        Definition {
            settings: self.settings.clone(),
            services: self.services.clone(),
        }
    }

    /// This tenant as it would be with `definition` published (for previews).
    pub fn with_definition(&self, definition: &Definition) -> Tenant {
        let mut tenant = self.clone();
        tenant.settings = definition.settings.clone();
        tenant.services = definition.services.clone();
        tenant
    }
}

/// Settings that belong to the platform's operators, not to the society: where its mail
/// leaves from and through which relay, its DKIM key, and how long its records are kept.
/// A society's console and API never show them, and nothing a society publishes, drafts
/// or restores writes them; operators set them with `portal tenant apply`.
pub const OPERATOR_FIELDS: [&str; 5] = [
    "mail.domain",
    "mail.smtp_url",
    "mail.dkim_selector",
    "retention.audit_days",
    "retention.mail_days",
];

/// Whether `field` (a flattened path) is one of [`OPERATOR_FIELDS`] or inside one.
pub fn is_operator_field(field: &str) -> bool {
    field == "retention"
        || OPERATOR_FIELDS
            .iter()
            .any(|f| field == *f || field.strip_prefix(f).is_some_and(|r| r.starts_with('.')))
}

/// The settings as a society may see them: [`OPERATOR_FIELDS`] left out.
pub fn society_settings_json(settings: &TenantSettings) -> Value {
    let mut tree = serde_json::to_value(settings).expect("settings serialise");
    if let Value::Object(top) = &mut tree {
        top.remove("retention");
        if let Some(Value::Object(mail)) = top.get_mut("mail") {
            for key in ["domain", "smtp_url", "dkim_selector"] {
                mail.remove(key);
            }
        }
    }
    tree
}

impl TenantSettings {
    /// These settings with the operator-owned fields taken from `from`.
    pub fn with_operator_fields_of(&self, from: &TenantSettings) -> TenantSettings {
        let mut s = self.clone();
        s.mail.domain = from.mail.domain.clone();
        s.mail.smtp_url = from.mail.smtp_url.clone();
        s.mail.dkim_selector = from.mail.dkim_selector.clone();
        s.retention = from.retention.clone();
        s
    }
}

impl Definition {
    /// This definition with the operator-owned fields taken from `live`: what a society's
    /// draft or old revision means today.
    pub fn with_operator_fields_of(&self, live: &Definition) -> Definition {
        Definition {
            settings: self.settings.with_operator_fields_of(&live.settings),
            services: self.services.clone(),
        }
    }

    /// Only what the society owns: the operator-owned fields at their defaults (a draft
    /// is stored like this; reading it puts the live ones back).
    pub fn society_part(&self) -> Definition {
        Definition {
            settings: self
                .settings
                .with_operator_fields_of(&TenantSettings::default()),
            services: self.services.clone(),
        }
    }

    /// Every field, flattened: settings by their path, each service by its id, and the
    /// order of the services as one field.
    fn fields(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let settings = serde_json::to_value(&self.settings).expect("settings serialise");
        flatten("", &settings, &mut out);
        for icon in &self.services {
            let value = serde_json::to_value(icon).expect("a service serialises");
            if let Value::Object(map) = value {
                for (key, v) in map {
                    if key != "id" {
                        out.insert(format!("services.{}.{key}", icon.id), v);
                    }
                }
            }
        }
        out.insert(
            "services.order".to_owned(),
            Value::Array(
                self.services
                    .iter()
                    .map(|s| Value::String(s.id.clone()))
                    .collect(),
            ),
        );
        out
    }

    /// The fields that differ from `before`, in path order; a field present on one side
    /// only has `null` on the other.
    pub fn changes_from(&self, before: &Definition) -> Vec<Change> {
        changes_between(&before.fields(), &self.fields())
    }
}

/// The fields that differ between two flattened documents, in path order; a field present
/// on one side only has `null` on the other.
pub(crate) fn changes_between(
    old: &BTreeMap<String, Value>,
    new: &BTreeMap<String, Value>,
) -> Vec<Change> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let b = old.get(k).cloned().unwrap_or(Value::Null);
            let a = new.get(k).cloned().unwrap_or(Value::Null);
            (b != a).then(|| Change {
                field: k.clone(),
                before: b,
                after: a,
            })
        })
        .collect()
}

/// Objects are walked into `a.b.c` paths; arrays and scalars are leaves.
pub(crate) fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Definition {
        let file =
            super::super::TenantFile::parse(include_str!("../../../tenants/kanekakenpo.toml"))
                .unwrap();
        Definition {
            settings: file.settings,
            services: file.services,
        }
    }

    #[test]
    fn an_unchanged_definition_has_no_changes() {
        assert!(seed().changes_from(&seed()).is_empty());
    }

    #[test]
    fn changes_name_each_field_with_both_values() {
        let before = seed();
        let mut after = seed();
        after.settings.password.min_length = 12;
        after.services[0].title = "お知らせ一覧".into();
        after.services.swap(1, 2);
        let changes = after.changes_from(&before);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "password.min_length",
                "services.notices.title",
                "services.order"
            ]
        );
        assert_eq!(changes[0].before, Value::from(8));
        assert_eq!(changes[0].after, Value::from(12));
    }

    #[test]
    fn a_removed_service_shows_as_fields_going_to_null() {
        let before = seed();
        let mut after = seed();
        after.services.remove(3);
        let changes = after.changes_from(&before);
        assert!(changes
            .iter()
            .any(|c| c.field == "services.generic-drugs.title" && c.after.is_null()));
    }
}
