//! Members of a tenant: user IDs, passwords and their policies.

pub mod credentials;
pub mod email_change;
pub mod links;
pub mod policy;
pub mod recovery;
pub mod search;
pub mod sessions;

use crate::auth::password::PasswordHasher;
use crate::store::{NewMember, Store, StoreError};
use crate::tenant::Tenant;

/// What an operator or admin gives to create a member.
pub struct MemberDetails<'a> {
    pub display_name: &'a str,
    /// `YYYY-MM-DD`
    pub birth_date: &'a str,
    pub email: &'a crate::mail::EmailAddress,
}

/// Temporary credentials to print on the member's letter. Shown once, never stored.
#[derive(Debug, serde::Serialize)]
pub struct TemporaryCredentials {
    pub user_id: String,
    pub password: String,
}

/// Creates a member with temporary credentials.
pub async fn create_member(
    store: &Store,
    hasher: &PasswordHasher,
    tenant: &Tenant,
    details: &MemberDetails<'_>,
) -> anyhow::Result<TemporaryCredentials> {
    let password = credentials::temporary_password();
    let hash = hasher
        .hash(&password)
        .await
        .map_err(|e| anyhow::anyhow!("hashing the temporary password: {e}"))?;
    for _ in 0..5 {
        let user_id = credentials::temporary_user_id();
        let new = NewMember {
            user_id: &user_id,
            display_name: details.display_name,
            birth_date: details.birth_date,
            email: details.email.as_str(),
            password_hash: &hash,
            card_symbol: "",
            card_number: "",
            name_kana: "",
            user_id_chosen: false,
        };
        match store.create_member(&tenant.id, &new).await {
            Ok(_) => return Ok(TemporaryCredentials { user_id, password }),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("could not find a free temporary user ID")
}

/// Checks a display name: 1–50 characters, no control characters.
pub fn check_display_name(name: &str) -> Result<&str, &'static str> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a name is required");
    }
    if name.chars().count() > 50 {
        return Err("a name may be at most 50 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("a name may not contain control characters");
    }
    Ok(name)
}

/// Checks a birth date written `YYYY-MM-DD`, not in the future and after 1900.
pub fn check_birth_date(date: &str) -> Result<&str, &'static str> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let parsed = time::Date::parse(date.trim(), &format)
        .map_err(|_| "a birth date is written YYYY-MM-DD")?;
    let today = time::OffsetDateTime::now_utc().date();
    if parsed > today || parsed.year() < 1900 {
        return Err("the birth date is out of range");
    }
    Ok(date.trim())
}
