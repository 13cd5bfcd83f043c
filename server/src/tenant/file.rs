//! The onboarding format: `tenants/<slug>.toml`. `portal tenant export` writes it and
//! `portal tenant apply` reads it back unchanged.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::settings::{CharClass, LockMode, TenantSettings, USER_ID_SYMBOLS};
use super::{ServiceIcon, Terms};
use crate::config::is_hostname;

/// Parsed by [`TenantFile::parse`], which reports the path of any wrong value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantFile {
    pub slug: String,
    pub display_name: String,
    pub enabled: bool,
    /// Extra host names (custom domains, `www.` forms) besides `<slug>.<base domain>`.
    pub hosts: Vec<String>,
    #[serde(flatten)]
    pub settings: TenantSettings,
    pub services: Vec<ServiceIcon>,
    pub terms: Terms,
}

/// The keys of a tenant file that are not settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    slug: String,
    display_name: String,
    #[serde(default = "super::yes")]
    enabled: bool,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    services: Vec<ServiceIcon>,
    #[serde(default)]
    terms: Terms,
}

/// One reason a tenant file is refused, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// What kind of rule was broken, for messages in other languages.
    pub kind: FieldErrorKind,
}

/// The rule a [`FieldError`] reports: a number out of its range, a text empty, too long or
/// with control characters, or a rule of its own (named by the English message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Range { min: u32, max: u32 },
    Empty,
    TooLong { max: usize },
    Control,
    Rule,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TenantFileError {
    #[error("{0}")]
    Syntax(String),
    #[error("{}", list(.0))]
    Invalid(Vec<FieldError>),
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

const TOP_LEVEL_KEYS: [&str; 6] = [
    "slug",
    "display_name",
    "enabled",
    "hosts",
    "services",
    "terms",
];

impl TenantFile {
    /// Parses and validates a tenant file. Every problem found is reported, each naming
    /// its field.
    pub fn parse(text: &str) -> Result<Self, TenantFileError> {
        // `flatten` cannot refuse unknown keys by itself: check the top level first, so
        // that a misspelt section is an error rather than silently ignored.
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| TenantFileError::Syntax(e.to_string()))?;
        let unknown: Vec<FieldError> = table
            .keys()
            .filter(|k| {
                !TOP_LEVEL_KEYS.contains(&k.as_str()) && !TenantSettings::KEYS.contains(&k.as_str())
            })
            .map(|k| FieldError {
                field: k.clone(),
                message: "unknown field".into(),
                kind: FieldErrorKind::Rule,
            })
            .collect();
        if !unknown.is_empty() {
            return Err(TenantFileError::Invalid(unknown));
        }
        let settings: toml::Table = TenantSettings::KEYS
            .iter()
            .filter_map(|k| table.remove(*k).map(|v| (k.to_string(), v)))
            .collect();
        let settings: TenantSettings = typed(settings)?;
        let identity: Identity = typed(table)?;
        let file = TenantFile {
            slug: identity.slug,
            display_name: identity.display_name,
            enabled: identity.enabled,
            hosts: identity.hosts,
            settings,
            services: identity.services,
            terms: identity.terms,
        };
        let errors = file.validate();
        if errors.is_empty() {
            Ok(file)
        } else {
            Err(TenantFileError::Invalid(errors))
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a tenant file always serialises")
    }

    /// Every rule a tenant definition must satisfy; an empty list means it is valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut v = Validator::default();
        let s = &self.settings;

        v.check(
            "slug",
            is_slug(&self.slug),
            "must be 1–63 characters of a–z, 0–9 and '-', not starting or ending with '-'",
        );
        v.text("display_name", &self.display_name, 1, 100);
        let mut seen_hosts = HashSet::new();
        for (i, host) in self.hosts.iter().enumerate() {
            let field = format!("hosts[{i}]");
            v.check(&field, is_hostname(host), "must be a lower-case host name");
            v.check(&field, seen_hosts.insert(host), "is listed twice");
        }
        v.text("contact", &s.contact, 1, 500);
        v.text("welcome", &s.welcome, 0, 2000);

        // MFA
        v.check(
            "mfa.methods",
            !s.mfa.methods.is_empty(),
            "must list at least one method",
        );
        let unique: HashSet<_> = s.mfa.methods.iter().collect();
        v.check(
            "mfa.methods",
            unique.len() == s.mfa.methods.len(),
            "lists a method twice",
        );

        // Password policy
        let p = &s.password;
        v.range("password.min_length", p.min_length, 4, 128);
        v.range("password.max_length", p.max_length, 4, 256);
        v.check(
            "password.max_length",
            p.max_length >= p.min_length,
            "must not be smaller than password.min_length",
        );
        v.check(
            "password.allowed_symbols",
            p.allowed_symbols.chars().all(|c| c.is_ascii_punctuation()),
            "may contain only ASCII symbols",
        );
        v.check(
            "password.allowed_symbols",
            no_repeats(&p.allowed_symbols),
            "lists a symbol twice",
        );
        v.range("password.history", p.history, 0, 24);
        let classes: HashSet<_> = p.required_classes.iter().collect();
        v.check(
            "password.required_classes",
            classes.len() == p.required_classes.len(),
            "lists a class twice",
        );
        v.check(
            "password.required_classes",
            !(classes.contains(&CharClass::Symbol) && p.allowed_symbols.is_empty()),
            "requires a symbol but password.allowed_symbols is empty",
        );
        v.check(
            "password.required_classes",
            classes.len() as u32 <= p.min_length,
            "requires more character classes than password.min_length allows",
        );

        // User ID policy
        let u = &s.user_id;
        v.range("user_id.min_length", u.min_length, 1, 64);
        v.range("user_id.max_length", u.max_length, 1, 64);
        v.check(
            "user_id.max_length",
            u.max_length >= u.min_length,
            "must not be smaller than user_id.min_length",
        );
        v.check(
            "user_id.allowed_symbols",
            u.allowed_symbols
                .chars()
                .all(|c| USER_ID_SYMBOLS.contains(c)),
            "may contain only the symbols - _ . @",
        );
        v.check(
            "user_id.allowed_symbols",
            no_repeats(&u.allowed_symbols),
            "lists a symbol twice",
        );

        // Lockout
        v.range("lockout.max_failures", s.lockout.max_failures, 1, 100);
        if s.lockout.mode == LockMode::Temporary {
            v.range(
                "lockout.duration_minutes",
                s.lockout.duration_minutes,
                1,
                10080,
            );
        }

        // First login: the guide's screens, each once, 生年月日 first.
        {
            use crate::tenant::FirstLoginStep as Step;
            let steps = &s.first_login.steps;
            let count = |step: Step| steps.iter().filter(|s| **s == step).count();
            let position = |step: Step| steps.iter().position(|s| *s == step);
            v.check(
                "first_login.steps",
                Step::ALL.iter().all(|s| count(*s) <= 1),
                "lists a step twice",
            );
            v.check(
                "first_login.steps",
                steps.first() == Some(&Step::BirthDate),
                "must start with birth_date",
            );
            v.check(
                "first_login.steps",
                [Step::Terms, Step::Password, Step::Email]
                    .iter()
                    .all(|s| count(*s) == 1),
                "must list birth_date, terms, password and email",
            );
            v.check(
                "first_login.steps",
                count(Step::Method) + count(Step::UserIdAndMethod) == 1,
                "must choose the method once: method or user_id+method",
            );
            v.check(
                "first_login.steps",
                count(Step::UserId) + count(Step::UserIdAndMethod) <= 1,
                "may ask for the user ID once: user_id or user_id+method",
            );
            v.check(
                "first_login.steps",
                position(Step::EmailLink)
                    .is_none_or(|link| position(Step::Email).is_some_and(|email| email < link)),
                "must confirm the e-mail address by link after the email step",
            );
        }

        // Retention
        v.range("retention.audit_days", s.retention.audit_days, 30, 3650);
        v.range("retention.mail_days", s.retention.mail_days, 1, 3650);

        // Sessions
        let se = &s.session;
        v.range(
            "session.idle_timeout_minutes",
            se.idle_timeout_minutes,
            1,
            1440,
        );
        v.range(
            "session.absolute_timeout_minutes",
            se.absolute_timeout_minutes,
            1,
            43200,
        );
        v.check(
            "session.absolute_timeout_minutes",
            se.absolute_timeout_minutes >= se.idle_timeout_minutes,
            "must not be smaller than session.idle_timeout_minutes",
        );
        v.range(
            "session.step_up_max_age_minutes",
            se.step_up_max_age_minutes,
            1,
            1440,
        );

        // One-time codes
        v.range("totp.digits", s.totp.digits, 6, 8);
        v.range("totp.period_seconds", s.totp.period_seconds, 15, 120);
        v.range("totp.skew_steps", s.totp.skew_steps, 0, 3);
        v.text("totp.issuer", &s.totp.issuer, 1, 60);
        v.check(
            "totp.issuer",
            !s.totp.issuer.contains(':'),
            "may not contain ':'",
        );
        let e = &s.email_otp;
        v.range("email_otp.code_length", e.code_length, 4, 10);
        v.range("email_otp.lifetime_minutes", e.lifetime_minutes, 1, 60);
        v.range(
            "email_otp.resend_cooldown_seconds",
            e.resend_cooldown_seconds,
            0,
            3600,
        );
        v.range("email_otp.max_attempts", e.max_attempts, 1, 20);

        // Links
        v.range(
            "links.reset_lifetime_minutes",
            s.links.reset_lifetime_minutes,
            1,
            1440,
        );
        v.range(
            "links.email_verification_lifetime_minutes",
            s.links.email_verification_lifetime_minutes,
            1,
            10080,
        );

        // Mail
        v.check(
            "mail.domain",
            is_hostname(&s.mail.domain),
            "must be a lower-case domain name",
        );
        v.text("mail.from_name", &s.mail.from_name, 1, 100);
        if let Some(url) = &s.mail.smtp_url {
            v.check(
                "mail.smtp_url",
                url.starts_with("smtp://") || url.starts_with("smtps://"),
                "must start with smtp:// or smtps://",
            );
        }
        if let Some(selector) = &s.mail.dkim_selector {
            v.check(
                "mail.dkim_selector",
                is_slug(selector),
                "must be a DNS label of a–z, 0–9 and '-'",
            );
        }

        // Theme
        v.check(
            "theme.primary_color",
            is_color(&s.theme.primary_color),
            "must be a colour written #rrggbb",
        );
        v.check(
            "theme.accent_color",
            is_color(&s.theme.accent_color),
            "must be a colour written #rrggbb",
        );
        v.check(
            "theme.logo",
            is_asset_path(&s.theme.logo),
            "must be a path among the theme's static files",
        );

        // Service icons
        let mut ids = HashSet::new();
        for (i, icon) in self.services.iter().enumerate() {
            let at = |f: &str| format!("services[{i}].{f}");
            v.check(
                &at("id"),
                is_slug(&icon.id),
                "must be 1–63 characters of a–z, 0–9 and '-'",
            );
            v.check(
                &at("id"),
                ids.insert(&icon.id),
                "is used by another service",
            );
            v.text(&at("title"), &icon.title, 1, 50);
            v.check(
                &at("image"),
                is_asset_path(&icon.image) || icon.image.starts_with("https://"),
                "must be a path among the theme's static files or an https:// URL",
            );
            v.check(
                &at("url"),
                is_web_url(&icon.url),
                "must be an http:// or https:// URL",
            );
        }

        // Terms
        let mut versions = HashSet::new();
        for (i, t) in self.terms.versions.iter().enumerate() {
            let at = |f: &str| format!("terms.versions[{i}].{f}");
            v.text(&at("version"), &t.version, 1, 40);
            v.check(
                &at("version"),
                versions.insert(&t.version),
                "is used by another version",
            );
            v.check(
                &at("published_at"),
                is_date(&t.published_at),
                "must be a date written YYYY-MM-DD",
            );
            v.text(&at("title"), &t.title, 1, 100);
            v.check(&at("body"), !t.body.trim().is_empty(), "must not be empty");
            v.check(
                &at("body"),
                !has_control(&t.body, true),
                "must not contain control characters",
            );
        }
        if !self.terms.current.is_empty() {
            v.check(
                "terms.current",
                versions.contains(&self.terms.current),
                "must name one of terms.versions",
            );
        } else {
            v.check(
                "terms.current",
                self.terms.versions.is_empty(),
                "must name the version in force",
            );
        }

        v.errors
    }
}

