//! Members' second-factor devices (TOTP apps and passkeys). Every query names the tenant
//! and the member: a device is reachable only through the member who owns it.

use sqlx::FromRow;

use super::{on_pool, Store, StoreError, StoreResult};
use crate::tenant::TenantId;

/// One registered device.
#[derive(Debug, Clone, FromRow)]
pub struct Device {
    pub id: String,
    pub member_id: String,
    /// `totp` | `passkey`
    pub kind: String,
    /// The member's name for it (「デバイス名」), unique per member.
    pub name: String,
    /// totp: the sealed secret (open with the device id as context); passkey: its JSON.
    pub secret: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// passkey: its credential id (base64url), unique within the tenant.
    pub credential_id: Option<String>,
}

/// A device to register, under an id the caller chose (the id seals a TOTP secret).
pub struct NewDevice<'a> {
    pub id: &'a str,
    /// `totp` | `passkey`
    pub kind: &'a str,
    pub name: &'a str,
    /// totp: the sealed secret; passkey: its JSON.
    pub secret: &'a str,
    /// passkey: its credential id (base64url).
    pub credential_id: Option<&'a str>,
}

const DEVICE_COLUMNS: &str =
    "id, member_id, kind, name, secret, created_at, last_used_at, credential_id";

impl Store {
    /// The member's devices, oldest first.
    pub async fn devices(&self, tenant: &TenantId, member_id: &str) -> StoreResult<Vec<Device>> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM mfa_devices WHERE tenant_id = $1 AND member_id = $2 \
             ORDER BY created_at, name"
        );
        let rows: Vec<Device> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(tenant.as_str()).bind(member_id).fetch_all(p).await
        })?;
        Ok(rows)
    }

    pub async fn device(
        &self,
        tenant: &TenantId,
        member_id: &str,
        device_id: &str,
    ) -> StoreResult<Option<Device>> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM mfa_devices \
             WHERE tenant_id = $1 AND member_id = $2 AND id = $3"
        );
        let row: Option<Device> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql)
                .bind(tenant.as_str())
                .bind(member_id)
                .bind(device_id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row)
    }

    /// Registers a device. A name the member already uses, or a passkey credential
    /// already registered in this tenant (to anyone), is a conflict.
    pub async fn add_device(
        &self,
        tenant: &TenantId,
        member_id: &str,
        d: &NewDevice<'_>,
    ) -> StoreResult<()> {
        let result = on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO mfa_devices (id, tenant_id, member_id, kind, name, secret, created_at, \
                 credential_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(d.id)
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(d.kind)
            .bind(d.name)
            .bind(d.secret)
            .bind(super::now_unix())
            .bind(d.credential_id)
            .execute(p)
            .await
            .map(|_| ())
        });
        match result {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(
                StoreError::Conflict("device name or credential already registered".into()),
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// Who holds a credential in this tenant, if anyone: refusing another member's passkey
    /// is audited with it.
    pub async fn passkey_owner(
        &self,
        tenant: &TenantId,
        credential_id: &str,
    ) -> StoreResult<Option<String>> {
        let owner: Option<(String,)> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT member_id FROM mfa_devices WHERE tenant_id = $1 AND credential_id = $2",
            )
            .bind(tenant.as_str())
            .bind(credential_id)
            .fetch_optional(p)
            .await
        })?;
        Ok(owner.map(|(m,)| m))
    }

    /// Stores a passkey's new state (sign counter) after a use.
    pub async fn passkey_used(
        &self,
        tenant: &TenantId,
        member_id: &str,
        device_id: &str,
        passkey_json: &str,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE mfa_devices SET secret = $4, last_used_at = $5 \
                 WHERE tenant_id = $1 AND member_id = $2 AND id = $3 AND kind = 'passkey'",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(device_id)
            .bind(passkey_json)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Removes one device; false if the member has no such device.
    pub async fn delete_device(
        &self,
        tenant: &TenantId,
        member_id: &str,
        device_id: &str,
    ) -> StoreResult<bool> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query("DELETE FROM mfa_devices WHERE tenant_id = $1 AND member_id = $2 AND id = $3")
                .bind(tenant.as_str())
                .bind(member_id)
                .bind(device_id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    /// Removes all the member's devices of one kind (e.g. TOTP on a password reset);
    /// returns how many went.
    pub async fn delete_devices_of_kind(
        &self,
        tenant: &TenantId,
        member_id: &str,
        kind: &str,
    ) -> StoreResult<u64> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "DELETE FROM mfa_devices WHERE tenant_id = $1 AND member_id = $2 AND kind = $3",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(kind)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// The single-use guard for TOTP codes: records `step` as the device's last accepted
    /// time step if it is later than the one recorded. One atomic UPDATE, so of any number
    /// of concurrent submissions of a code (on any number of nodes) exactly one gets true;
    /// a code of the same or an earlier step than one already accepted gets false.
    pub async fn use_totp_step(
        &self,
        tenant: &TenantId,
        member_id: &str,
        device_id: &str,
        step: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE mfa_devices SET last_step = $4, last_used_at = $5 \
                 WHERE tenant_id = $1 AND member_id = $2 AND id = $3 AND kind = 'totp' \
                 AND (last_step IS NULL OR last_step < $4)",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(device_id)
            .bind(step)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}
