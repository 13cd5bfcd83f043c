-- Every mail is written here in the same transaction as the change that causes it, then
-- delivered by the workers of every node. Subjects and bodies are encrypted (they carry
-- codes and links) and blanked once delivered.

CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    template TEXT NOT NULL,
    recipient TEXT NOT NULL,
    from_name TEXT NOT NULL,
    from_address TEXT NOT NULL,
    -- AES-256-GCM sealed JSON of {subject, text, html}; empty once sent.
    content TEXT NOT NULL,
    -- queued | sending | sent | failed
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    -- The worker that claimed the mail, and until when the claim holds.
    lease_owner TEXT,
    lease_until_ms BIGINT,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    sent_ms BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_ms);
CREATE INDEX mail_outbox_by_recipient ON mail_outbox (tenant_id, recipient, created_ms);
CREATE INDEX mail_outbox_by_tenant ON mail_outbox (tenant_id, created_ms);
