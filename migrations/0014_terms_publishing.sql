-- Terms of use published from the console: who published each version and when it went
-- live, the address each acceptance came from (the evidence a society keeps), and the one
-- draft of a new version.
ALTER TABLE terms_versions ADD COLUMN published_by TEXT NOT NULL DEFAULT 'file';
ALTER TABLE terms_versions ADD COLUMN published_unix BIGINT;
ALTER TABLE terms_acceptances ADD COLUMN ip TEXT NOT NULL DEFAULT '';
CREATE INDEX terms_acceptances_by_version ON terms_acceptances (tenant_id, version);

CREATE TABLE terms_drafts (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    -- The date shown to members, YYYY-MM-DD.
    published_at TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
