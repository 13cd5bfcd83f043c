//! portal: one engine serving the member portal of many health insurance societies.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod ids;
pub mod listener;
pub mod logging;
pub mod mail;
pub mod member;
pub mod metrics;
pub mod mfa;
pub mod ops;
pub mod startup;
pub mod state;
pub mod store;
pub mod sweeper;
pub mod tenant;
pub mod theme;
pub mod throttle;
pub mod web;

/// `bytes` random bytes from the operating system, hex-encoded.
pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage
/// return first) is made plain text with a leading apostrophe.
pub fn csv_cell(value: &str) -> std::borrow::Cow<'_, str> {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}").into(),
        _ => value.into(),
    }
}
