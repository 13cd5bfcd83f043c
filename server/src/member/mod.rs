//! Members of a tenant: user IDs, passwords and their policies.

pub mod policy;
