-- The shared model: tenants in full, their apps and credentials, the identity store and its change
-- log, SCIM tokens, admin keys and the admin audit.
--
-- Isolation: the app works as role ec_app (shared/db.py switches to it in every transaction with
-- SET LOCAL ROLE, whatever role it logged in as), which holds only the grants below and never
-- bypasses row-level security. Every table with a tenant_id column that holds a tenant's data has
-- RLS enabled and forced, with the policy tenant_isolation: a row is visible only to the
-- transaction's tenant (app.tenant_id), or to a transaction that explicitly works across tenants
-- (app.all_tenants = 'on': lookups by a global identifier, retention). The registry tables
-- (tenants, tenant_domains, admin_keys, admin_audit) are global by design.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ec_app') THEN
        CREATE ROLE ec_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO ec_app;
GRANT SELECT ON schema_migrations TO ec_app;

CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE FUNCTION app_all_tenants() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('app.all_tenants', true), '') = 'on' $$;

-- Tenants ----------------------------------------------------------------------------------------

ALTER TABLE tenants
    ADD COLUMN support_contact        text,
    ADD COLUMN workos_organization_id text UNIQUE,
    ADD COLUMN sso_provider           text NOT NULL DEFAULT 'workos' CHECK (sso_provider IN ('workos', 'entra')),
    ADD COLUMN entra_tenant_id        uuid,
    ADD COLUMN entra_client_id        uuid,
    ADD COLUMN teams_tenant_id        uuid UNIQUE,
    ADD COLUMN provisioning_channel   text NOT NULL DEFAULT 'scim'
                                      CHECK (provisioning_channel IN ('scim', 'workos', 'sso-jit')),
    ADD COLUMN routing                jsonb NOT NULL DEFAULT '{"rules": [], "default_app": null}',
    ADD COLUMN hrms                   jsonb,
    ADD CONSTRAINT tenants_entra_sso_complete
        CHECK (sso_provider <> 'entra' OR (entra_tenant_id IS NOT NULL AND entra_client_id IS NOT NULL));
GRANT SELECT, INSERT, UPDATE ON tenants TO ec_app;

