-- SCIM: the protocol's representation of the identity store's users and groups.
--
-- A SCIM user is a users row (the person, shared with every channel) plus a scim_users row holding
-- the resource as the IdP wrote it (every attribute but id and meta), its userName and externalId
-- in columns for indexed lookups, its version (the ETag) and its dates. Group members live in the
-- identity store's group_memberships; scim_groups holds the rest of a group resource. Deleting a
-- SCIM resource deletes its scim_* row and tombstones the identity store's row.

-- Whether a JSON value is "present" in the sense of RFC 7644 §3.4.2.2 (pr): some non-null scalar
-- somewhere in it, an empty string not counting.
CREATE FUNCTION scim_present(value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(jsonb_path_exists(value,
        '$.** ? (@.type() == "boolean" || @.type() == "number" || (@.type() == "string" && @ != ""))'), false) $$;

-- The entries of a multi-valued attribute (nothing when it is absent or not a list).
CREATE FUNCTION scim_entries(value jsonb) RETURNS SETOF jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT jsonb_array_elements(CASE WHEN jsonb_typeof(value) = 'array' THEN value ELSE '[]' END) $$;

-- The comparison key of a string: NFC, lowercase (scim2-models' default_comparison_key).
CREATE FUNCTION scim_key(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT normalize(lower(normalize(value, NFC)), NFC) $$;

CREATE TABLE scim_users (
    user_id       uuid PRIMARY KEY REFERENCES users (id),
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    user_name     text NOT NULL,
    user_name_key text NOT NULL,
    external_id   text,
    document      jsonb NOT NULL,
    version       bigint NOT NULL DEFAULT 1,
    created       timestamptz NOT NULL DEFAULT now(),
    last_modified timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (tenant_id, user_name_key);
CREATE INDEX scim_users_external_id ON scim_users (tenant_id, external_id);
CREATE INDEX scim_users_tenant_order ON scim_users (tenant_id, user_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON scim_users TO ec_app;

-- Every email value of a SCIM user, by comparison key: `emails.value eq` and
-- `emails[type eq "work"].value eq` filters look here first.
CREATE TABLE scim_user_emails (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    user_id   uuid NOT NULL REFERENCES scim_users (user_id) ON DELETE CASCADE,
    value_key text NOT NULL
);
CREATE INDEX scim_user_emails_value ON scim_user_emails (tenant_id, value_key);
CREATE INDEX scim_user_emails_user ON scim_user_emails (user_id);
GRANT SELECT, INSERT, DELETE ON scim_user_emails TO ec_app;

CREATE TABLE scim_groups (
    group_id         uuid PRIMARY KEY REFERENCES groups (id),
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    display_name     text NOT NULL,
    display_name_key text NOT NULL,
    external_id      text,
    document         jsonb NOT NULL,
    version          bigint NOT NULL DEFAULT 1,
    created          timestamptz NOT NULL DEFAULT now(),
    last_modified    timestamptz NOT NULL DEFAULT now()
);
-- Entra ID requires a group's displayName to be unique.
CREATE UNIQUE INDEX scim_groups_display_name ON scim_groups (tenant_id, display_name_key);
CREATE INDEX scim_groups_external_id ON scim_groups (tenant_id, external_id);
CREATE INDEX scim_groups_tenant_order ON scim_groups (tenant_id, group_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON scim_groups TO ec_app;


-- The admin dashboard shows a user's last change.
CREATE INDEX change_log_entity ON change_log (tenant_id, entity_id, seq);
CREATE INDEX change_log_related ON change_log (tenant_id, related_id, seq) WHERE related_id IS NOT NULL;

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY['scim_users', 'scim_user_emails', 'scim_groups'] LOOP
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
