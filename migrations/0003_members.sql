-- Members, their sessions and sign-in flows, terms acceptances and the audit log.
-- Every member-owned row carries its tenant id.

CREATE TABLE members (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Lower case; the temporary one from the letter until the member chooses their own.
    user_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    password_created_at BIGINT NOT NULL,
    -- temporary: credentials from a letter or a reset; active; disabled
    state TEXT NOT NULL,
    user_id_chosen BOOLEAN NOT NULL,
    email_reviewed BOOLEAN NOT NULL,
    -- passkey | totp | email_otp, chosen at first login
    mfa_method TEXT,
    failed_logins BIGINT NOT NULL,
    -- Unix time the lock lifts; NULL when not locked.
    locked_until BIGINT,
    terms_version TEXT,
    terms_accepted_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, user_id)
);

CREATE TABLE terms_acceptances (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    accepted_at BIGINT NOT NULL
);
CREATE INDEX terms_acceptances_by_member ON terms_acceptances (tenant_id, member_id);

-- Full sessions: the cookie holds a random token, this table its SHA-256.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    -- When the member last proved who they are (step-up compares against it).
    authenticated_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_member ON sessions (tenant_id, member_id);

-- Sign-in in progress (first login, daily login, step-up): bound to a pre-session cookie.
CREATE TABLE login_flows (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    -- login | step_up
    purpose TEXT NOT NULL,
    birth_date_verified BOOLEAN NOT NULL,
    -- Where a step-up returns to.
    return_to TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    member_id TEXT,
    event TEXT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, created_at);
CREATE INDEX audit_events_by_ip ON audit_events (ip, event, created_at);
