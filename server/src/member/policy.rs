//! Password and user ID policies.
