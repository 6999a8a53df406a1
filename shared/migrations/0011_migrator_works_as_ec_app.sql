-- Whoever migrates can also work as ec_app, as the ops CLI does in every transaction (shared/db.py).
-- On Azure the migrating role is the server's Entra administrator (the ops group): not a superuser, so
-- since PostgreSQL 16 creating ec_app gave it ADMIN OPTION on the role but not the SET option that
-- SET ROLE needs ("permission denied to set role ec_app" from the first CLI command otherwise).
-- A superuser (the local embedded server) already can; the grant is then skipped.
DO $$
DECLARE
    needed text := CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'SET' ELSE 'MEMBER' END;
BEGIN
    IF NOT pg_has_role(current_user, 'ec_app', needed) THEN
        EXECUTE format('GRANT ec_app TO %I', current_user);
    END IF;
END
$$;
