//! End-to-end tests: the real `portal` executable, a real database (SQLite and
//! PostgreSQL), real HTTP. One test binary; see `harness` for how servers are started.

mod browser_like;
mod db;
mod harness;

mod admin;
mod backup;
mod bulk_reset;
mod cli;
mod config;
mod email_change;
mod factors;
mod guides;
mod import;
mod lifecycle;
mod look;
mod look_console;
mod mail;
mod migrations;
mod ops;
mod otp;
mod passkeys;
mod password_reset;
mod privilege;
mod privilege_admins;
mod privilege_content;
mod recovery;
mod routing;
mod sessions;
mod settings;
mod signin;
mod terms_console;
mod totp;
