"""Ops CLI: ``python -m shared.cli COMMAND``.

Each command is a thin call into the domain. Changes are audited (actor ``cli:<user>@<host>``) in
the transaction that makes them. Lists take ``--json``. A secret that a command issues (an admin
key, a SCIM token, an app secret) is printed once, as the last line of stdout. Errors are one line
on stderr: exit code 1 when the operation was refused or failed, 2 when the command line was wrong.
Run from a checkout, the CLI first fills unset settings from ``local.settings.json`` and from what
``make dev`` started (``.local/dev-settings.json``), so it works against the local stack as is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from shared import config

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_SETTINGS_FILES = (PROJECT_ROOT / "local.settings.json", PROJECT_ROOT / ".local" / "dev-settings.json")


# --- output --------------------------------------------------------------------------------------


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


def _print_table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    rows = list(rows)
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[index]) for line in cells)) for index, column in enumerate(columns)]
    print("  ".join(column.upper().ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip())
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return str(value)


def _print_record(record: dict[str, Any]) -> None:
    width = max(len(name) for name in record)
    for name, value in record.items():
        shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else _cell(value)
        print(f"{name:<{width}}  {shown}")


def _print_secret(label: str, value: str) -> None:
    print(f"{label} (shown once, store it now):", file=sys.stderr)
    print(value)


# --- helpers ---------------------------------------------------------------------------------------


def _audit(conn: Any, action: str, *, tenant_id: str | None = None, target: str | None = None,
           details: dict[str, Any] | None = None) -> None:
    from shared.admin.audit import AuditEntry, cli_actor, record

    record(conn, AuditEntry(cli_actor(), action, "cli", "ok", tenant_id=tenant_id, target=target, details=details))


def _tenant(conn: Any, slug: str) -> Any:
    from shared.tenants.registry import get_tenant

    return get_tenant(conn, slug)


def _key_value(texts: Sequence[str] | None, what: str) -> dict[str, str]:
    from shared.tenants.models import InvalidValue

    pairs = {}
    for text in texts or ():
        name, separator, value = text.partition("=")
        if not separator or not name or not value:
            raise InvalidValue(what, f"{text!r} must look like NAME=VALUE")
        pairs[name] = value
    return pairs


# --- commands: schema, queues, health ------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from shared import migrations

    if args.check:
        from shared.db import connect_direct

        with connect_direct() as conn:
            pending = migrations.pending_migrations(migrations.applied_migrations(conn))
        for migration in pending:
            print(f"pending  {migration.name}")
        print("schema is current" if not pending else f"{len(pending)} migration(s) pending")
        return 1 if pending else 0
    applied = migrations.apply_migrations()
    for migration in applied:
        print(f"applied  {migration.name}")
    print("schema is current" + (f" ({len(applied)} applied now)" if applied else ""))
    return 0


def cmd_db_app_role(args: argparse.Namespace) -> int:
    from shared.app_role import ensure_app_role

    report = ensure_app_role(args.identity, object_id=args.object_id)
    for line in report.lines():
        print(line)
    return 0


def cmd_queues_ensure(args: argparse.Namespace) -> int:
    from shared import queues

    for name in queues.ensure_queues():
        print(f"created  {name}")
    print(f"{len(queues.app_queue_names())} queues present")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from shared.health import check_health

    report = check_health()
    _print_json(report.as_dict())
    return 0 if report.ok else 1


def cmd_retention_purge(args: argparse.Namespace) -> int:
    from shared.retention import purge_expired

    for table, count in purge_expired().items():
        print(f"{table}: {count} row(s) purged")
    return 0


# --- commands: tenants -----------------------------------------------------------------------------

_TENANT_COLUMNS = ("slug", "display_name", "status", "provisioning_channel", "sso_provider", "domains")


def _routes(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The routing rules to set: none given leaves them, --clear-routes empties them."""
    if getattr(args, "clear_routes", False):
        return ()
    return tuple(args.route) if getattr(args, "route", None) else None


