//! What a society can set (SPEC §2). Every section has the defaults of the seed manuals, so a
//! tenant file may leave out what it does not change.

use serde::{Deserialize, Serialize};

/// The policy and look of one tenant, stored as one JSON document in the database and
/// written as top-level sections of the tenant file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// Shown wherever a member is told to contact the society (FAQ Q1, Q5, Q6).
    pub contact: String,
    /// Welcome text on the public top page.
    pub welcome: String,
    pub mfa: MfaPolicy,
    pub password: PasswordPolicy,
    pub user_id: UserIdPolicy,
    pub lockout: LockoutPolicy,
    pub session: SessionPolicy,
    pub totp: TotpPolicy,
    pub email_otp: EmailOtpPolicy,
    pub first_login: FirstLoginPolicy,
    pub links: LinkPolicy,
    pub mail: MailSettings,
    pub theme: ThemeSettings,
    pub retention: RetentionPolicy,
}

/// How long the society's records are kept before the sweeper removes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Audit events older than this many days are removed.
    pub audit_days: u32,
    /// Delivered (or given up) mail rows older than this many days are removed.
    pub mail_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            audit_days: 730,
            mail_days: 90,
        }
    }
}

impl TenantSettings {
    /// The names of the tenant file's top-level keys that belong to the settings.
    pub const KEYS: [&'static str; 14] = [
        "contact",
        "welcome",
        "mfa",
        "password",
        "user_id",
        "lockout",
        "session",
        "totp",
        "email_otp",
        "first_login",
        "links",
        "mail",
        "theme",
        "retention",
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    Passkey,
    Totp,
    EmailOtp,
}

impl MfaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Passkey => "passkey",
            MfaMethod::Totp => "totp",
            MfaMethod::EmailOtp => "email_otp",
        }
    }
}

/// Which kind of authenticator may hold a passkey. `any` lets phones (hybrid/QR), platform
/// authenticators and security keys all work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasskeyAttachment {
    #[default]
    Any,
    Platform,
    CrossPlatform,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfaPolicy {
    pub methods: Vec<MfaMethod>,
    pub required: bool,
    /// A password reset also removes TOTP devices, so the member registers one again
    /// (daiwakenpo manual §3-3).
    pub reset_with_password: bool,
    pub passkey_attachment: PasskeyAttachment,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        Self {
            methods: vec![MfaMethod::Passkey, MfaMethod::Totp],
            required: true,
            reset_with_password: false,
            passkey_attachment: PasskeyAttachment::Any,
        }
    }
}

/// Character classes a password policy may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CharClass {
    Lower,
    Upper,
    Digit,
    Symbol,
}

/// The symbols the seed manuals allow in passwords.
pub const DEFAULT_PASSWORD_SYMBOLS: &str = "!\"#$%&'()=~|`{+*}<>?_-^\\@[;:],./";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    pub min_length: u32,
    pub max_length: u32,
    /// Besides ASCII letters and digits, these symbols are allowed.
    pub allowed_symbols: String,
    pub differ_from_user_id: bool,
    pub differ_from_current: bool,
    /// How many earlier passwords may not be used again (0: none).
    pub history: u32,
    pub required_classes: Vec<CharClass>,
    /// Refuse passwords from the shipped list of the most common passwords.
    pub reject_common: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 64,
            allowed_symbols: DEFAULT_PASSWORD_SYMBOLS.to_owned(),
            differ_from_user_id: true,
            differ_from_current: true,
            history: 0,
            required_classes: Vec::new(),
            reject_common: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserIdPolicy {
    pub min_length: u32,
    pub max_length: u32,
    /// Besides lower-case ASCII letters and digits, these symbols are allowed.
    pub allowed_symbols: String,
}

/// The symbols a user ID may ever contain (SPEC §2).
pub const USER_ID_SYMBOLS: &str = "-_.@";

