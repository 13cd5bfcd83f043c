//! E-mail addresses, checked where they enter the system.

use std::fmt;

/// A deliverable address: ASCII, one `@`, a local part and a domain with a dot, 254
/// characters at most, no white space or control characters (no header injection).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("an e-mail address is required")]
    Empty,
    #[error("an e-mail address may not contain line breaks or control characters")]
    ControlCharacters,
    #[error("an e-mail address may be at most 254 characters")]
    TooLong,
    #[error("an e-mail address needs a domain (name@example.jp)")]
    NoDomain,
    #[error("not a valid e-mail address")]
    Invalid,
}

impl AddressError {
    /// Key of the member-facing text in the theme's locale file.
    pub fn text_key(self) -> &'static str {
        match self {
            AddressError::Empty => "errors.email.empty",
            AddressError::ControlCharacters => "errors.email.control",
            AddressError::TooLong => "errors.email.too_long",
            AddressError::NoDomain => "errors.email.no_domain",
            AddressError::Invalid => "errors.email.invalid",
        }
    }
}

pub const MAX_LEN: usize = 254;
const LOCAL_SYMBOLS: &str = "!#$%&'*+/=?^_`{|}~.-";

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        if input.chars().any(char::is_control) {
            return Err(AddressError::ControlCharacters);
        }
        let input = input.trim_matches(' ');
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        if input.chars().count() > MAX_LEN {
            return Err(AddressError::TooLong);
        }
        let Some((local, domain)) = input.rsplit_once('@') else {
            return Err(AddressError::Invalid);
        };
        if domain.is_empty() {
            return Err(AddressError::NoDomain);
        }
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || LOCAL_SYMBOLS.contains(c));
        let domain = domain.to_ascii_lowercase();
        if !local_ok || !crate::config::is_hostname(&domain) {
            return Err(AddressError::Invalid);
        }
        if !domain.contains('.') {
            return Err(AddressError::NoDomain);
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_addresses() {
        for (input, stored) in [
            ("member@example.jp", "member@example.jp"),
            (
                "Taro.Daiwa+kenpo@Mail.Example.JP",
                "Taro.Daiwa+kenpo@mail.example.jp",
            ),
            (" member@example.jp ", "member@example.jp"),
        ] {
            assert_eq!(EmailAddress::parse(input).unwrap().as_str(), stored);
        }
    }

    #[test]
    fn bad_addresses_say_why() {
        let long = format!("{}@example.jp", "a".repeat(250));
        for (input, error) in [
            ("", AddressError::Empty),
            (
                "a@example.jp\r\nBcc: victim@example.jp",
                AddressError::ControlCharacters,
            ),
            ("a@example.jp\n", AddressError::ControlCharacters),
            ("a\0@example.jp", AddressError::ControlCharacters),
            (long.as_str(), AddressError::TooLong),
            ("member", AddressError::Invalid),
            ("member@", AddressError::NoDomain),
            ("member@localhost", AddressError::NoDomain),
            ("@example.jp", AddressError::Invalid),
            ("a b@example.jp", AddressError::Invalid),
            ("a..b@example.jp", AddressError::Invalid),
            ("太郎@example.jp", AddressError::Invalid),
            ("a@exa_mple.jp", AddressError::Invalid),
            ("a@b@example.jp", AddressError::Invalid),
            ("<a@example.jp>", AddressError::Invalid),
        ] {
            assert_eq!(EmailAddress::parse(input), Err(error), "{input:?}");
        }
    }
}
