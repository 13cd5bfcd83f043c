-- Society admins: their accounts, second factors, sessions, invitations and API tokens.
-- Sign-in flows now serve either kind of account; the audit log records who acted (a
-- member, an admin, the system or nobody known) and, for changes, the values before and
-- after; members carry the insurance card's 記号 and 番号 and an optional name in kana.

CREATE TABLE admins (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Lower case; the admin signs in with it.
    email TEXT NOT NULL,
    -- admin (everything) | operator (members and the audit log only)
    role TEXT NOT NULL,
    -- invited (no password yet) | active | disabled
    state TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    password_created_at BIGINT NOT NULL,
    failed_logins BIGINT NOT NULL,
    locked_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, email)
);

-- An admin's second factors: the same shape as mfa_devices, owned by an admin.
CREATE TABLE admin_devices (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    last_step BIGINT,
    credential_id TEXT,
    UNIQUE (tenant_id, admin_id, name)
);
CREATE UNIQUE INDEX admin_devices_by_credential ON admin_devices (tenant_id, credential_id);

-- Console sessions: the cookie holds a random token, this table its SHA-256.
CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    authenticated_at BIGINT NOT NULL,
    auth_method TEXT NOT NULL
);
CREATE INDEX admin_sessions_by_admin ON admin_sessions (tenant_id, admin_id);

-- Invitation links: SHA-256 of the token only, single use, expiring.
CREATE TABLE admin_invitations (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX admin_invitations_by_admin ON admin_invitations (tenant_id, admin_id);

-- Bearer tokens for scripts: SHA-256 only; a role no wider than its creator's.
CREATE TABLE admin_api_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX admin_api_tokens_by_tenant ON admin_api_tokens (tenant_id, created_at);

-- Sign-in flows of members or admins. Flows live for minutes: the ones in progress while
-- this migration runs are dropped, and their owners sign in again.
DROP TABLE login_flows;
CREATE TABLE login_flows (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Exactly one of the two is set.
    member_id TEXT REFERENCES members (id) ON DELETE CASCADE,
    admin_id TEXT REFERENCES admins (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    birth_date_verified BOOLEAN NOT NULL,
    return_to TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    factor_verified BOOLEAN NOT NULL DEFAULT FALSE,
    pending_secret TEXT,
    factor_method TEXT,
    setup_done BOOLEAN NOT NULL DEFAULT FALSE,
    ceremony TEXT,
    ceremony_expires_at BIGINT,
    email_code_hash TEXT,
    email_code_sent_at BIGINT,
    email_code_expires_at BIGINT,
    email_code_attempts BIGINT NOT NULL DEFAULT 0,
    CHECK ((member_id IS NULL) <> (admin_id IS NULL))
);

-- Who acted: member | admin | system | anonymous (a failed login of an unknown user ID).
ALTER TABLE audit_events ADD COLUMN actor_type TEXT NOT NULL DEFAULT 'member';
ALTER TABLE audit_events ADD COLUMN actor_id TEXT;
ALTER TABLE audit_events ADD COLUMN before_value TEXT;
ALTER TABLE audit_events ADD COLUMN after_value TEXT;
UPDATE audit_events SET actor_type = 'anonymous' WHERE member_id IS NULL;
UPDATE audit_events SET actor_id = member_id WHERE member_id IS NOT NULL;
CREATE INDEX audit_events_by_member ON audit_events (tenant_id, member_id, created_at);
CREATE INDEX audit_events_by_event ON audit_events (tenant_id, event, created_at);

-- The insurance card's 記号 and 番号 (optional, from the roster) and a name in kana.
ALTER TABLE members ADD COLUMN card_symbol TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN card_number TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN name_kana TEXT NOT NULL DEFAULT '';
CREATE INDEX members_by_email ON members (tenant_id, email);
CREATE INDEX members_by_birth_date ON members (tenant_id, birth_date);
-- What a disabled member's state was, so that 「利用再開」 restores it.
ALTER TABLE members ADD COLUMN state_before_disable TEXT;

-- Temporary credentials waiting to be printed on a notification letter: sealed with
-- AES-256-GCM, kept for an hour, grouped by the batch printed together.
CREATE TABLE member_letters (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    batch_id TEXT NOT NULL,
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX member_letters_by_batch ON member_letters (tenant_id, batch_id, position);
