//! Password and user ID policies (SPEC §2; manual §2-1 ⑦⑧, FAQ Q7).
//!
//! - A user ID is 8–13 characters of `a-z`, `0-9` and the tenant's symbols (a subset of
//!   `-_.@`). Upper case letters may be typed and are lower-cased
//!   (「ユーザ IDの英字は全て小文字として扱います」).
//! - A password is 8–64 characters of ASCII letters, digits and the tenant's symbols
//!   (default `!"#$%&'()=~|`{+*}<>?_-^\@[;:],./`), differs from the user ID, optionally has
//!   required character classes and is not one of the most common passwords.
//!
//! Lengths are counted in characters (Unicode scalar values), not bytes. Every check reports
//! all broken rules at once, in a stable order, so a form can show every message together.
//!
//! The list of common passwords (`common-passwords.txt`, one lower-case password per line)
//! was compiled for this project from the passwords that public breach-frequency rankings
//! keep naming, keyboard walks, repeated digits, years and common Japanese romaji words, plus
//! the usual suffixes (`1`, `123`, `!`, years) people add to reach a length or digit rule.
//!
//! All member-facing Japanese texts of this module are in the [`texts`] block below.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use crate::tenant::settings::{CharClass, PasswordPolicy, UserIdPolicy, USER_ID_SYMBOLS};

// ==========================================================================================
// UI texts (Japanese). Every member-facing word of this module is here and nowhere else.
// Placeholders: `{n}` a number of characters, `{chars}` a list of characters built with
// CHAR_OPEN/CHAR_CLOSE, `{class}` one of the CLASS_* names.
// ==========================================================================================
pub mod texts {
    pub const USER_ID_EMPTY: &str = "ユーザ IDを入力してください。";
    pub const USER_ID_TOO_SHORT: &str = "ユーザ IDは{n}文字以上で入力してください。";
    pub const USER_ID_TOO_LONG: &str = "ユーザ IDは{n}文字以内で入力してください。";
    pub const USER_ID_FORBIDDEN: &str = "ユーザ IDに使用できない文字が含まれています：{chars}";

    pub const PASSWORD_EMPTY: &str = "パスワードを入力してください。";
    pub const PASSWORD_TOO_SHORT: &str = "パスワードは{n}文字以上で入力してください。";
    pub const PASSWORD_TOO_LONG: &str = "パスワードは{n}文字以内で入力してください。";
    pub const PASSWORD_FORBIDDEN: &str = "パスワードに使用できない文字が含まれています：{chars}";
    pub const PASSWORD_SAME_AS_USER_ID: &str =
        "パスワードにユーザ IDと同じ文字列は使用できません。";
    pub const PASSWORD_MISSING_CLASS: &str = "パスワードには{class}を1文字以上含めてください。";
    pub const PASSWORD_COMMON: &str =
        "よく使われているパスワードは使用できません。別のパスワードを入力してください。";
    pub const PASSWORD_SAME_AS_CURRENT: &str =
        "現在のパスワードと同じパスワードには変更できません。";
    pub const PASSWORD_REUSED: &str = "以前に使用したパスワードは使用できません。";

    pub const CLASS_LOWER: &str = "英小文字";
    pub const CLASS_UPPER: &str = "英大文字";
    pub const CLASS_DIGIT: &str = "数字";
    pub const CLASS_SYMBOL: &str = "記号";

    /// Brackets around each character in a list of forbidden characters: 「 」「あ」.
    pub const CHAR_OPEN: &str = "「";
    pub const CHAR_CLOSE: &str = "」";

    /// The last entries of the 「利用不可文字一覧を見る」 list.
    pub const FORBIDDEN_FULL_WIDTH: &str = "全角文字（ひらがな・カタカナ・漢字・全角英数字など）";
    pub const FORBIDDEN_SPACE: &str = "空白";
}

fn fill(template: &str, placeholder: &str, value: &str) -> String {
    template.replace(placeholder, value)
}

// ------------------------------------------------------------------------------------------
// User IDs
// ------------------------------------------------------------------------------------------

/// A user ID that satisfied the tenant's policy when it was set: lower case, allowed
/// characters only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserId(String);

/// A rule of the user ID policy that an input breaks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserIdRule {
    Empty,
    TooShort {
        min: u32,
    },
    TooLong {
        max: u32,
    },
    /// The distinct offending characters, in order of first appearance.
    ForbiddenCharacters {
        chars: String,
    },
}

impl UserId {
    /// Checks `input` against `policy`. ASCII upper case letters are lower-cased first; the
    /// input is not trimmed (a space is a forbidden character). On failure all broken rules
    /// are returned in the order `TooShort`/`TooLong`, `ForbiddenCharacters`, or `Empty` alone.
    pub fn parse(policy: &UserIdPolicy, input: &str) -> Result<UserId, Vec<UserIdRule>> {
        if input.is_empty() {
            return Err(vec![UserIdRule::Empty]);
        }
        let lowered = input.to_ascii_lowercase();
        let mut broken = Vec::new();
        let length = lowered.chars().count();
        if length < policy.min_length as usize {
            broken.push(UserIdRule::TooShort {
                min: policy.min_length,
            });
        }
        if length > policy.max_length as usize {
            broken.push(UserIdRule::TooLong {
                max: policy.max_length,
            });
        }
        let forbidden = distinct(
            lowered
                .chars()
                .filter(|&c| !user_id_char_allowed(policy, c)),
        );
        if !forbidden.is_empty() {
            broken.push(UserIdRule::ForbiddenCharacters { chars: forbidden });
        }
        if broken.is_empty() {
            Ok(UserId(lowered))
        } else {
            Err(broken)
        }
    }

