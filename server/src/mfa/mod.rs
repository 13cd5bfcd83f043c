//! Second factors (SPEC §3 journeys 3–5, 11, 12): one module per kind of factor, holding
//! its pure logic; devices are stored by [`crate::store::Store`] (`mfa_devices`), secrets
//! sealed with [`crate::crypto::SecretBox`] under the device id.

pub mod passkey;
pub mod totp;
