//! Passkeys (WebAuthn, webauthn-rs): one relying party per tenant host, cached; ceremony
//! states serialised into the sign-in flow; user verification always required.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    AuthenticatorAttachment, CreationChallengeResponse, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::tenant::settings::PasskeyAttachment;
use crate::tenant::Tenant;

/// How long a member has for one ceremony (the browser's own prompt included).
pub const CEREMONY_SECS: i64 = 5 * 60;

/// A ceremony in progress, kept (as JSON) in the sign-in flow.
#[derive(Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Ceremony {
    /// `navigator.credentials.create` is under way.
    Register { state: PasskeyRegistration },
    /// The new passkey is verified and waits for its name (「ＯＫ」).
    Registered { passkey: Passkey },
    /// `navigator.credentials.get` is under way.
    Authenticate { state: PasskeyAuthentication },
}

impl Ceremony {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ceremony state serialises")
    }

    pub fn from_json(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }
}

/// Why a passkey was refused, for the audit log (the member sees one message).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("no ceremony in progress or it expired")]
    NoCeremony,
    #[error("malformed credential")]
    Malformed,
    #[error("sign counter went backwards: possibly a cloned authenticator")]
    CounterRegression,
    #[error("credential not registered to this member")]
    NotThisMembers,
    #[error("verification failed: {0}")]
    Invalid(WebauthnError),
}

/// The relying parties of all tenant hosts, built on first use.
pub struct RelyingParties {
    cache: Cache<(String, String), Arc<Webauthn>>,
    scheme: &'static str,
}

impl RelyingParties {
    /// `https` deployments expect `https://` origins; plain `http` is for development and
    /// tests on `*.localhost`, which browsers treat as secure.
    pub fn new(https: bool) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(1024)
                .time_to_live(Duration::from_secs(600))
                .build(),
            scheme: if https { "https" } else { "http" },
        }
    }

    /// The relying party of `host` (as the browser sent it, port included): origin = this
    /// scheme + host + port; id = the host name without a leading `www.`, so that a passkey
    /// made on the guides' `www.<slug>.…` works on `<slug>.…` (where mailed links lead) and
    /// back.
    pub fn get(&self, tenant: &Tenant, host: &str) -> Result<Arc<Webauthn>, WebauthnError> {
        let name = crate::tenant::normalize_host(host).ok_or(WebauthnError::Configuration)?;
        let origin = match host.trim().rsplit_once(':') {
            Some((_, port)) => format!("{}://{name}:{port}", self.scheme),
            None => format!("{}://{name}", self.scheme),
        };
        let rp_id = rp_id_of(&name);
        let key = (tenant.id.as_str().to_owned(), origin.clone());
        if let Some(found) = self.cache.get(&key) {
            return Ok(found);
        }
        let origin = Url::parse(&origin).map_err(|_| WebauthnError::Configuration)?;
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)?
            .rp_name(&tenant.display_name)
            .timeout(Duration::from_secs(CEREMONY_SECS as u64))
            .build()?;
        let webauthn = Arc::new(webauthn);
        self.cache.insert(key, Arc::clone(&webauthn));
        Ok(webauthn)
    }
}

/// The relying party id of a host name: without a leading `www.` (a registrable suffix of
/// the origin, as WebAuthn allows), unless only a top-level name would be left.
fn rp_id_of(host: &str) -> String {
    match host.strip_prefix("www.") {
        Some(rest) if rest.contains('.') => rest.to_owned(),
        _ => host.to_owned(),
    }
}

/// The WebAuthn user handle of a member: stable, opaque, and different in every tenant.
pub fn user_handle(tenant: &Tenant, member_id: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"portal-webauthn-user\0")
        .chain_update(tenant.id.as_str())
        .chain_update(b"\0")
        .chain_update(member_id)
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// A credential id as stored and compared: base64url without padding.
pub fn credential_id(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// Starts registering a passkey for a member who already holds `existing`.
pub fn start_registration(
    webauthn: &Webauthn,
    tenant: &Tenant,
    member_id: &str,
    user_name: &str,
    display_name: &str,
    existing: &[Passkey],
) -> Result<(CreationChallengeResponse, Ceremony), WebauthnError> {
    let exclude = existing.iter().map(|p| p.cred_id().clone()).collect();
    let (mut options, state) = webauthn.start_passkey_registration(
        user_handle(tenant, member_id),
        user_name,
        display_name,
        Some(exclude),
    )?;
    // No restriction unless the society asks: phones (hybrid/QR), platform authenticators
    // and security keys all work.
    let attachment = match tenant.settings.mfa.passkey_attachment {
        PasskeyAttachment::Any => None,
        PasskeyAttachment::Platform => Some(AuthenticatorAttachment::Platform),
        PasskeyAttachment::CrossPlatform => Some(AuthenticatorAttachment::CrossPlatform),
    };
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.authenticator_attachment = attachment;
    }
    Ok((options, Ceremony::Register { state }))
}

/// Verifies the browser's answer to a registration.
pub fn finish_registration(
    webauthn: &Webauthn,
    state: &PasskeyRegistration,
    json: &str,
) -> Result<Passkey, Refused> {
    let credential: RegisterPublicKeyCredential =
        serde_json::from_str(json).map_err(|_| Refused::Malformed)?;
    webauthn
        .finish_passkey_registration(&credential, state)
        .map_err(Refused::Invalid)
}

/// Starts an assertion over the member's passkeys.
pub fn start_authentication(
    webauthn: &Webauthn,
    passkeys: &[Passkey],
) -> Result<(RequestChallengeResponse, Ceremony), WebauthnError> {
    let (options, state) = webauthn.start_passkey_authentication(passkeys)?;
    Ok((options, Ceremony::Authenticate { state }))
}

/// The credential id a browser's assertion names, before any verification.
pub fn asserted_credential(json: &str) -> Option<(PublicKeyCredential, String)> {
    let credential: PublicKeyCredential = serde_json::from_str(json).ok()?;
    let id = credential_id(&credential.raw_id);
    Some((credential, id))
}

/// Verifies an assertion against the ceremony and the member's passkey `stored`; returns
/// the passkey with its counter moved on.
pub fn finish_authentication(
    webauthn: &Webauthn,
    state: &PasskeyAuthentication,
    credential: &PublicKeyCredential,
    mut stored: Passkey,
) -> Result<Passkey, Refused> {
    match webauthn.finish_passkey_authentication(credential, state) {
        Ok(result) => {
            if result.cred_id() != stored.cred_id() {
                return Err(Refused::NotThisMembers);
            }
            stored.update_credential(&result);
            Ok(stored)
        }
        Err(WebauthnError::CredentialPossibleCompromise) => Err(Refused::CounterRegression),
        Err(e) => Err(Refused::Invalid(e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_www_host_shares_the_relying_party_of_the_societys_host() {
        assert_eq!(
            super::rp_id_of("www.daiwakenpo.localhost"),
            "daiwakenpo.localhost"
        );
        assert_eq!(
            super::rp_id_of("daiwakenpo.localhost"),
            "daiwakenpo.localhost"
        );
        assert_eq!(super::rp_id_of("www.localhost"), "www.localhost");
        assert_eq!(super::rp_id_of("portal.example.jp"), "portal.example.jp");
    }
}