impl Default for UserIdPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 13,
            allowed_symbols: USER_ID_SYMBOLS.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// The lock lifts by itself after `duration_minutes`.
    #[default]
    Temporary,
    /// Only a society admin can unlock.
    UntilUnlocked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub mode: LockMode,
    pub duration_minutes: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            mode: LockMode::Temporary,
            duration_minutes: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionPolicy {
    pub idle_timeout_minutes: u32,
    pub absolute_timeout_minutes: u32,
    /// An authentication older than this is asked again before a sensitive change
    /// (「続行する際には再度認証してください。」).
    pub step_up_max_age_minutes: u32,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout_minutes: 30,
            absolute_timeout_minutes: 720,
            step_up_max_age_minutes: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TotpPolicy {
    pub digits: u32,
    pub period_seconds: u32,
    /// Accepted time steps before and after the current one.
    pub skew_steps: u32,
    /// The issuer label the authenticator app shows.
    pub issuer: String,
}

impl Default for TotpPolicy {
    fn default() -> Self {
        Self {
            digits: 6,
            period_seconds: 30,
            skew_steps: 1,
            issuer: "Portal".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailOtpPolicy {
    pub code_length: u32,
    pub lifetime_minutes: u32,
    pub resend_cooldown_seconds: u32,
    pub max_attempts: u32,
}

impl Default for EmailOtpPolicy {
    fn default() -> Self {
        Self {
            code_length: 6,
            lifetime_minutes: 10,
            resend_cooldown_seconds: 60,
            max_attempts: 5,
        }
    }
}

/// One screen of the first login, in the order a society's printed guide shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FirstLoginStep {
    /// 「生年月日」: the member proves who they are before anything else.
    #[serde(rename = "birth_date")]
    BirthDate,
    /// 利用規約 「同意する」.
    #[serde(rename = "terms")]
    Terms,
    /// A user ID of the member's own (daiwakenpo ⑦ without the method).
    #[serde(rename = "user_id")]
    UserId,
    /// A user ID of the member's own and the method, on one screen (daiwakenpo ⑦).
    #[serde(rename = "user_id+method")]
    UserIdAndMethod,
    /// The authentication method, on its own screen (kanekakenpo 【8】).
    #[serde(rename = "method")]
    Method,
    /// A new password in place of the temporary one.
    #[serde(rename = "password")]
    Password,
    /// The e-mail address is reviewed (and may be changed).
    #[serde(rename = "email")]
    Email,
    /// The e-mail address is confirmed by a mailed link (kanekakenpo 【6】【7】).
    #[serde(rename = "email_link")]
    EmailLink,
}

impl FirstLoginStep {
    pub const ALL: [FirstLoginStep; 8] = [
        FirstLoginStep::BirthDate,
        FirstLoginStep::Terms,
        FirstLoginStep::UserId,
        FirstLoginStep::UserIdAndMethod,
        FirstLoginStep::Method,
        FirstLoginStep::Password,
        FirstLoginStep::Email,
        FirstLoginStep::EmailLink,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FirstLoginStep::BirthDate => "birth_date",
            FirstLoginStep::Terms => "terms",
            FirstLoginStep::UserId => "user_id",
            FirstLoginStep::UserIdAndMethod => "user_id+method",
            FirstLoginStep::Method => "method",
            FirstLoginStep::Password => "password",
            FirstLoginStep::Email => "email",
            FirstLoginStep::EmailLink => "email_link",
        }
    }

    /// The step names, as the settings form and the API write them.
    pub const NAMES: [&'static str; 8] = [
        "birth_date",
        "terms",
        "user_id",
        "user_id+method",
        "method",
        "password",
        "email",
        "email_link",
    ];
}

/// When the method chosen at first login is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorSetup {
    /// At the end of the first login, before the first session.
    #[default]
    Now,
    /// At the next sign-in: the first login ends with the top page, and every later
    /// sign-in sets the factor up before anything else is reachable (both guides).
    NextLogin,
}

/// The screens of the first login and when the factor is set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FirstLoginFile")]
pub struct FirstLoginPolicy {
    pub steps: Vec<FirstLoginStep>,
    pub factor_setup: FactorSetup,
}

impl FirstLoginPolicy {
    /// The order every tenant had before the order became a setting: 生年月日, 利用規約,
    /// user ID and method on one screen, password, e-mail (and its link where asked).
    pub fn classic(confirm_email_by_link: bool) -> Self {
        let mut steps = vec![
            FirstLoginStep::BirthDate,
            FirstLoginStep::Terms,
            FirstLoginStep::UserIdAndMethod,
            FirstLoginStep::Password,
            FirstLoginStep::Email,
        ];
        if confirm_email_by_link {
            steps.push(FirstLoginStep::EmailLink);
        }
        Self {
            steps,
            factor_setup: FactorSetup::Now,
        }
    }

    pub fn has(&self, step: FirstLoginStep) -> bool {
        self.steps.contains(&step)
    }

    /// The method is chosen on a screen of its own or with the user ID.
    pub fn method_with_user_id(&self) -> bool {
        self.has(FirstLoginStep::UserIdAndMethod)
    }
}

impl Default for FirstLoginPolicy {
    fn default() -> Self {
        Self::classic(false)
    }
}

/// `[first_login]` as written. Definitions stored before the order was a setting carry
/// only `confirm_email_by_link`; they read as the classic order.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FirstLoginFile {
    steps: Option<Vec<FirstLoginStep>>,
    factor_setup: FactorSetup,
    confirm_email_by_link: Option<bool>,
}

