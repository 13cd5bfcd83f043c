-- A society's settings, look and service menu are published as numbered revisions: each
-- keeps the whole definition as published, who published it, when, and what changed
-- field by field, so any earlier one can be published again.
CREATE TABLE tenant_revisions (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    -- JSON: {"settings": …, "services": […]}
    definition TEXT NOT NULL,
    -- JSON: [{"field": "password.min_length", "before": 8, "after": 12}, …]
    changes TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    -- 'admin:<id>' for the console and the API, 'file' for `portal tenant apply`.
    published_by TEXT NOT NULL,
    -- Set when this revision republished an earlier one (「この版に戻す」).
    restored_from BIGINT,
    PRIMARY KEY (tenant_id, number)
);

-- The one draft of a society, shared by its admins until it is published or discarded.
CREATE TABLE tenant_drafts (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    definition TEXT NOT NULL,
    -- tenants.revision when the draft was started: a draft older than the live definition
    -- is shown as such.
    base_revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- A member whose password no longer meets the society's rules chooses a new one after
-- signing in.
ALTER TABLE login_flows ADD COLUMN password_outdated BOOLEAN NOT NULL DEFAULT FALSE;
