-- E-mail confirmation by link (tenants with first_login.confirm_email_by_link) and the
-- one-time tokens behind such links: stored as SHA-256 only, typed, expiring, single-use.

ALTER TABLE members ADD COLUMN email_confirmed BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE one_time_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    -- email_confirmation | password_reset | …
    purpose TEXT NOT NULL,
    -- What the token is about, e.g. the address being confirmed.
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX one_time_tokens_by_member ON one_time_tokens (tenant_id, member_id, purpose);
