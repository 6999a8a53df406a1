"""Ops CLI: ``python -m shared.cli COMMAND``.

Each command is a thin call into the domain; errors are one line on stderr and a non-zero exit
code (1: the operation failed, 2: the command line was wrong). Lists take ``--json``. Run from a
checkout, it first fills unset settings from ``local.settings.json`` and from what ``make dev``
started (``.local/dev-settings.json``), so it works against the local stack with no further setup.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shared import config

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_SETTINGS_FILES = (PROJECT_ROOT / "local.settings.json", PROJECT_ROOT / ".local" / "dev-settings.json")


class CommandError(Exception):
    """A command could not do what was asked; the message is shown as is."""


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


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


def cmd_queues_ensure(args: argparse.Namespace) -> int:
    from shared import queues

    created = queues.ensure_queues()
    for name in created:
        print(f"created  {name}")
    print(f"{len(queues.app_queue_names())} queues present")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    from shared.health import check_health

    report = check_health()
    _print_json(report.as_dict())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-local-settings", action="store_true",
        help="read settings from the environment only (ignore local.settings.json and .local/dev-settings.json)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="apply pending database migrations (direct connection)")
    migrate.add_argument("--check", action="store_true", help="only list pending migrations; exit 1 if any")
    migrate.set_defaults(handler=cmd_migrate)

    queues = commands.add_parser("queues", help="storage queues").add_subparsers(
        dest="queues_command", required=True, metavar="ACTION")
    ensure = queues.add_parser("ensure", help="create the app's queues and their poison queues")
    ensure.set_defaults(handler=cmd_queues_ensure)

    health = commands.add_parser("health", help="check the database and the queues, as /api/health does")
    health.set_defaults(handler=cmd_health)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.no_local_settings:
        config.load_local_settings(*LOCAL_SETTINGS_FILES)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from shared.migrations import MigrationError

        if isinstance(error, (config.ConfigurationError, MigrationError)) or _is_connection_error(error):
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise


def _is_connection_error(error: Exception) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(error, psycopg.OperationalError)


if __name__ == "__main__":
    sys.exit(main())