    /// A user ID read back from the database, where only parsed IDs are stored.
    pub fn from_db(value: String) -> UserId {
        UserId(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Whether `c` (already lower-cased) may appear in a user ID. Symbols must be both in the
/// policy and in [`USER_ID_SYMBOLS`], the symbols a user ID may ever contain.
fn user_id_char_allowed(policy: &UserIdPolicy, c: char) -> bool {
    c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || (USER_ID_SYMBOLS.contains(c) && policy.allowed_symbols.contains(c))
}

impl UserIdRule {
    /// The member-facing Japanese message.
    pub fn message(&self) -> String {
        match self {
            UserIdRule::Empty => texts::USER_ID_EMPTY.to_owned(),
            UserIdRule::TooShort { min } => fill(texts::USER_ID_TOO_SHORT, "{n}", &min.to_string()),
            UserIdRule::TooLong { max } => fill(texts::USER_ID_TOO_LONG, "{n}", &max.to_string()),
            UserIdRule::ForbiddenCharacters { chars } => {
                fill(texts::USER_ID_FORBIDDEN, "{chars}", &char_list(chars))
            }
        }
    }
}

impl fmt::Display for UserIdRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// What the 「利用不可文字一覧を見る」 page lists: every printable ASCII character a user ID
/// may not contain (one entry each, in code order; upper case letters are absent because
/// they are accepted and lower-cased), then full-width characters, then the space.
pub fn forbidden_user_id_characters(policy: &UserIdPolicy) -> Vec<String> {
    let mut list: Vec<String> = ('!'..='~')
        .filter(|&c| !user_id_char_allowed(policy, c.to_ascii_lowercase()))
        .map(String::from)
        .collect();
    list.push(texts::FORBIDDEN_FULL_WIDTH.to_owned());
    list.push(texts::FORBIDDEN_SPACE.to_owned());
    list
}

// ------------------------------------------------------------------------------------------
// Passwords
// ------------------------------------------------------------------------------------------

/// A rule of the password policy that a new password breaks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PasswordRule {
    Empty,
    TooShort {
        min: u32,
    },
    TooLong {
        max: u32,
    },
    /// The distinct offending characters, in order of first appearance.
    ForbiddenCharacters {
        chars: String,
    },
    SameAsUserId,
    MissingClass(CharClass),
    Common,
    /// Equal to the current password; found by the caller, which holds the hash.
    SameAsCurrent,
    /// One of the last `history` passwords; found by the caller, which holds the hashes.
    Reused,
}

/// The order in which missing classes are reported, whatever the order in the policy.
const CLASS_ORDER: [CharClass; 4] = [
    CharClass::Lower,
    CharClass::Upper,
    CharClass::Digit,
    CharClass::Symbol,
];

/// Checks a new password against everything `policy` says except `differ_from_current` and
/// `history`, which need the stored hashes. `user_id` is the member's (possibly new) user
/// ID; the password may not equal it ignoring ASCII case.
///
/// On failure all broken rules are returned in this order: `TooShort`, `TooLong`,
/// `ForbiddenCharacters`, `SameAsUserId`, `MissingClass` (lower, upper, digit, symbol),
/// `Common`; an empty password gives `Empty` alone.
pub fn check_password(
    policy: &PasswordPolicy,
    password: &str,
    user_id: Option<&str>,
) -> Result<(), Vec<PasswordRule>> {
    if password.is_empty() {
        return Err(vec![PasswordRule::Empty]);
    }
    let mut broken = Vec::new();
    let length = password.chars().count();
    if length < policy.min_length as usize {
        broken.push(PasswordRule::TooShort {
            min: policy.min_length,
        });
    }
    if length > policy.max_length as usize {
        broken.push(PasswordRule::TooLong {
            max: policy.max_length,
        });
    }
    let forbidden = distinct(
        password
            .chars()
            .filter(|&c| !password_char_allowed(policy, c)),
    );
    if !forbidden.is_empty() {
        broken.push(PasswordRule::ForbiddenCharacters { chars: forbidden });
    }
    if policy.differ_from_user_id {
        if let Some(user_id) = user_id {
            if password.eq_ignore_ascii_case(user_id) {
                broken.push(PasswordRule::SameAsUserId);
            }
        }
    }
    for class in CLASS_ORDER {
        if policy.required_classes.contains(&class)
            && !password.chars().any(|c| in_class(policy, class, c))
        {
            broken.push(PasswordRule::MissingClass(class));
        }
    }
    if policy.reject_common && is_common_password(password) {
        broken.push(PasswordRule::Common);
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken)
    }
}

/// The symbols a password may contain besides ASCII letters and digits, to show on forms.
pub fn allowed_password_symbols(policy: &PasswordPolicy) -> &str {
    &policy.allowed_symbols
}

fn password_char_allowed(policy: &PasswordPolicy, c: char) -> bool {
    c.is_ascii_alphanumeric() || policy.allowed_symbols.contains(c)
}

fn in_class(policy: &PasswordPolicy, class: CharClass, c: char) -> bool {
    match class {
        CharClass::Lower => c.is_ascii_lowercase(),
        CharClass::Upper => c.is_ascii_uppercase(),
        CharClass::Digit => c.is_ascii_digit(),
        CharClass::Symbol => !c.is_ascii_alphanumeric() && policy.allowed_symbols.contains(c),
    }
}

impl PasswordRule {
    /// The member-facing Japanese message.
    pub fn message(&self) -> String {
        match self {
            PasswordRule::Empty => texts::PASSWORD_EMPTY.to_owned(),
            PasswordRule::TooShort { min } => {
                fill(texts::PASSWORD_TOO_SHORT, "{n}", &min.to_string())
            }
            PasswordRule::TooLong { max } => {
                fill(texts::PASSWORD_TOO_LONG, "{n}", &max.to_string())
            }
            PasswordRule::ForbiddenCharacters { chars } => {
                fill(texts::PASSWORD_FORBIDDEN, "{chars}", &char_list(chars))
            }
            PasswordRule::SameAsUserId => texts::PASSWORD_SAME_AS_USER_ID.to_owned(),
            PasswordRule::MissingClass(class) => {
                fill(texts::PASSWORD_MISSING_CLASS, "{class}", class_name(*class))
            }
            PasswordRule::Common => texts::PASSWORD_COMMON.to_owned(),
            PasswordRule::SameAsCurrent => texts::PASSWORD_SAME_AS_CURRENT.to_owned(),
            PasswordRule::Reused => texts::PASSWORD_REUSED.to_owned(),
        }
    }
}

impl fmt::Display for PasswordRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

fn class_name(class: CharClass) -> &'static str {
    match class {
        CharClass::Lower => texts::CLASS_LOWER,
        CharClass::Upper => texts::CLASS_UPPER,
        CharClass::Digit => texts::CLASS_DIGIT,
        CharClass::Symbol => texts::CLASS_SYMBOL,
    }
}