/// Deserialises a table, naming the path of a missing or wrong value
/// (`mfa.methods[1]: unknown variant …`).
fn typed<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, TenantFileError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let field = e.path().to_string();
        TenantFileError::Invalid(vec![FieldError {
            field: if field == "." {
                "(top level)".into()
            } else {
                field
            },
            message: e.into_inner().to_string().trim().to_owned(),
            kind: FieldErrorKind::Rule,
        }])
    })
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn check(&mut self, field: &str, ok: bool, message: &str) {
        self.check_kind(field, ok, message, FieldErrorKind::Rule);
    }

    fn check_kind(&mut self, field: &str, ok: bool, message: &str, kind: FieldErrorKind) {
        if !ok {
            self.errors.push(FieldError {
                field: field.to_owned(),
                message: message.to_owned(),
                kind,
            });
        }
    }

    fn range(&mut self, field: &str, value: u32, min: u32, max: u32) {
        self.check_kind(
            field,
            (min..=max).contains(&value),
            &format!("must be between {min} and {max} (is {value})"),
            FieldErrorKind::Range { min, max },
        );
    }

    fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let len = value.chars().count();
        if len < min {
            self.check_kind(field, false, "must not be empty", FieldErrorKind::Empty);
        } else if len > max {
            self.check_kind(
                field,
                false,
                &format!("must be at most {max} characters (is {len})"),
                FieldErrorKind::TooLong { max },
            );
        }
        self.check_kind(
            field,
            !has_control(value, false),
            "must not contain control characters",
            FieldErrorKind::Control,
        );
    }
}

