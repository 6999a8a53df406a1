-- Short-lived admin bearer tokens, issued to a user who signs in to an `admin` app (the admin
-- dashboard) and accepted by /api/admin/... like an admin key. Stored as SHA-256, like every
-- credential this service issues; global, like admin_keys (the scope says what they open).
CREATE TABLE admin_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash  text NOT NULL UNIQUE,
    scope       text NOT NULL CHECK (scope = 'operator' OR scope ~ '^tenant:[a-z0-9]+(-[a-z0-9]+)*$'),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),   -- the signed-in user's tenant
    user_id     uuid NOT NULL REFERENCES users (id),
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX admin_tokens_expires ON admin_tokens (expires_at);
GRANT SELECT, INSERT, DELETE ON admin_tokens TO ec_app;
