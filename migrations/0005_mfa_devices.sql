-- Second-factor devices a member has registered: TOTP authenticator apps now, passkeys later.
-- Every row carries its tenant id; a device name is unique per member.

CREATE TABLE mfa_devices (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    -- totp | passkey
    kind TEXT NOT NULL,
    -- Chosen by the member (「デバイス名」), shown when picking a device at login.
    name TEXT NOT NULL,
    -- totp: the secret sealed with AES-256-GCM (context: the device id); passkey: its JSON.
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    -- The last accepted TOTP time step: a code is accepted once only, on every node.
    last_step BIGINT,
    UNIQUE (tenant_id, member_id, name)
);
CREATE INDEX mfa_devices_by_member ON mfa_devices (tenant_id, member_id);
