//! Second-factor devices (TOTP apps and passkeys) of members and of admins. Every query
//! names the tenant and the owner: a device is reachable only through whoever owns it.
//! Members' devices live in `mfa_devices`, admins' in `admin_devices`, in one shape, so
//! the factor code is the same for both.

use sqlx::FromRow;

use super::{on_pool, Owner, Store, StoreError, StoreResult};
use crate::tenant::TenantId;

/// One registered device.
#[derive(Debug, Clone, FromRow)]
pub struct Device {
    pub id: String,
    /// The member or admin who owns it.
    pub owner_id: String,
    /// `totp` | `passkey`
    pub kind: String,
    /// The owner's name for it (「デバイス名」), unique per owner.
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

impl Owner<'_> {
    fn device_table(&self) -> &'static str {
        match self {
            Owner::Member(_) => "mfa_devices",
            Owner::Admin(_) => "admin_devices",
        }
    }

    fn device_columns(&self) -> String {
        format!(
            "id, {} AS owner_id, kind, name, secret, created_at, last_used_at, credential_id",
            self.column()
        )
    }
}

impl Store {
    /// The owner's devices, oldest first.
    pub async fn devices(&self, tenant: &TenantId, owner: &Owner<'_>) -> StoreResult<Vec<Device>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND {} = $2 ORDER BY created_at, name",
            owner.device_columns(),
            owner.device_table(),
            owner.column()
        );
        let rows: Vec<Device> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(tenant.as_str()).bind(owner.id()).fetch_all(p).await
        })?;
        Ok(rows)
    }

    pub async fn device(
        &self,
        tenant: &TenantId,
        owner: &Owner<'_>,
        device_id: &str,
    ) -> StoreResult<Option<Device>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND {} = $2 AND id = $3",
            owner.device_columns(),
            owner.device_table(),
            owner.column()
        );
        let row: Option<Device> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql)
                .bind(tenant.as_str())
                .bind(owner.id())
                .bind(device_id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row)
    }

    /// Registers a device. A name the owner already uses, or a passkey credential
    /// already registered in this tenant (to anyone of the same kind), is a conflict.
    pub async fn add_device(
        &self,
        tenant: &TenantId,
        owner: &Owner<'_>,
        d: &NewDevice<'_>,
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO {} (id, tenant_id, {}, kind, name, secret, created_at, credential_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            owner.device_table(),
            owner.column()
        );
        let result = on_pool!(&self.pool, p => {
            sqlx::query(&sql)
            .bind(d.id)
            .bind(tenant.as_str())
            .bind(owner.id())
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

    /// Which account of `kind`'s sort (members or admins) holds a passkey credential in
    /// this tenant, if any: refusing another's passkey is audited with it.
    pub async fn passkey_owner(
        &self,
        tenant: &TenantId,
        kind: &Owner<'_>,
        credential_id: &str,
    ) -> StoreResult<Option<String>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND credential_id = $2",
            kind.column(),
            kind.device_table()
        );
        let owner: Option<(String,)> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql)
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
        owner: &Owner<'_>,
        device_id: &str,
        passkey_json: &str,
        now: i64,
    ) -> StoreResult<()> {
        let sql = format!(
            "UPDATE {} SET secret = $4, last_used_at = $5 \
             WHERE tenant_id = $1 AND {} = $2 AND id = $3 AND kind = 'passkey'",
            owner.device_table(),
            owner.column()
        );
        on_pool!(&self.pool, p => {
            sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(owner.id())
            .bind(device_id)
            .bind(passkey_json)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Removes one device; false if the owner has no such device.
    pub async fn delete_device(
        &self,
        tenant: &TenantId,
        owner: &Owner<'_>,
        device_id: &str,
    ) -> StoreResult<bool> {
        let sql = format!(
            "DELETE FROM {} WHERE tenant_id = $1 AND {} = $2 AND id = $3",
            owner.device_table(),
            owner.column()
        );
        let n = on_pool!(&self.pool, p => {
            sqlx::query(&sql)
                .bind(tenant.as_str())
                .bind(owner.id())
                .bind(device_id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    /// Removes every device of the owner (a second-factor reset); returns how many went.
    pub async fn delete_all_devices(
        &self,
        tenant: &TenantId,
        owner: &Owner<'_>,
    ) -> StoreResult<u64> {
        let sql = format!(
            "DELETE FROM {} WHERE tenant_id = $1 AND {} = $2",
            owner.device_table(),
            owner.column()
        );
        let n = on_pool!(&self.pool, p => {
            sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(owner.id())
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
        owner: &Owner<'_>,
        device_id: &str,
        step: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE {} SET last_step = $4, last_used_at = $5 \
             WHERE tenant_id = $1 AND {} = $2 AND id = $3 AND kind = 'totp' \
             AND (last_step IS NULL OR last_step < $4)",
            owner.device_table(),
            owner.column()
        );
        let n = on_pool!(&self.pool, p => {
            sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(owner.id())
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
