-- 「一括登録」: a roster checked by a dry run waits here until 「取り込む」 commits it, all
-- rows or none. The rows and, after the import, the credentials for the mail merge are
-- personal data and secrets: both are sealed. The credentials are handed out once.
CREATE TABLE member_imports (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    admin_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    encoding TEXT NOT NULL,
    total BIGINT NOT NULL,
    -- Sealed JSON of the checked rows (context: the import id).
    rows TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    committed_at BIGINT,
    created_members BIGINT,
    letter_batch TEXT,
    -- Sealed CSV of the new members' credentials; emptied when downloaded.
    credentials TEXT,
    credentials_taken_at BIGINT
);
CREATE INDEX member_imports_by_tenant ON member_imports (tenant_id, created_at);
