-- Images a society uploads (logo, service icons), served at /static/uploads/<name> on its
-- host. Names are derived from the content, so a file never changes under its name and
-- every node serves the same bytes. Stored as base64 text, which both databases keep alike.
CREATE TABLE tenant_assets (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, path)
);