// ------------------------------------------------------------------------------------------
// The list of common passwords
// ------------------------------------------------------------------------------------------

const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// Whether the password, ignoring ASCII case, is in the shipped list of common passwords.
pub fn is_common_password(password: &str) -> bool {
    common_passwords().contains(password.to_ascii_lowercase().as_str())
}

/// How many passwords the shipped list holds.
pub fn common_password_count() -> usize {
    common_passwords().len()
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// The distinct characters of `chars`, in order of first appearance.
fn distinct(chars: impl Iterator<Item = char>) -> String {
    let mut out = String::new();
    for c in chars {
        if !out.contains(c) {
            out.push(c);
        }
    }
    out
}

/// 「a」「b」…, with invisible characters (control, format, non-ASCII spaces) as 「U+XXXX」 so
/// the member can see what was pasted.
fn char_list(chars: &str) -> String {
    let mut out = String::new();
    for c in chars.chars() {
        out.push_str(texts::CHAR_OPEN);
        if is_invisible(c) {
            out.push_str(&format!("U+{:04X}", c as u32));
        } else {
            out.push(c);
        }
        out.push_str(texts::CHAR_CLOSE);
    }
    out
}

fn is_invisible(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// A birth date as members and clerks type it: `YYYY-MM-DD` or `YYYY/M/D`, within 1900
/// and today, normalised to `YYYY-MM-DD`. The error is a locale key: `birth_date_format`
/// or `birth_date_range`.
pub fn parse_birth_date(input: &str) -> Result<String, &'static str> {
    let input = input.trim();
    let parts: Vec<&str> = input.split(['-', '/']).collect();
    let [y, m, d] = parts.as_slice() else {
        return Err("birth_date_format");
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else {
        return Err("birth_date_format");
    };
    let month = time::Month::try_from(m).map_err(|_| "birth_date_format")?;
    let date = time::Date::from_calendar_date(y, month, d).map_err(|_| "birth_date_format")?;
    if date.year() < 1900 || date > time::OffsetDateTime::now_utc().date() {
        return Err("birth_date_range");
    }
    Ok(format!("{:04}-{:02}-{:02}", date.year(), m, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::settings::DEFAULT_PASSWORD_SYMBOLS;
    use proptest::prelude::*;

    const ALL_CLASSES: [CharClass; 4] = CLASS_ORDER;

    fn uid(input: &str) -> Result<UserId, Vec<UserIdRule>> {
        UserId::parse(&UserIdPolicy::default(), input)
    }

    fn pw(password: &str) -> Result<(), Vec<PasswordRule>> {
        check_password(&PasswordPolicy::default(), password, None)
    }

    fn forbidden(chars: &str) -> PasswordRule {
        PasswordRule::ForbiddenCharacters {
            chars: chars.to_owned(),
        }
    }

    // ---- user IDs -----------------------------------------------------------------------

    #[test]
    fn user_id_seed_defaults() {
        let policy = UserIdPolicy::default();
        assert_eq!((policy.min_length, policy.max_length), (8, 13));
        assert_eq!(uid("abcd1234").unwrap().as_str(), "abcd1234");
        assert_eq!(uid("a-b_c.d@e1234").unwrap().as_str(), "a-b_c.d@e1234");
        assert!(uid("12345678").is_ok());
        assert!(uid("abcdefgh").is_ok());
    }

    #[test]
    fn user_id_upper_case_is_lower_cased() {
        let id = uid("TaroYamada01").unwrap();
        assert_eq!(id.as_str(), "taroyamada01");
        assert_eq!(id.to_string(), "taroyamada01");
        assert_eq!(id, uid("taroyamada01").unwrap());
        assert_eq!(uid("ABCDEFGH@X.JP").unwrap().as_str(), "abcdefgh@x.jp");
    }

    #[test]
    fn user_id_empty_alone() {
        assert_eq!(uid(""), Err(vec![UserIdRule::Empty]));
    }

    #[test]
    fn user_id_length_bounds() {
        assert_eq!(uid("abc1234"), Err(vec![UserIdRule::TooShort { min: 8 }]));
        assert!(uid("abcd1234").is_ok());
        assert!(uid("abcdefghij123").is_ok());
        assert_eq!(
            uid("abcdefghij1234"),
            Err(vec![UserIdRule::TooLong { max: 13 }])
        );
    }

    #[test]
    fn user_id_length_counts_characters() {
        // Eight full-width characters are 24 bytes but eight characters: not too long or short.
        assert_eq!(
            uid("ａｂｃｄ１２３４"),
            Err(vec![UserIdRule::ForbiddenCharacters {
                chars: "ａｂｃｄ１２３４".to_owned()
            }])
        );
    }

    #[test]
    fn user_id_forbidden_characters_distinct_in_order() {
        assert_eq!(
            uid("ab#cd!ef#g!h"),
            Err(vec![UserIdRule::ForbiddenCharacters {
                chars: "#!".to_owned()
            }])
        );
        assert_eq!(
            uid("taro yamada"),
            Err(vec![UserIdRule::ForbiddenCharacters {
                chars: " ".to_owned()
            }])
        );
        assert_eq!(
            uid("たろうyamada1"),
            Err(vec![UserIdRule::ForbiddenCharacters {
                chars: "たろう".to_owned()
            }])
        );
        assert_eq!(
            uid("abcd\t1234"),
            Err(vec![UserIdRule::ForbiddenCharacters {
                chars: "\t".to_owned()
            }])
        );
    }

    #[test]
    fn user_id_several_rules_at_once() {
        assert_eq!(
            uid("a#b"),
            Err(vec![
                UserIdRule::TooShort { min: 8 },
                UserIdRule::ForbiddenCharacters {
                    chars: "#".to_owned()
                },
            ])
        );
        assert_eq!(
            uid("abcdefghijklm＠n"),
            Err(vec![
                UserIdRule::TooLong { max: 13 },
                UserIdRule::ForbiddenCharacters {
                    chars: "＠".to_owned()
                },
            ])
        );
    }

    #[test]
    fn user_id_symbols_follow_the_policy() {
        let policy = UserIdPolicy {
            allowed_symbols: "_".to_owned(),
            ..UserIdPolicy::default()
        };
        assert!(UserId::parse(&policy, "taro_1234").is_ok());
        assert_eq!(
            UserId::parse(&policy, "taro.a@b-1"),
            Err(vec![UserIdRule::ForbiddenCharacters {
                chars: ".@-".to_owned()
            }])
        );
        // A symbol outside -_.@ is never allowed, even if a policy names it.
        let odd = UserIdPolicy {
            allowed_symbols: "-_.@#".to_owned(),
            ..UserIdPolicy::default()
        };
        assert!(UserId::parse(&odd, "taro#1234").is_err());
    }

    #[test]
    fn user_id_from_db() {
        let id = UserId::from_db("stored01".to_owned());
        assert_eq!(id.as_str(), "stored01");
        assert_eq!(id.as_ref(), "stored01");
        assert_eq!(id.clone().into_string(), "stored01");
        assert_eq!(format!("{id}"), "stored01");
    }

    #[test]
    fn user_id_messages() {
        assert_eq!(UserIdRule::Empty.message(), "ユーザ IDを入力してください。");
        assert_eq!(
            UserIdRule::TooShort { min: 8 }.message(),
            "ユーザ IDは8文字以上で入力してください。"
        );
        assert_eq!(
            UserIdRule::TooLong { max: 13 }.message(),
            "ユーザ IDは13文字以内で入力してください。"
        );
        assert_eq!(
            UserIdRule::ForbiddenCharacters {
                chars: " あ\u{7}".to_owned()
            }
            .message(),
            "ユーザ IDに使用できない文字が含まれています：「 」「あ」「U+0007」"
        );
        assert_eq!(
            UserIdRule::TooShort { min: 8 }.to_string(),
            UserIdRule::TooShort { min: 8 }.message()
        );
    }

    #[test]
    fn forbidden_user_id_character_list() {
        let list = forbidden_user_id_characters(&UserIdPolicy::default());
        // 94 printable ASCII - 52 letters - 10 digits - 4 symbols, plus two entries.
        assert_eq!(list.len(), 28 + 2);
        for allowed in ["-", "_", ".", "@", "a", "A", "z", "Z", "0", "9"] {
            assert!(!list.contains(&allowed.to_owned()), "{allowed}");
        }
        for refused in ["!", "\"", "#", "/", ":", "[", "\\", "`", "{", "~"] {
            assert!(list.contains(&refused.to_owned()), "{refused}");
        }
        assert_eq!(list[0], "!");
        assert_eq!(
            list[list.len() - 2],
            "全角文字（ひらがな・カタカナ・漢字・全角英数字など）"
        );
        assert_eq!(list[list.len() - 1], "空白");

        let no_symbols = UserIdPolicy {
            allowed_symbols: String::new(),
            ..UserIdPolicy::default()
        };
        let list = forbidden_user_id_characters(&no_symbols);
        assert_eq!(list.len(), 32 + 2);
        assert!(list.contains(&"@".to_owned()));
    }

    // ---- passwords ----------------------------------------------------------------------

    #[test]
    fn password_seed_defaults() {
        let policy = PasswordPolicy::default();
        assert_eq!((policy.min_length, policy.max_length), (8, 64));
        assert_eq!(
            allowed_password_symbols(&policy),
            "!\"#$%&'()=~|`{+*}<>?_-^\\@[;:],./"
        );
        assert!(pw("Kq7vLm2x").is_ok());
        assert!(pw(&"Kq7vLm2x".repeat(8)).is_ok());
    }

    #[test]
    fn password_accepts_every_seed_symbol() {
        let symbols = r##"!"#$%&'()=~|`{+*}<>?_-^\@[;:],./"##;
        assert_eq!(symbols, DEFAULT_PASSWORD_SYMBOLS);
        assert_eq!(symbols.chars().count(), 32);
        assert!(pw(symbols).is_ok());
        for symbol in symbols.chars() {
            let password = format!("Kq7v{symbol}Lm2x");
            assert!(pw(&password).is_ok(), "{password}");
        }
    }

    #[test]
    fn password_empty_alone() {
        let strict = PasswordPolicy {
            required_classes: ALL_CLASSES.to_vec(),
            ..PasswordPolicy::default()
        };
        assert_eq!(
            check_password(&strict, "", Some("")),
            Err(vec![PasswordRule::Empty])
        );
    }

    #[test]
    fn password_length_bounds() {
        assert_eq!(pw("Kq7vLm2"), Err(vec![PasswordRule::TooShort { min: 8 }]));
        assert!(pw("Kq7vLm2x").is_ok());
        let long = "Kq7vLm2x".repeat(8) + "a";
        assert_eq!(pw(&long), Err(vec![PasswordRule::TooLong { max: 64 }]));
    }

    #[test]
    fn password_forbidden_characters() {
        assert_eq!(pw("Kq7v Lm2x"), Err(vec![forbidden(" ")]));
        assert_eq!(pw("Kq7v¥Lm2x"), Err(vec![forbidden("¥")]));
        assert_eq!(pw("Ｋq7vLm2x"), Err(vec![forbidden("Ｋ")]));
        assert_eq!(pw("Kq7vLm2x！"), Err(vec![forbidden("！")]));
        assert_eq!(pw("Kq7v\tLm2x\u{0}"), Err(vec![forbidden("\t\u{0}")]));
        assert_eq!(pw("Kq あ7v あLm2x"), Err(vec![forbidden(" あ")]));
    }

    #[test]
    fn password_custom_symbol_set() {
        let policy = PasswordPolicy {
            allowed_symbols: "!@#".to_owned(),
            ..PasswordPolicy::default()
        };
        assert!(check_password(&policy, "Kq7v!Lm2x", None).is_ok());
        assert_eq!(
            check_password(&policy, "Kq7v$Lm2x/", None),
            Err(vec![forbidden("$/")])
        );
        assert_eq!(allowed_password_symbols(&policy), "!@#");
    }

    #[test]
    fn password_same_as_user_id() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            check_password(&policy, "Kq7vLm2x", Some("kq7vlm2x")),
            Err(vec![PasswordRule::SameAsUserId])
        );
        assert_eq!(
            check_password(&policy, "kq7vlm2x", Some("KQ7VLM2X")),
            Err(vec![PasswordRule::SameAsUserId])
        );
        assert!(check_password(&policy, "Kq7vLm2x", Some("kq7vlm2y")).is_ok());
        assert!(check_password(&policy, "Kq7vLm2x", None).is_ok());
        let relaxed = PasswordPolicy {
            differ_from_user_id: false,
            ..PasswordPolicy::default()
        };
        assert!(check_password(&relaxed, "Kq7vLm2x", Some("kq7vlm2x")).is_ok());
    }

    #[test]
    fn password_required_classes_each() {
        for class in ALL_CLASSES {
            let policy = PasswordPolicy {
                required_classes: vec![class],
                ..PasswordPolicy::default()
            };
            let without = match class {
                CharClass::Lower => "KQ7V!LM2X",
                CharClass::Upper => "kq7v!lm2x",
                CharClass::Digit => "Kqwv!Lmzx",
                CharClass::Symbol => "Kq7vxLm2x",
            };
            assert_eq!(
                check_password(&policy, without, None),
                Err(vec![PasswordRule::MissingClass(class)]),
                "{class:?}"
            );
            assert!(check_password(&policy, "Kq7v!Lm2x", None).is_ok());
        }
    }

    #[test]
    fn password_missing_classes_in_canonical_order() {
        let policy = PasswordPolicy {
            required_classes: vec![CharClass::Symbol, CharClass::Digit, CharClass::Upper],
            ..PasswordPolicy::default()
        };
        assert_eq!(
            check_password(&policy, "kqwvlmzxp", None),
            Err(vec![
                PasswordRule::MissingClass(CharClass::Upper),
                PasswordRule::MissingClass(CharClass::Digit),
                PasswordRule::MissingClass(CharClass::Symbol),
            ])
        );
    }

    #[test]
    fn symbol_class_needs_an_allowed_symbol() {
        let policy = PasswordPolicy {
            required_classes: vec![CharClass::Symbol],
            ..PasswordPolicy::default()
        };
        assert_eq!(
            check_password(&policy, "Kq7v¥Lm2x", None),
            Err(vec![
                forbidden("¥"),
                PasswordRule::MissingClass(CharClass::Symbol)
            ])
        );
    }

    #[test]
    fn password_common_list_hits() {
        for common in [
            "password1",
            "qwertyuiop",
            "Password1",
            "QWERTYUIOP",
            "iloveyou1",
            "sakura123",
            "1qaz2wsx",
            "12345678",
            "p@ssw0rd",
        ] {
            assert_eq!(pw(common), Err(vec![PasswordRule::Common]), "{common}");
        }
        let relaxed = PasswordPolicy {
            reject_common: false,
            ..PasswordPolicy::default()
        };
        assert!(check_password(&relaxed, "password1", None).is_ok());
    }

    #[test]
    fn common_list_file_is_well_formed() {
        let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(lines.len() >= 1000, "{}", lines.len());
        assert_eq!(common_password_count(), lines.len(), "no duplicates");
        for line in lines {
            assert!(!line.is_empty());
            assert_eq!(line, line.trim());
            assert!(line.chars().all(|c| ('!'..='~').contains(&c)), "{line}");
            assert_eq!(line, line.to_ascii_lowercase(), "{line}");
        }
        for entry in [
            "123456", "password", "qwerty", "111111", "iloveyou", "sakura",
        ] {
            assert!(is_common_password(entry), "{entry}");
        }
        assert!(!is_common_password("Kq7vLm2x"));
    }

    #[test]
    fn password_several_rules_at_once() {
        let policy = PasswordPolicy {
            required_classes: ALL_CLASSES.to_vec(),
            ..PasswordPolicy::default()
        };
        // Short, a space and a full-width letter, no upper case, digit or symbol.
        assert_eq!(
            check_password(&policy, "ab cＸ", None),
            Err(vec![
                PasswordRule::TooShort { min: 8 },
                forbidden(" Ｘ"),
                PasswordRule::MissingClass(CharClass::Upper),
                PasswordRule::MissingClass(CharClass::Digit),
                PasswordRule::MissingClass(CharClass::Symbol),
            ])
        );
        // Same as the user ID and common, missing upper case and symbol.
        assert_eq!(
            check_password(&policy, "password1", Some("PASSWORD1")),
            Err(vec![
                PasswordRule::SameAsUserId,
                PasswordRule::MissingClass(CharClass::Upper),
                PasswordRule::MissingClass(CharClass::Symbol),
                PasswordRule::Common,
            ])
        );
        // Short and common.
        assert_eq!(
            pw("qwerty"),
            Err(vec![
                PasswordRule::TooShort { min: 8 },
                PasswordRule::Common
            ])
        );
    }

    #[test]
    fn password_never_reports_caller_rules() {
        let policy = PasswordPolicy {
            history: 5,
            ..PasswordPolicy::default()
        };
        for password in ["", "a", "password1", "Kq7vLm2x", "あ"] {
            if let Err(rules) = check_password(&policy, password, Some("kq7vlm2x")) {
                assert!(!rules.contains(&PasswordRule::SameAsCurrent));
                assert!(!rules.contains(&PasswordRule::Reused));
            }
        }
    }

    #[test]
    fn password_messages() {
        let cases = [
            (PasswordRule::Empty, "パスワードを入力してください。"),
            (
                PasswordRule::TooShort { min: 8 },
                "パスワードは8文字以上で入力してください。",
            ),
            (
                PasswordRule::TooLong { max: 64 },
                "パスワードは64文字以内で入力してください。",
            ),
            (
                forbidden(" あ"),
                "パスワードに使用できない文字が含まれています：「 」「あ」",
            ),
            (
                forbidden("\t\u{3000}\u{200B}¥"),
                "パスワードに使用できない文字が含まれています：「U+0009」「U+3000」「U+200B」「¥」",
            ),
            (
                PasswordRule::SameAsUserId,
                "パスワードにユーザ IDと同じ文字列は使用できません。",
            ),
            (
                PasswordRule::MissingClass(CharClass::Lower),
                "パスワードには英小文字を1文字以上含めてください。",
            ),
            (
                PasswordRule::MissingClass(CharClass::Upper),
                "パスワードには英大文字を1文字以上含めてください。",
            ),
            (
                PasswordRule::MissingClass(CharClass::Digit),
                "パスワードには数字を1文字以上含めてください。",
            ),
            (
                PasswordRule::MissingClass(CharClass::Symbol),
                "パスワードには記号を1文字以上含めてください。",
            ),
            (
                PasswordRule::Common,
                "よく使われているパスワードは使用できません。別のパスワードを入力してください。",
            ),
            (
                PasswordRule::SameAsCurrent,
                "現在のパスワードと同じパスワードには変更できません。",
            ),
            (
                PasswordRule::Reused,
                "以前に使用したパスワードは使用できません。",
            ),
        ];
        for (rule, text) in cases {
            assert_eq!(rule.message(), text);
            assert_eq!(rule.to_string(), text);
        }
    }

    // ---- properties ---------------------------------------------------------------------

    fn password_policies() -> Vec<PasswordPolicy> {
        let default = PasswordPolicy::default();
        vec![
            default.clone(),
            PasswordPolicy {
                required_classes: ALL_CLASSES.to_vec(),
                ..default.clone()
            },
            PasswordPolicy {
                min_length: 12,
                required_classes: vec![CharClass::Digit],
                ..default.clone()
            },
            PasswordPolicy {
                min_length: 6,
                max_length: 20,
                allowed_symbols: "!@#$%".to_owned(),
                required_classes: vec![CharClass::Symbol, CharClass::Upper],
                differ_from_user_id: false,
                ..default.clone()
            },
            PasswordPolicy {
                allowed_symbols: String::new(),
                reject_common: false,
                ..default
            },
        ]
    }

    fn user_id_policies() -> Vec<UserIdPolicy> {
        let default = UserIdPolicy::default();
        vec![
            default.clone(),
            UserIdPolicy {
                min_length: 4,
                max_length: 20,
                allowed_symbols: "-_".to_owned(),
            },
            UserIdPolicy {
                allowed_symbols: String::new(),
                ..default.clone()
            },
            UserIdPolicy {
                min_length: 10,
                max_length: 10,
                ..default
            },
        ]
    }

    fn password_policy() -> impl Strategy<Value = PasswordPolicy> {
        prop::sample::select(password_policies())
    }

    fn password_chars(policy: &PasswordPolicy) -> Vec<char> {
        ('a'..='z')
            .chain('A'..='Z')
            .chain('0'..='9')
            .chain(policy.allowed_symbols.chars())
            .collect()
    }

    /// Characters no policy allows.
    const NEVER_ALLOWED: [char; 9] = [
        ' ', '\t', '\u{0}', '\u{7f}', '¥', 'あ', 'Ａ', '！', '\u{3000}',
    ];

    /// Mostly characters from `allowed`, sometimes any printable ASCII (which the policy may
    /// refuse), sometimes characters no policy allows.
    fn mostly(allowed: Vec<char>) -> BoxedStrategy<char> {
        prop_oneof![
            40 => prop::sample::select(allowed),
            2 => prop::char::range(' ', '~'),
            1 => prop::sample::select(NEVER_ALLOWED.to_vec()),
            1 => any::<char>(),
        ]
        .boxed()
    }

    /// A length near the policy's bounds most of the time, anything up to past the maximum
    /// otherwise.
    fn length(min: u32, max: u32) -> BoxedStrategy<usize> {
        let (min, max) = (min as usize, max as usize);
        prop_oneof![
            4 => min..=max.min(min + 8),
            1 => max.saturating_sub(4)..=max + 4,
            1 => 0..=max + 4,
        ]
        .boxed()
    }

    /// The list read again, independently of the `HashSet`.
    fn listed(password: &str) -> bool {
        let lowered = password.to_ascii_lowercase();
        COMMON_PASSWORDS.lines().any(|line| line == lowered)
    }

    /// Every rule of `policy` re-checked on its own; the list the checker should report.
    fn expected_rules(
        policy: &PasswordPolicy,
        password: &str,
        user_id: Option<&str>,
    ) -> Vec<PasswordRule> {
        if password.is_empty() {
            return vec![PasswordRule::Empty];
        }
        let mut rules = Vec::new();
        let n = password.chars().count() as u32;
        if n < policy.min_length {
            rules.push(PasswordRule::TooShort {
                min: policy.min_length,
            });
        }
        if n > policy.max_length {
            rules.push(PasswordRule::TooLong {
                max: policy.max_length,
            });
        }
        let mut bad = String::new();
        for c in password.chars() {
            let ok = c.is_ascii_alphanumeric() || policy.allowed_symbols.contains(c);
            if !ok && !bad.contains(c) {
                bad.push(c);
            }
        }
        if !bad.is_empty() {
            rules.push(forbidden(&bad));
        }
        if policy.differ_from_user_id && user_id.is_some_and(|u| u.eq_ignore_ascii_case(password)) {
            rules.push(PasswordRule::SameAsUserId);
        }
        for class in ALL_CLASSES {
            let has = match class {
                CharClass::Lower => password.chars().any(|c| c.is_ascii_lowercase()),
                CharClass::Upper => password.chars().any(|c| c.is_ascii_uppercase()),
                CharClass::Digit => password.chars().any(|c| c.is_ascii_digit()),
                CharClass::Symbol => password
                    .chars()
                    .any(|c| c.is_ascii_punctuation() && policy.allowed_symbols.contains(c)),
            };
            if policy.required_classes.contains(&class) && !has {
                rules.push(PasswordRule::MissingClass(class));
            }
        }
        if policy.reject_common && listed(password) {
            rules.push(PasswordRule::Common);
        }
        rules
    }

    /// A policy, a password and a user ID. The password is mostly built of characters the
    /// policy allows (so that a good share is accepted), sometimes taken from the common list
    /// in mixed case; the user ID is sometimes the password in another case.
    fn password_case() -> impl Strategy<Value = (PasswordPolicy, String, Option<String>)> {
        password_policy()
            .prop_flat_map(|policy| {
                let chars = mostly(password_chars(&policy));
                let built = length(policy.min_length, policy.max_length)
                    .prop_flat_map(move |n| prop::collection::vec(chars.clone(), n))
                    .prop_map(|chars| chars.into_iter().collect::<String>());
                let common = (
                    prop::sample::select(COMMON_PASSWORDS.lines().collect::<Vec<_>>()),
                    any::<u64>(),
                )
                    .prop_map(|(word, bits)| {
                        word.chars()
                            .enumerate()
                            .map(|(i, c)| {
                                if bits >> (i % 64) & 1 == 1 {
                                    c.to_ascii_uppercase()
                                } else {
                                    c
                                }
                            })
                            .collect::<String>()
                    });
                let password = prop_oneof![9 => built, 1 => common];
                (Just(policy), password, 0..6u8, "[a-z0-9]{8,13}")
            })
            .prop_map(|(policy, password, pick, other)| {
                let user_id = match pick {
                    0 | 1 => None,
                    2 | 3 => Some(other),
                    4 => Some(password.to_ascii_uppercase()),
                    _ => Some(password.clone()),
                };
                (policy, password, user_id)
            })
    }

    /// A password of allowed characters only, long enough, with every required class.
    fn valid_password_for(policy: PasswordPolicy) -> impl Strategy<Value = String> {
        let mut required = Vec::new();
        for class in ALL_CLASSES {
            if policy.required_classes.contains(&class) {
                required.push(match class {
                    CharClass::Lower => prop::char::range('a', 'z').boxed(),
                    CharClass::Upper => prop::char::range('A', 'Z').boxed(),
                    CharClass::Digit => prop::char::range('0', '9').boxed(),
                    CharClass::Symbol => {
                        prop::sample::select(policy.allowed_symbols.chars().collect::<Vec<_>>())
                            .boxed()
                    }
                });
            }
        }
        let k = required.len();
        let min = (policy.min_length as usize).max(1).saturating_sub(k);
        let max = (policy.max_length as usize).saturating_sub(k);
        let rest = prop::collection::vec(prop::sample::select(password_chars(&policy)), min..=max);
        (required, rest)
            .prop_flat_map(|(mut required, rest)| {
                required.extend(rest);
                Just(required).prop_shuffle()
            })
            .prop_map(|chars| chars.into_iter().collect())
    }

    /// A policy and an input built mostly of characters the policy allows, in either case.
    fn user_id_case() -> impl Strategy<Value = (UserIdPolicy, String)> {
        prop::sample::select(user_id_policies()).prop_flat_map(|policy| {
            let allowed: Vec<char> = ('a'..='z')
                .chain('A'..='Z')
                .chain('0'..='9')
                .chain(policy.allowed_symbols.chars())
                .collect();
            let chars = mostly(allowed);
            let input = length(policy.min_length, policy.max_length)
                .prop_flat_map(move |n| prop::collection::vec(chars.clone(), n))
                .prop_map(|chars| chars.into_iter().collect::<String>());
            (Just(policy), input)
        })
    }

    /// The generators must give both accepted and refused inputs, and every rule, in good
    /// numbers; otherwise the properties below would hold vacuously.
    #[test]
    fn generators_are_not_vacuous() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = password_case();
        let mut accepted = 0;
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let (policy, password, user_id) = strategy.new_tree(&mut runner).unwrap().current();
            match check_password(&policy, &password, user_id.as_deref()) {
                Ok(()) => accepted += 1,
                Err(rules) => seen.extend(rules.into_iter().map(|rule| match rule {
                    PasswordRule::TooShort { .. } => "too short",
                    PasswordRule::TooLong { .. } => "too long",
                    PasswordRule::ForbiddenCharacters { .. } => "forbidden",
                    PasswordRule::MissingClass(_) => "missing class",
                    PasswordRule::SameAsUserId => "same as user ID",
                    PasswordRule::Common => "common",
                    PasswordRule::Empty => "empty",
                    PasswordRule::SameAsCurrent | PasswordRule::Reused => "caller's",
                })),
            }
        }
        assert!(
            (100..=800).contains(&accepted),
            "{accepted} of 1000 accepted"
        );
        for rule in [
            "too short",
            "too long",
            "forbidden",
            "missing class",
            "same as user ID",
            "common",
            "empty",
        ] {
            assert!(seen.contains(rule), "{rule} never seen");
        }
        assert!(!seen.contains("caller's"));

        let strategy = user_id_case();
        let mut accepted = 0;
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let (policy, input) = strategy.new_tree(&mut runner).unwrap().current();
            match UserId::parse(&policy, &input) {
                Ok(_) => accepted += 1,
                Err(rules) => seen.extend(rules.into_iter().map(|rule| match rule {
                    UserIdRule::Empty => "empty",
                    UserIdRule::TooShort { .. } => "too short",
                    UserIdRule::TooLong { .. } => "too long",
                    UserIdRule::ForbiddenCharacters { .. } => "forbidden",
                })),
            }
        }
        assert!(
            (100..=800).contains(&accepted),
            "{accepted} of 1000 accepted"
        );
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// (a) An accepted password satisfies every rule, re-checked independently.
        #[test]
        fn accepted_password_satisfies_every_rule(
            (policy, password, user_id) in password_case(),
        ) {
            if check_password(&policy, &password, user_id.as_deref()).is_ok() {
                let n = password.chars().count() as u32;
                prop_assert!((policy.min_length..=policy.max_length).contains(&n));
                prop_assert!(password
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || policy.allowed_symbols.contains(c)));
                if policy.differ_from_user_id {
                    if let Some(u) = &user_id {
                        prop_assert_ne!(u.to_ascii_lowercase(), password.to_ascii_lowercase());
                    }
                }
                for class in &policy.required_classes {
                    let has = match class {
                        CharClass::Lower => password.chars().any(|c| c.is_ascii_lowercase()),
                        CharClass::Upper => password.chars().any(|c| c.is_ascii_uppercase()),
                        CharClass::Digit => password.chars().any(|c| c.is_ascii_digit()),
                        CharClass::Symbol => password.chars().any(|c| {
                            c.is_ascii_punctuation() && policy.allowed_symbols.contains(c)
                        }),
                    };
                    prop_assert!(has, "{:?}", class);
                }
                if policy.reject_common {
                    prop_assert!(!listed(&password));
                }
            }
        }

        /// Every password gets exactly the rules it breaks, in the documented order.
        #[test]
        fn reported_rules_are_exactly_the_broken_ones(
            (policy, password, user_id) in password_case(),
        ) {
            let expected = expected_rules(&policy, &password, user_id.as_deref());
            let got = check_password(&policy, &password, user_id.as_deref())
                .err()
                .unwrap_or_default();
            prop_assert_eq!(got, expected);
        }

        /// (b) Allowed characters, a length in range, every required class, not listed and not
        /// the user ID: accepted.
        #[test]
        fn valid_password_is_accepted(
            (policy, password) in password_policy()
                .prop_flat_map(|p| (Just(p.clone()), valid_password_for(p))),
            user_id in proptest::option::of("[a-zA-Z0-9]{1,20}"),
        ) {
            prop_assume!(!(policy.reject_common && listed(&password)));
            prop_assume!(user_id
                .as_deref()
                .is_none_or(|u| !u.eq_ignore_ascii_case(&password)));
            prop_assert_eq!(check_password(&policy, &password, user_id.as_deref()), Ok(()));
        }

        /// (c) A parsed user ID is lower case, within bounds and of allowed characters, and
        /// parsing it again gives the same ID.
        #[test]
        fn parsed_user_id_is_normal_and_idempotent(
            (policy, input) in user_id_case(),
        ) {
            match UserId::parse(&policy, &input) {
                Ok(id) => {
                    let s = id.as_str();
                    prop_assert_eq!(s, input.to_ascii_lowercase());
                    prop_assert!(!s.chars().any(|c| c.is_ascii_uppercase()));
                    let n = s.chars().count() as u32;
                    prop_assert!((policy.min_length..=policy.max_length).contains(&n));
                    prop_assert!(s.chars().all(|c| c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || ("-_.@".contains(c) && policy.allowed_symbols.contains(c))));
                    prop_assert_eq!(UserId::parse(&policy, s), Ok(id.clone()));
                }
                Err(rules) => {
                    prop_assert!(!rules.is_empty());
                    if input.is_empty() {
                        prop_assert_eq!(rules, vec![UserIdRule::Empty]);
                    } else {
                        prop_assert!(!rules.contains(&UserIdRule::Empty));
                    }
                }
            }
        }

        /// Any mix of allowed characters, in any case, with a length in range is accepted.
        #[test]
        fn valid_user_id_is_accepted(
            (policy, input) in prop::sample::select(user_id_policies()).prop_flat_map(|p| {
                let chars: Vec<char> = ('a'..='z')
                    .chain('A'..='Z')
                    .chain('0'..='9')
                    .chain(p.allowed_symbols.chars())
                    .collect();
                let len = p.min_length as usize..=p.max_length as usize;
                (Just(p), prop::collection::vec(prop::sample::select(chars), len))
            }),
        ) {
            let input: String = input.into_iter().collect();
            let id = UserId::parse(&policy, &input).unwrap();
            prop_assert_eq!(id.as_str(), input.to_ascii_lowercase());
        }
    }
}