CREATE TABLE tenant_domains (
    domain     text PRIMARY KEY CHECK (domain = lower(domain) AND domain ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$'),
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_domains_tenant ON tenant_domains (tenant_id);
GRANT SELECT, INSERT, DELETE ON tenant_domains TO ec_app;

-- Apps and their credentials ---------------------------------------------------------------------

CREATE TABLE apps (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    name                 text NOT NULL CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(name) <= 63),
    kind                 text NOT NULL CHECK (kind IN ('instance', 'thinkific', 'admin')),
    base_url             text NOT NULL,
    handover_path        text NOT NULL CHECK (handover_path LIKE '/%'),
    post_logout_url      text,
    allowed_roles        text[] NOT NULL DEFAULT '{}',
    client_id            text NOT NULL UNIQUE,
    outbound_secret_refs jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON apps TO ec_app;

CREATE TABLE app_secrets (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    app_id       uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    secret_hash  text NOT NULL UNIQUE,
    hint         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX app_secrets_app ON app_secrets (app_id) WHERE revoked_at IS NULL;
GRANT SELECT, INSERT, UPDATE ON app_secrets TO ec_app;

-- Identity store ---------------------------------------------------------------------------------

CREATE TABLE users (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    primary_email      text,
    given_name         text,
    family_name        text,
    display_name       text,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'deleted')),
    entra_object_id    uuid,
    role_slugs         text[] NOT NULL DEFAULT '{}',
    created_by_channel text NOT NULL,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deactivated_at     timestamptz,
    deleted_at         timestamptz
);
-- One live user per address and per Entra object in a tenant; tombstones keep theirs.
CREATE UNIQUE INDEX users_email_per_tenant ON users (tenant_id, lower(primary_email))
    WHERE status <> 'deleted' AND primary_email IS NOT NULL;
CREATE UNIQUE INDEX users_entra_object_per_tenant ON users (tenant_id, entra_object_id)
    WHERE status <> 'deleted' AND entra_object_id IS NOT NULL;
CREATE INDEX users_email_any_status ON users (tenant_id, lower(primary_email));
GRANT SELECT, INSERT, UPDATE ON users TO ec_app;

CREATE TABLE user_identities (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    user_id      uuid NOT NULL REFERENCES users (id),
    channel      text NOT NULL CHECK (channel IN ('scim', 'workos', 'entra', 'sso')),
    issuer       text NOT NULL,
    external_id  text NOT NULL,
    email        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, channel, issuer, external_id)
);
CREATE INDEX user_identities_user ON user_identities (user_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON user_identities TO ec_app;

CREATE TABLE groups (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    channel      text NOT NULL CHECK (channel IN ('scim', 'workos', 'entra', 'sso')),
    issuer       text NOT NULL,
    external_id  text NOT NULL,
    display_name text NOT NULL,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    UNIQUE (tenant_id, channel, issuer, external_id)
);
GRANT SELECT, INSERT, UPDATE ON groups TO ec_app;

CREATE TABLE group_memberships (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    group_id   uuid NOT NULL REFERENCES groups (id),
    user_id    uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_memberships_user ON group_memberships (user_id);
GRANT SELECT, INSERT, DELETE ON group_memberships TO ec_app;

-- The change log: append-only (no UPDATE or DELETE grant), numbered per tenant without gaps by
-- tenant_change_counters, whose row lock is held until commit (see shared/identity/changelog.py).
CREATE TABLE tenant_change_counters (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id),
    last_seq  bigint NOT NULL DEFAULT 0
);
GRANT SELECT, INSERT, UPDATE ON tenant_change_counters TO ec_app;

CREATE TABLE change_log (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    seq         bigint NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor_kind  text NOT NULL CHECK (actor_kind IN ('scim-token', 'idp', 'sso', 'admin', 'system')),
    actor_id    text NOT NULL,
    entity      text NOT NULL CHECK (entity IN ('user', 'group', 'membership')),
    entity_id   uuid NOT NULL,
    related_id  uuid,
    action      text NOT NULL,
    changes     jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, seq)
);
GRANT SELECT, INSERT ON change_log TO ec_app;

-- SCIM bearer tokens (stored as SHA-256) -----------------------------------------------------------

CREATE TABLE scim_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    name         text NOT NULL,
    token_hash   text NOT NULL UNIQUE,
    hint         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
GRANT SELECT, INSERT, UPDATE ON scim_tokens TO ec_app;

-- Admin keys and the audit of every admin action (global registries) -------------------------------

CREATE TABLE admin_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    scope        text NOT NULL CHECK (scope = 'operator' OR scope ~ '^tenant:[a-z0-9]+(-[a-z0-9]+)*$'),
    tenant_id    uuid REFERENCES tenants (id),
    key_hash     text NOT NULL UNIQUE,
    hint         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CHECK ((scope = 'operator') = (tenant_id IS NULL))
);
GRANT SELECT, INSERT, UPDATE ON admin_keys TO ec_app;

CREATE TABLE admin_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    scope       text,
    tenant_id   uuid,
    action      text NOT NULL,
    target      text,
    source      text NOT NULL,
    outcome     text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX admin_audit_occurred ON admin_audit (occurred_at);
CREATE INDEX admin_audit_tenant ON admin_audit (tenant_id, occurred_at) WHERE tenant_id IS NOT NULL;
GRANT SELECT, INSERT, DELETE ON admin_audit TO ec_app;

-- Row-level security on every tenant table -------------------------------------------------------

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY[
        'apps', 'app_secrets', 'users', 'user_identities', 'groups', 'group_memberships',
        'tenant_change_counters', 'change_log', 'scim_tokens'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = app_current_tenant() OR app_all_tenants()) '
            'WITH CHECK (tenant_id = app_current_tenant() OR app_all_tenants())',
            tenant_table);
    END LOOP;
END
$$;
