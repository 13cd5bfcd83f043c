//! Authentication: password hashing, sessions, CSRF, step-up.

pub mod password;
pub mod session;
