-- Operating many tenants on many nodes.

-- Each tenant remembers the value of the global generation counter at its last change, so a
-- node that polls can tell which tenants changed rather than dropping every cached one.
ALTER TABLE tenants ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tenants_by_generation ON tenants (generation);

-- Attempt counters of the throttles (sign-in, recovery requests) per key and fixed window,
-- incremented atomically so a burst from one address is cut at the limit on every node.
CREATE TABLE throttle_counters (
    key TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX throttle_counters_by_window ON throttle_counters (window_start);

-- Platform operators' bearer tokens for the ops API: SHA-256 only.
CREATE TABLE operator_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

-- What the retention sweeper looks for.
CREATE INDEX login_flows_by_expiry ON login_flows (expires_at);
CREATE INDEX one_time_tokens_by_expiry ON one_time_tokens (expires_at);
CREATE INDEX admin_invitations_by_expiry ON admin_invitations (expires_at);
CREATE INDEX sessions_by_last_seen ON sessions (tenant_id, last_seen_at);
CREATE INDEX admin_sessions_by_last_seen ON admin_sessions (tenant_id, last_seen_at);