fn has_control(value: &str, allow_newlines: bool) -> bool {
    value
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\r' || c == '\t')))
}

fn no_repeats(s: &str) -> bool {
    let mut seen = HashSet::new();
    s.chars().all(|c| seen.insert(c))
}

pub(crate) fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A relative path of plain segments: no `..`, no absolute path, no odd characters.
pub(crate) fn is_asset_path(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

fn is_web_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty()
                && s.len() <= 2000
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

fn is_date(s: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TermsVersion;

    const SEEDS: [&str; 2] = [
        include_str!("../../../tenants/daiwakenpo.toml"),
        include_str!("../../../tenants/kanekakenpo.toml"),
    ];

    fn valid() -> TenantFile {
        TenantFile::parse(SEEDS[0]).unwrap()
    }

    fn fields(file: &TenantFile) -> Vec<String> {
        file.validate().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn seed_files_are_valid_and_round_trip() {
        for text in SEEDS {
            let file = TenantFile::parse(text).unwrap();
            let again = TenantFile::parse(&file.to_toml()).unwrap();
            assert_eq!(file, again);
            assert_eq!(file.to_toml(), again.to_toml());
        }
    }

    #[test]
    fn seed_tenants_have_the_methods_of_their_manuals() {
        use crate::tenant::MfaMethod::*;
        let daiwa = TenantFile::parse(SEEDS[0]).unwrap();
        let kaneka = TenantFile::parse(SEEDS[1]).unwrap();
        assert_eq!(daiwa.settings.mfa.methods, vec![Passkey, Totp]);
        assert_eq!(kaneka.settings.mfa.methods, vec![Passkey, Totp, EmailOtp]);
        use crate::tenant::{FactorSetup, FirstLoginStep as Step};
        // daiwakenpo manual §2-1 ⑤–⑨, kanekakenpo 初回ログインのながれ 【3】–【9】.
        assert_eq!(
            daiwa.settings.first_login.steps,
            [
                Step::BirthDate,
                Step::Terms,
                Step::UserIdAndMethod,
                Step::Password,
                Step::Email
            ]
        );
        assert_eq!(
            kaneka.settings.first_login.steps,
            [
                Step::BirthDate,
                Step::Terms,
                Step::Email,
                Step::EmailLink,
                Step::Method,
                Step::Password
            ]
        );
        for t in [&daiwa, &kaneka] {
            assert_eq!(t.settings.first_login.factor_setup, FactorSetup::NextLogin);
        }
        assert!(daiwa.settings.mfa.reset_with_password);
    }

    #[test]
    fn min_length_above_max_is_refused() {
        let mut f = valid();
        f.settings.password.min_length = 20;
        f.settings.password.max_length = 10;
        assert_eq!(fields(&f), ["password.max_length"]);
        let mut f = valid();
        f.settings.user_id.min_length = 14;
        assert_eq!(fields(&f), ["user_id.max_length"]);
    }

    #[test]
    fn empty_or_repeated_method_list_is_refused() {
        let mut f = valid();
        f.settings.mfa.methods.clear();
        assert_eq!(fields(&f), ["mfa.methods"]);
        let mut f = valid();
        f.settings.mfa.methods = vec![MfaMethod::Totp, MfaMethod::Totp];
        assert_eq!(fields(&f), ["mfa.methods"]);
    }

    use crate::tenant::MfaMethod;

    #[test]
    fn unknown_method_is_refused_naming_it() {
        let text = SEEDS[0].replace(
            r#"methods = ["passkey", "totp"]"#,
            r#"methods = ["passkey", "sms"]"#,
        );
        assert_ne!(
            text, SEEDS[0],
            "the seed file lists its methods on one line"
        );
        let err = TenantFile::parse(&text).unwrap_err().to_string();
        assert!(err.contains("sms") && err.contains("methods"), "{err}");
    }

    #[test]
    fn unknown_section_or_key_is_refused() {
        let err = TenantFile::parse(&format!("{}\n[pasword]\nmin_length = 3\n", SEEDS[0]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pasword: unknown field"), "{err}");
        let text = SEEDS[0].replace("[password]", "[password]\nminimum = 3");
        let err = TenantFile::parse(&text).unwrap_err().to_string();
        assert!(err.contains("minimum"), "{err}");
    }

    #[test]
    fn wrong_types_are_refused() {
        let text = SEEDS[0].replace("min_length = 8", "min_length = \"eight\"");
        assert!(TenantFile::parse(&text).is_err());
    }

    #[test]
    fn every_broken_rule_is_listed() {
        let mut f = valid();
        f.slug = "Bad Slug".into();
        f.hosts = vec!["Upper.Example".into()];
        f.settings.theme.primary_color = "blue".into();
        f.settings.lockout.max_failures = 0;
        f.settings.totp.digits = 4;
        f.settings.mail.domain = String::new();
        let got = fields(&f);
        for field in [
            "slug",
            "hosts[0]",
            "theme.primary_color",
            "lockout.max_failures",
            "totp.digits",
            "mail.domain",
        ] {
            assert!(
                got.contains(&field.to_string()),
                "{field} missing in {got:?}"
            );
        }
    }

    #[test]
    fn password_symbols_and_classes_are_checked() {
        let mut f = valid();
        f.settings.password.allowed_symbols = "!!".into();
        assert_eq!(fields(&f), ["password.allowed_symbols"]);
        let mut f = valid();
        f.settings.password.allowed_symbols = "あ".into();
        assert_eq!(fields(&f), ["password.allowed_symbols"]);
        let mut f = valid();
        f.settings.password.allowed_symbols.clear();
        f.settings.password.required_classes = vec![CharClass::Symbol];
        assert_eq!(fields(&f), ["password.required_classes"]);
        let mut f = valid();
        f.settings.user_id.allowed_symbols = "-#".into();
        assert_eq!(fields(&f), ["user_id.allowed_symbols"]);
    }

    #[test]
    fn sessions_and_timeouts_are_checked() {
        let mut f = valid();
        f.settings.session.idle_timeout_minutes = 60;
        f.settings.session.absolute_timeout_minutes = 30;
        assert_eq!(fields(&f), ["session.absolute_timeout_minutes"]);
        let mut f = valid();
        f.settings.links.reset_lifetime_minutes = 0;
        assert_eq!(fields(&f), ["links.reset_lifetime_minutes"]);
    }

    #[test]
    fn service_icons_are_checked() {
        let mut f = valid();
        let mut icon = f.services[0].clone();
        icon.url = "javascript:alert(1)".into();
        icon.image = "../../etc/passwd".into();
        f.services.push(icon);
        let got = fields(&f);
        let n = f.services.len() - 1;
        assert_eq!(
            got,
            [
                format!("services[{n}].id"),
                format!("services[{n}].image"),
                format!("services[{n}].url")
            ]
        );
    }

    #[test]
    fn terms_current_must_exist_and_dates_must_parse() {
        let mut f = valid();
        f.terms.current = "9999".into();
        assert_eq!(fields(&f), ["terms.current"]);
        let mut f = valid();
        f.terms.versions.push(TermsVersion {
            version: "v-next".into(),
            published_at: "2025-13-01".into(),
            title: "利用規約".into(),
            body: "本文".into(),
        });
        assert_eq!(fields(&f), ["terms.versions[1].published_at"]);
    }

    #[test]
    fn control_characters_are_refused_in_names() {
        let mut f = valid();
        f.display_name = "健保\u{0}組合".into();
        assert_eq!(fields(&f), ["display_name"]);
    }

    #[test]
    fn asset_paths() {
        assert!(is_asset_path("logo.svg"));
        assert!(is_asset_path("services/kenshin.svg"));
        assert!(!is_asset_path("../logo.svg"));
        assert!(!is_asset_path("/etc/passwd"));
        assert!(!is_asset_path("a//b"));
        assert!(!is_asset_path("a\\b"));
    }
}