impl Default for FirstLoginFile {
    fn default() -> Self {
        Self {
            steps: None,
            factor_setup: FactorSetup::Now,
            confirm_email_by_link: None,
        }
    }
}

impl From<FirstLoginFile> for FirstLoginPolicy {
    fn from(f: FirstLoginFile) -> Self {
        match f.steps {
            Some(steps) => Self {
                steps,
                factor_setup: f.factor_setup,
            },
            None => Self {
                factor_setup: f.factor_setup,
                ..Self::classic(f.confirm_email_by_link.unwrap_or(false))
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkPolicy {
    pub reset_lifetime_minutes: u32,
    pub email_verification_lifetime_minutes: u32,
}

impl Default for LinkPolicy {
    fn default() -> Self {
        Self {
            reset_lifetime_minutes: 5,
            email_verification_lifetime_minutes: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// Mail is sent from `no-reply@<domain>`.
    pub domain: String,
    pub from_name: String,
    /// Overrides the process-wide SMTP server for this tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// Sign with the key `<dkim dir>/<domain>.key` under this DNS selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dkim_selector: Option<String>,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            domain: "localhost".to_owned(),
            from_name: String::new(),
            smtp_url: None,
            dkim_selector: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThemeSettings {
    /// `#rrggbb`
    pub primary_color: String,
    /// `#rrggbb`
    pub accent_color: String,
    /// Path of the logo among the theme's static assets.
    pub logo: String,
}

impl Default for ThemeSettings {
    fn default() -> Self {
        Self {
            primary_color: "#1f5fa8".to_owned(),
            accent_color: "#f0a020".to_owned(),
            logo: "logo.svg".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_names_of_the_form_are_the_steps_as_written() {
        let written: Vec<&str> = FirstLoginStep::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(written, FirstLoginStep::NAMES);
        for step in FirstLoginStep::ALL {
            let json = serde_json::to_string(&step).unwrap();
            assert_eq!(json, format!("\"{}\"", step.as_str()));
        }
    }

    #[test]
    fn definitions_stored_before_the_order_read_as_the_classic_order() {
        let old: FirstLoginPolicy =
            serde_json::from_str(r#"{"confirm_email_by_link": true}"#).unwrap();
        assert_eq!(old, FirstLoginPolicy::classic(true));
        assert_eq!(old.steps.last(), Some(&FirstLoginStep::EmailLink));
        let new: FirstLoginPolicy = serde_json::from_str(
            r#"{"steps": ["birth_date", "terms", "user_id+method", "password", "email"], "factor_setup": "next_login"}"#,
        )
        .unwrap();
        assert_eq!(new.factor_setup, FactorSetup::NextLogin);
        assert!(new.method_with_user_id());
        // What is written reads back the same, without the old key.
        let written = serde_json::to_string(&new).unwrap();
        assert!(!written.contains("confirm_email_by_link"));
        assert_eq!(
            serde_json::from_str::<FirstLoginPolicy>(&written).unwrap(),
            new
        );
        assert!(serde_json::from_str::<FirstLoginPolicy>(r#"{"steps": ["nope"]}"#).is_err());
        assert!(serde_json::from_str::<FirstLoginPolicy>(r#"{"other": 1}"#).is_err());
    }
}
