-- Tenants and what belongs to their definition. Written in SQL that SQLite and
-- PostgreSQL both accept: TEXT ids, BIGINT Unix times, BOOLEAN flags.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    -- The policy and theme sections of the tenant file, as one JSON document.
    settings TEXT NOT NULL,
    current_terms_version TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Extra host names besides <slug>.<base domain>.
CREATE TABLE tenant_hosts (
    host TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
);
CREATE INDEX tenant_hosts_by_tenant ON tenant_hosts (tenant_id);

CREATE TABLE service_icons (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    position BIGINT NOT NULL,
    title TEXT NOT NULL,
    image TEXT NOT NULL,
    url TEXT NOT NULL,
    visible BOOLEAN NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE terms_versions (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    position BIGINT NOT NULL,
    published_at TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- Bumped in the same transaction as any tenant change; every node polls it and drops its
-- tenant cache when it moves.
CREATE TABLE tenant_generation (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO tenant_generation (id, generation) VALUES (1, 0);