def _tenant_changes(args: argparse.Namespace) -> Any:
    from shared.tenants.registry import TenantChanges

    return TenantChanges(
        display_name=args.name, support_contact=args.support_contact, workos_organization_id=args.workos_org,
        sso_provider=args.sso_provider, entra_tenant_id=args.entra_tenant_id, entra_client_id=args.entra_client_id,
        teams_tenant_id=args.teams_tenant_id, provisioning_channel=args.provisioning,
        add_domains=tuple(args.domain or ()), remove_domains=tuple(getattr(args, "remove_domain", None) or ()),
        routes=_routes(args),
        default_app=getattr(args, "default_app", None),
        hrms=json.loads(args.hrms) if getattr(args, "hrms", None) else None,
        allow_idp_initiated={"yes": True, "no": False}.get(getattr(args, "idp_initiated", None) or ""),
    )


def cmd_tenant_add(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.models import InvalidValue
    from shared.tenants.registry import TenantChanges, create_tenant, update_tenant

    if args.create_workos_org and args.workos_org:
        raise InvalidValue("workos_organization_id", "give --workos-org or --create-workos-org, not both")
    with db.transaction() as conn:
        tenant = create_tenant(conn, args.slug, _tenant_changes(args))
        if args.create_workos_org:
            from shared import workos_api

            # Inside the transaction: if WorkOS refuses, no tenant is left without its organization.
            organization = workos_api.create_organization(tenant.display_name, list(tenant.domains))
            tenant = update_tenant(conn, tenant.slug, TenantChanges(workos_organization_id=organization["id"]))
        _audit(conn, "tenant.add", tenant_id=tenant.id, target=tenant.slug,
               details={"workos_organization_id": tenant.workos_organization_id} if args.create_workos_org else None)
    print(f"created tenant {tenant.slug} ({tenant.id})")
    if args.create_workos_org:
        print(f"created WorkOS organization {tenant.workos_organization_id} with domains {', '.join(tenant.domains)}")
    return 0


def cmd_tenant_portal_link(args: argparse.Namespace) -> int:
    from shared import db, workos_api
    from shared.tenants.models import InvalidValue

    with db.transaction() as conn:
        tenant = _tenant(conn, args.slug)
        if not tenant.workos_organization_id:
            raise InvalidValue("workos_organization_id", f"tenant {tenant.slug!r} has no WorkOS organization")
        link = workos_api.portal_link(tenant.workos_organization_id, args.intent)
        _audit(conn, "tenant.portal-link", tenant_id=tenant.id, target=tenant.slug, details={"intent": args.intent})
    print(f"WorkOS Admin Portal ({args.intent}) for {tenant.slug}, valid for 5 minutes:", file=sys.stderr)
    print(link)
    return 0


def cmd_directory_poll(args: argparse.Namespace) -> int:
    from shared.directory.poller import poll

    _print_json(poll().as_dict())
    return 0


def cmd_directory_events(args: argparse.Namespace) -> int:
    from shared import db

    with db.transaction(all_tenants=True) as conn:
        tenant_id = _tenant(conn, args.tenant).id if args.tenant else None
        rows = conn.execute(
            "SELECT e.id, e.event, coalesce(t.slug, '-') AS tenant, e.directory_id, e.status, e.outcome,"
            " e.created_at, e.received_via FROM workos_events e LEFT JOIN tenants t ON t.id = e.tenant_id"
            " WHERE (%s::text IS NULL OR e.status = %s) AND (%s::uuid IS NULL OR e.tenant_id = %s::uuid)"
            " ORDER BY e.created_at DESC, e.id DESC LIMIT %s",
            [args.status, args.status, tenant_id, tenant_id, args.limit]).fetchall()
    columns = ("id", "event", "tenant", "directory_id", "status", "outcome", "created_at", "received_via")
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    _print_json(records) if args.json else _print_table(records, ("id", "event", "tenant", "status", "outcome"))
    return 0


def cmd_tenant_update(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.registry import update_tenant

    with db.transaction() as conn:
        tenant = update_tenant(conn, args.slug, _tenant_changes(args))
        _audit(conn, "tenant.update", tenant_id=tenant.id, target=tenant.slug)
    _print_record(tenant.as_dict())
    return 0


def cmd_tenant_list(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.registry import list_tenants

    with db.transaction() as conn:
        tenants = [tenant.as_dict() for tenant in list_tenants(conn)]
    _print_json(tenants) if args.json else _print_table(tenants, _TENANT_COLUMNS)
    return 0


def cmd_tenant_show(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.apps import list_apps

    with db.transaction() as conn:
        tenant = _tenant(conn, args.slug)
        record = {**tenant.as_dict(), "apps": [app.name for app in list_apps(conn, tenant)]}
    _print_json(record) if args.json else _print_record(record)
    return 0


def _set_status(args: argparse.Namespace, status: str) -> int:
    from shared import db
    from shared.tenants.models import TenantStatus
    from shared.tenants.registry import set_status

    with db.transaction() as conn:
        tenant = set_status(conn, args.slug, TenantStatus(status))
        _audit(conn, f"tenant.{'suspend' if status == 'suspended' else 'activate'}", tenant_id=tenant.id,
               target=tenant.slug)
    print(f"tenant {tenant.slug} is {tenant.status.value}")
    return 0


# --- commands: apps --------------------------------------------------------------------------------

_APP_COLUMNS = ("name", "kind", "base_url", "handover_path", "allowed_roles", "client_id", "live_secrets")


def cmd_app_add(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.apps import DEFAULT_HANDOVER_PATH, AppSpec, add_app

    spec = AppSpec(kind=args.kind, base_url=args.base_url, handover_path=args.handover_path or DEFAULT_HANDOVER_PATH,
                   post_logout_url=args.post_logout_url, allowed_roles=tuple(args.role or ()),
                   outbound_secret_refs=_key_value(args.outbound_secret, "outbound secret"))
    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        app = add_app(conn, tenant, args.name, spec)
        _audit(conn, "app.add", tenant_id=tenant.id, target=f"{tenant.slug}/{app.name}")
    print(f"added app {app.name} to {tenant.slug}: client id {app.client_id}")
    print(f"create its first secret with: python -m shared.cli app secret create {tenant.slug} {app.name}")
    return 0


def cmd_app_list(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.apps import list_apps

    with db.transaction() as conn:
        apps = [app.as_dict() for app in list_apps(conn, _tenant(conn, args.tenant))]
    _print_json(apps) if args.json else _print_table(apps, _APP_COLUMNS)
    return 0


def cmd_app_remove(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.apps import remove_app

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        app = remove_app(conn, tenant, args.name)
        _audit(conn, "app.remove", tenant_id=tenant.id, target=f"{tenant.slug}/{app.name}")
    print(f"removed app {app.name} from {tenant.slug}")
    return 0


def cmd_app_secret_create(args: argparse.Namespace) -> int:
    from shared import db
    from shared.admin.audit import cli_actor
    from shared.tenants.apps import create_app_secret

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        app, secret, value = create_app_secret(conn, tenant, args.app, created_by=cli_actor())
        _audit(conn, "app.secret.create", tenant_id=tenant.id, target=f"{tenant.slug}/{app.name}",
               details={"secret_id": secret.id, "hint": secret.hint})
    print(f"client id {app.client_id}, secret id {secret.id}")
    _print_secret("client secret", value)
    return 0


def cmd_app_secret_rotate(args: argparse.Namespace) -> int:
    from shared import db
    from shared.admin.audit import cli_actor
    from shared.tenants.apps import rotate_app_secret

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        app, secret, value, revoked = rotate_app_secret(conn, tenant, args.app, created_by=cli_actor())
        _audit(conn, "app.secret.rotate", tenant_id=tenant.id, target=f"{tenant.slug}/{app.name}",
               details={"secret_id": secret.id, "revoked": [old.id for old in revoked]})
    for old in revoked:
        print(f"revoked secret {old.id} ({old.hint}), the older of two live ones")
    print(f"client id {app.client_id}, new secret id {secret.id}; the previous secret stays live until revoked")
    _print_secret("client secret", value)
    return 0


def cmd_app_secret_revoke(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.apps import revoke_app_secret

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        secret = revoke_app_secret(conn, tenant, args.app, args.secret_id)
        _audit(conn, "app.secret.revoke", tenant_id=tenant.id, target=f"{tenant.slug}/{args.app}",
               details={"secret_id": secret.id})
    print(f"revoked secret {secret.id} ({secret.hint})")
    return 0


def cmd_app_secret_list(args: argparse.Namespace) -> int:
    from shared import db
    from shared.tenants.apps import list_app_secrets

    with db.transaction() as conn:
        secrets = [vars(secret) for secret in list_app_secrets(conn, _tenant(conn, args.tenant), args.app)]
    _print_json(secrets) if args.json else _print_table(secrets, ("id", "hint", "created_at", "revoked_at"))
    return 0


# --- commands: admin keys and SCIM tokens ------------------------------------------------------------


def cmd_admin_key_create(args: argparse.Namespace) -> int:
    from shared import db
    from shared.admin.audit import cli_actor
    from shared.admin.keys import create_admin_key

    with db.transaction() as conn:
        key, value = create_admin_key(conn, args.scope, args.name, created_by=cli_actor())
        _audit(conn, "admin-key.create", target=key.id, details={"scope": key.scope, "hint": key.hint})
    print(f"admin key {key.id} ({key.name}), scope {key.scope}")
    _print_secret("admin key", value)
    return 0


def cmd_admin_key_list(args: argparse.Namespace) -> int:
    from shared import db
    from shared.admin.keys import list_admin_keys

    with db.transaction() as conn:
        rows = [key.as_dict() for key in list_admin_keys(conn)]
    _print_json(rows) if args.json else _print_table(rows, ("id", "name", "scope", "hint", "created_at", "revoked_at"))
    return 0


def cmd_admin_key_revoke(args: argparse.Namespace) -> int:
    from shared import db
    from shared.admin.keys import revoke_admin_key

    with db.transaction() as conn:
        key = revoke_admin_key(conn, args.key_id)
        _audit(conn, "admin-key.revoke", target=key.id)
    print(f"revoked admin key {key.id} ({key.name})")
    return 0


def cmd_scim_token_create(args: argparse.Namespace) -> int:
    from shared import db
    from shared.admin.audit import cli_actor
    from shared.scim.tokens import create_scim_token

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        token, value = create_scim_token(conn, tenant, args.name, created_by=cli_actor())
        _audit(conn, "scim-token.create", tenant_id=tenant.id, target=token.id, details={"hint": token.hint})
    print(f"SCIM token {token.id} ({token.name}) for {tenant.slug}")
    _print_secret("SCIM token", value)
    return 0


def cmd_scim_token_list(args: argparse.Namespace) -> int:
    from shared import db
    from shared.scim.tokens import list_scim_tokens

    with db.transaction() as conn:
        rows = [token.as_dict() for token in list_scim_tokens(conn, _tenant(conn, args.tenant))]
    columns = ("id", "name", "hint", "created_at", "last_used_at", "revoked_at")
    _print_json(rows) if args.json else _print_table(rows, columns)
    return 0


def cmd_scim_token_revoke(args: argparse.Namespace) -> int:
    from shared import db
    from shared.scim.tokens import revoke_scim_token

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        token = revoke_scim_token(conn, tenant, args.token_id)
        _audit(conn, "scim-token.revoke", tenant_id=tenant.id, target=token.id)
    print(f"revoked SCIM token {token.id} ({token.name})")
    return 0


# --- commands: HRMS ----------------------------------------------------------------------------------


def cmd_hrms_sync(args: argparse.Namespace) -> int:
    from shared import db
    from shared.admin.audit import cli_actor
    from shared.hrms.engine import start_run

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
    run = start_run(tenant.id, "full" if args.full else "incremental", requested_by=cli_actor())
    with db.transaction() as conn:
        _audit(conn, "hrms.sync", tenant_id=tenant.id, target=run.id, details={"mode": run.mode})
    state = "queued" if run.created else f"already {run.status} (one run per tenant at a time)"
    print(f"{run.mode} sync of {tenant.slug}: run {run.id} {state}")
    return 0


def cmd_hrms_runs(args: argparse.Namespace) -> int:
    from shared import db
    from shared.hrms.runs import list_runs

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        db.use_tenant(conn, tenant.id)
        rows = [run.as_dict() for run in list_runs(conn, tenant.id, limit=args.limit)]
    columns = ("run_id", "mode", "status", "queued_at", "duration_seconds", "pages", "seen", "created", "updated",
               "departed", "unmatched", "errors", "failure_reason")
    _print_json(rows) if args.json else _print_table(rows, columns)
    return 0


def cmd_hrms_attributes(args: argparse.Namespace) -> int:
    from shared import db
    from shared.hrms.mapping import readable_attributes
    from shared.tenants.models import InvalidValue

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
    if tenant.hrms is None:
        raise InvalidValue("hrms", f"tenant {tenant.slug!r} has no HRMS settings (tenant update --hrms ...)")
    names = readable_attributes(tenant.hrms)
    _print_json(names) if args.json else print("\n".join(names))
    return 0


def cmd_hrms_mapping(args: argparse.Namespace) -> int:
    from shared import db
    from shared.hrms.mapping import save_mapping

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        if args.set or args.remove:
            current = dict(tenant.hrms.field_mapping) if tenant.hrms else {}
            current.update(_key_value(args.set, "mapping"))
            for key in args.remove or ():
                current.pop(key, None)
            tenant = save_mapping(conn, tenant, current)
            _audit(conn, "hrms.mapping", tenant_id=tenant.id, details={"field_mapping": current})
    mapping = tenant.hrms.field_mapping if tenant.hrms else {}
    _print_json(mapping) if args.json else _print_table(
        [{"context_key": key, "source_attribute": value} for key, value in sorted(mapping.items())],
        ("context_key", "source_attribute"))
    return 0


def cmd_hrms_writeback(args: argparse.Namespace) -> int:
    from shared import db
    from shared.hrms.writeback import configure

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        document: dict[str, Any] = {}
        for kind in ("completion", "assessment"):
            if getattr(args, kind):
                document[kind] = json.loads(getattr(args, kind))
        if args.enable or args.disable:
            document["enabled"] = bool(args.enable)
        if document:
            tenant = configure(conn, tenant, document)
            _audit(conn, "hrms.writeback", tenant_id=tenant.id, details=document)
    _print_json(tenant.hrms.writeback if tenant.hrms else {})
    return 0


def cmd_hrms_results(args: argparse.Namespace) -> int:
    from shared import db
    from shared.hrms.writeback import list_results

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        rows = list_results(conn, tenant.id, status=args.status, limit=args.limit)
    columns = ("result_id", "kind", "title", "completed_on", "status", "hrms_record_id", "attempts", "received_at",
               "failure_reason")
    _print_json(rows) if args.json else _print_table(rows, columns)
    return 0


# --- commands: users -------------------------------------------------------------------------------


def cmd_user_list(args: argparse.Namespace) -> int:
    from shared import db
    from shared.identity.models import UserStatus
    from shared.identity.store import list_users

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        users = [user.as_dict() for user in list_users(
            conn, tenant, status=UserStatus(args.status) if args.status else None, limit=args.limit)]
    columns = ("id", "primary_email", "display_name", "status", "role_slugs", "updated_at")
    _print_json(users) if args.json else _print_table(users, columns)
    return 0


def cmd_user_show(args: argparse.Namespace) -> int:
    from shared import db
    from shared.identity.store import find_user, user_identities

    with db.transaction() as conn:
        tenant = _tenant(conn, args.tenant)
        user = find_user(conn, tenant, args.user)
        record = {**user.as_dict(), "identities": [
            f"{row['channel']}:{row['issuer']}:{row['external_id']}" for row in user_identities(conn, tenant, user.id)]}
    _print_json(record) if args.json else _print_record(record)
    return 0


# --- the parser ------------------------------------------------------------------------------------


def _add_tenant_fields(parser: argparse.ArgumentParser, *, update: bool) -> None:
    parser.add_argument("--name", required=not update, help="display name")
    parser.add_argument("--domain", action="append", metavar="DOMAIN",
                        help="email domain of the tenant (repeat for several)" + ("; adds" if update else ""))
    parser.add_argument("--support-contact", help="email address or https URL shown on sign-in error pages")
    parser.add_argument("--workos-org", help="WorkOS organization id (org_...)")
    parser.add_argument("--sso-provider", choices=("workos", "entra"))
    parser.add_argument("--entra-tenant-id", help="the customer's Entra tenant id (for --sso-provider entra)")
    parser.add_argument("--entra-client-id", help="the app registration's client id in that tenant")
    parser.add_argument("--teams-tenant-id", help="the customer's Microsoft 365 tenant id, for Teams")
    parser.add_argument("--provisioning", choices=("scim", "workos", "sso-jit"),
                        help="which channel decides who exists")
    parser.add_argument("--hrms", metavar="JSON", help='HRMS settings, e.g. {"kind":"personio","base_url":...}')
    parser.add_argument("--idp-initiated", choices=("yes", "no"),
                        help="route sign-ins the IdP starts (default no: they are restarted from our login)")
    if update:
        parser.add_argument("--remove-domain", action="append", metavar="DOMAIN")
        parser.add_argument("--route", action="append", metavar="RULE",
                            help="role:SLUG=APP or group:NAME=APP; replaces every rule (repeat for several)")
        parser.add_argument("--clear-routes", action="store_true", help="remove every routing rule")
        parser.add_argument("--default-app", metavar="APP", help="where users no rule matches go ('' for none)")


def _command(parent: Any, name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
             *, lists: bool = False) -> argparse.ArgumentParser:
    parser = parent.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    if lists:
        parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _group(parent: Any, name: str, help_text: str) -> Any:
    return parent.add_parser(name, help=help_text).add_subparsers(dest=f"{name}_action", required=True,
                                                                  metavar="ACTION")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-local-settings", action="store_true",
        help="read settings from the environment only (ignore local.settings.json and .local/dev-settings.json)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = _command(commands, "migrate", cmd_migrate, "apply pending database migrations (direct connection)")
    migrate.add_argument("--check", action="store_true", help="only list pending migrations; exit 1 if any")
    app_role = _command(_group(commands, "db", "database roles"), "app-role", cmd_db_app_role,
                        "create the app identity's Postgres role (as the Entra administrator, after migrate)")
    app_role.add_argument("identity", help="the managed identity's name (POSTGRES_USER of the app)")
    app_role.add_argument("--object-id", help="the identity's object (principal) id: created with "
                          "pgaadauth_create_principal_with_oid, without a directory lookup by name")
    _command(_group(commands, "queues", "storage queues"), "ensure", cmd_queues_ensure,
             "create the app's queues and their poison queues")
    _command(commands, "health", cmd_health, "check the database and the queues, as /api/health does")
    _command(_group(commands, "retention", "expired data"), "purge", cmd_retention_purge,
             "purge expired rows now, as the retention timer does")

    tenant = _group(commands, "tenant", "tenants")
    add = _command(tenant, "add", cmd_tenant_add, "register a tenant")
    add.add_argument("slug", help="lowercase letters, digits and dashes")
    _add_tenant_fields(add, update=False)
    _command(tenant, "list", cmd_tenant_list, "list tenants", lists=True)
    show = _command(tenant, "show", cmd_tenant_show, "show one tenant", lists=True)
    show.add_argument("slug")
    add.add_argument("--create-workos-org", action="store_true",
                     help="create the tenant's WorkOS organization (with its domains) and link it")
    portal = _command(tenant, "portal-link", cmd_tenant_portal_link,
                      "print a WorkOS Admin Portal link (5 minutes) for the tenant's IT admin")
    portal.add_argument("slug")
    portal.add_argument("--intent", required=True, choices=("sso", "dsync", "domain_verification"))
    update = _command(tenant, "update", cmd_tenant_update, "change a tenant")
    update.add_argument("slug")
    _add_tenant_fields(update, update=True)
    for action, status in (("suspend", "suspended"), ("activate", "active")):
        sub = _command(tenant, action, lambda args, status=status: _set_status(args, status), f"{action} a tenant")
        sub.add_argument("slug")

    app = _group(commands, "app", "a tenant's apps and their credentials")
    add = _command(app, "add", cmd_app_add, "add an app to a tenant")
    add.add_argument("tenant")
    add.add_argument("name")
    add.add_argument("--kind", required=True, choices=("instance", "thinkific", "admin"))
    add.add_argument("--base-url", required=True)
    add.add_argument("--handover-path", help="path on the app that receives the hand-over (default /sso/handover)")
    add.add_argument("--post-logout-url")
    add.add_argument("--role", action="append", metavar="ROLE", help="a role the app admits (repeat; none: all)")
    add.add_argument("--outbound-secret", action="append", metavar="NAME=KEYVAULT_SECRET",
                     help="a credential we use to call the app, by Key Vault secret name")
    listing = _command(app, "list", cmd_app_list, "list a tenant's apps", lists=True)
    listing.add_argument("tenant")
    remove = _command(app, "remove", cmd_app_remove, "remove an app")
    remove.add_argument("tenant")
    remove.add_argument("name")
    secret = _group(app, "secret", "the app's inbound secrets (two may be live)")
    for action, handler, text in (
        ("create", cmd_app_secret_create, "issue a secret (refused when two are live)"),
        ("rotate", cmd_app_secret_rotate, "issue a new secret, revoking the older when two are live"),
        ("list", cmd_app_secret_list, "list the app's secrets"),
    ):
        sub = _command(secret, action, handler, text, lists=action == "list")
        sub.add_argument("tenant")
        sub.add_argument("app")
    revoke = _command(secret, "revoke", cmd_app_secret_revoke, "revoke one secret")
    revoke.add_argument("tenant")
    revoke.add_argument("app")
    revoke.add_argument("secret_id")

    admin_key = _group(commands, "admin-key", "admin API keys")
    create = _command(admin_key, "create", cmd_admin_key_create, "issue an admin key")
    create.add_argument("--scope", required=True, help="operator, or tenant:SLUG")
    create.add_argument("--name", default="admin", help="who holds it")
    _command(admin_key, "list", cmd_admin_key_list, "list admin keys", lists=True)
    revoke = _command(admin_key, "revoke", cmd_admin_key_revoke, "revoke an admin key")
    revoke.add_argument("key_id")

    scim_token = _group(commands, "scim-token", "SCIM bearer tokens")
    create = _command(scim_token, "create", cmd_scim_token_create, "issue a SCIM token for a tenant")
    create.add_argument("tenant")
    create.add_argument("--name", default="scim", help="which IdP uses it")
    listing = _command(scim_token, "list", cmd_scim_token_list, "list a tenant's SCIM tokens", lists=True)
    listing.add_argument("tenant")
    revoke = _command(scim_token, "revoke", cmd_scim_token_revoke, "revoke a SCIM token")
    revoke.add_argument("tenant")
    revoke.add_argument("token_id")

    directory = _group(commands, "directory", "WorkOS Directory Sync")
    _command(directory, "poll", cmd_directory_poll, "read the Events API now and apply, as the poller timer does")
    events = _command(directory, "events", cmd_directory_events, "list received Directory Sync events", lists=True)
    events.add_argument("--status", choices=("pending", "unmatched", "applied", "stale", "refused", "failed"))
    events.add_argument("--tenant", metavar="SLUG")
    events.add_argument("--limit", type=int, default=50)

    hrms = _group(commands, "hrms", "HRMS sync: runs, history, field mapping")
    sync = _command(hrms, "sync", cmd_hrms_sync, "queue a sync of a tenant's HRMS now (incremental unless --full)")
    sync.add_argument("tenant")
    sync.add_argument("--full", action="store_true", help="read every employee (finds departed ones)")
    runs = _command(hrms, "runs", cmd_hrms_runs, "a tenant's sync history, newest first", lists=True)
    runs.add_argument("tenant")
    runs.add_argument("--limit", type=int, default=20)
    attributes = _command(hrms, "attributes", cmd_hrms_attributes, "the source attributes the HRMS lets us read",
                          lists=True)
    attributes.add_argument("tenant")
    mapping = _command(hrms, "mapping", cmd_hrms_mapping, "show or change which source attributes feed which "
                       "context keys (checked against the HRMS)", lists=True)
    mapping.add_argument("tenant")
    mapping.add_argument("--set", action="append", metavar="CONTEXT_KEY=SOURCE_ATTRIBUTE")
    mapping.add_argument("--remove", action="append", metavar="CONTEXT_KEY")

    writeback = _command(hrms, "writeback", cmd_hrms_writeback, "show or set where results are written in the "
                         "HRMS (checked against it) and turn write-back on or off")
    writeback.add_argument("tenant")
    writeback.add_argument("--completion", metavar="JSON", help='target of completions, e.g. {"training_type_id": 12}')
    writeback.add_argument("--assessment", metavar="JSON", help="target of assessment results")
    switch = writeback.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_true")
    switch.add_argument("--disable", action="store_true")
    results = _command(hrms, "results", cmd_hrms_results, "results reported for write-back, newest first", lists=True)
    results.add_argument("tenant")
    results.add_argument("--status", choices=("queued", "written", "failed"))
    results.add_argument("--limit", type=int, default=50)

    user = _group(commands, "user", "a tenant's users")
    listing = _command(user, "list", cmd_user_list, "list users", lists=True)
    listing.add_argument("tenant")
    listing.add_argument("--status", choices=("active", "inactive", "deleted"))
    listing.add_argument("--limit", type=int, default=1000)
    show = _command(user, "show", cmd_user_show, "show one user, by id or email", lists=True)
    show.add_argument("tenant")
    show.add_argument("user")
    return parser


def _refusal_types() -> tuple[type[BaseException], ...]:
    from shared.admin.keys import AdminKeyNotFound
    from shared.app_role import AppRoleError
    from shared.hrms.connectors.base import ConnectorError
    from shared.http import OutboundError
    from shared.identity.models import IdentityError
    from shared.migrations import MigrationError
    from shared.scim.tokens import ScimTokenNotFound
    from shared.secrets import SecretError
    from shared.tenants.models import TenantError
    from shared.workos_api import WorkOSUnavailable

    refusals: list[type[BaseException]] = [config.ConfigurationError, MigrationError, TenantError, IdentityError,
                                           AdminKeyNotFound, ScimTokenNotFound, WorkOSUnavailable, ConnectorError,
                                           OutboundError, SecretError, AppRoleError]
    try:
        import psycopg

        refusals.append(psycopg.OperationalError)
    except ImportError:
        pass
    return tuple(refusals)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.no_local_settings:
        config.load_local_settings(*LOCAL_SETTINGS_FILES)
    try:
        return args.handler(args)
    except json.JSONDecodeError as error:
        option = "--hrms" if getattr(args, "hrms", None) else "the JSON option"
        print(f"error: {option} is not JSON: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if isinstance(error, _refusal_types()):
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
