"""Fixtures: real Postgres and Azurite for the session, isolated per test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from local.azurite import free_port, start_azurite
from local.postgres import create_database, drop_database, start_embedded_postgres
from local.workos import WorkOSStandIn
from shared import config, db, managed_identity, queues
from shared.scim.tokens import create_scim_token
from tests.scim_client import ScimClient
from tests.stack import unique

# Read before any test changes the environment: an outside server and account, when given.
OUTSIDE_DATABASE_URL = os.environ.get("DATABASE_URL", "")
OUTSIDE_STORAGE = os.environ.get("AzureWebJobsStorage", "")


def _forget_process_state() -> None:
    db.close_pools()
    config.reset()
    queues.reset()
    managed_identity.reset()


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with no app setting in the environment and no cached client or pool."""
    for name in [*config.SETTINGS, *config.HOST_SETTINGS]:
        monkeypatch.delenv(name, raising=False)
    _forget_process_state()
    yield
    _forget_process_state()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Admin URL of the session's Postgres server."""
    if OUTSIDE_DATABASE_URL:
        return OUTSIDE_DATABASE_URL
    return start_embedded_postgres(tmp_path_factory.mktemp("postgres") / "data", delete_on_exit=True)


@pytest.fixture(scope="session")
def migrated_template(postgres_server: str) -> str:
    """A database with every migration applied, cloned for each test."""
    import psycopg

    from shared.migrations import migrate

    name = unique("ec_template_")
    url = create_database(postgres_server, name)
    with psycopg.connect(url) as conn:
        migrate(conn)
    yield name
    drop_database(postgres_server, name)


def _database_fixture(postgres_server: str, monkeypatch: pytest.MonkeyPatch, template: str | None) -> Iterator[str]:
    name = unique("ec_test_")
    url = create_database(postgres_server, name, template=template)
    monkeypatch.setenv("DATABASE_URL", url)
    config.reset()
    yield url
    db.close_pools()
    drop_database(postgres_server, name)


@pytest.fixture
def database(postgres_server: str, migrated_template: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, migrated database of this test's own; DATABASE_URL points at it."""
    yield from _database_fixture(postgres_server, monkeypatch, migrated_template)


@pytest.fixture
def empty_database(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database with no migration applied; DATABASE_URL points at it."""
    yield from _database_fixture(postgres_server, monkeypatch, None)


@pytest.fixture(scope="session")
def storage_account() -> Iterator[str]:
    """Connection string of the session's storage (an in-memory Azurite unless one is given)."""
    if OUTSIDE_STORAGE:
        yield OUTSIDE_STORAGE
        return
    azurite = start_azurite(None)
    yield azurite.connection_string
    azurite.stop()


QUEUE_SETTINGS = ("DSYNC_APPLY_QUEUE", "TEAMS_TURNS_QUEUE", "TEAMS_ALERTS_QUEUE", "HRMS_SYNC_QUEUE",
                  "HRMS_WRITEBACK_QUEUE")


@pytest.fixture
def storage(storage_account: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Storage for this test, with queue names of its own (removed afterwards)."""
    monkeypatch.setenv("AzureWebJobsStorage", storage_account)
    suffix = unique("-")
    for name in QUEUE_SETTINGS:
        monkeypatch.setenv(name, config.SETTINGS[name].default + suffix)
    config.reset()
    yield storage_account
    from azure.core.exceptions import ResourceNotFoundError

    for name in queues.app_queue_names():
        with contextlib.suppress(ResourceNotFoundError):
            queues.queue_client(name).delete_queue()


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture
def make_tenant(database):
    """Create a tenant through the registry: make_tenant("acme", provisioning="scim", domains=("acme.com",))."""
    from shared.tenants.registry import TenantChanges, create_tenant

    def make(slug: str, *, provisioning: str = "scim", domains: tuple[str, ...] | None = None, **fields):
        with db.transaction() as conn:
            return create_tenant(conn, slug, TenantChanges(
                display_name=fields.pop("display_name", slug.title()), provisioning_channel=provisioning,
                add_domains=domains if domains is not None else (f"{slug}.example",), **fields))

    return make


@pytest.fixture
def cursor_secret(monkeypatch):
    monkeypatch.setenv("SCIM_CURSOR_SECRET", "test-cursor-secret")


@pytest.fixture
def scim_tenant(make_tenant, cursor_secret):
    def make(slug: str = "acme", **fields):
        fields.setdefault("domains", (f"{slug}.com",))
        tenant = make_tenant(slug, **fields)
        with db.transaction() as conn:
            _, token = create_scim_token(conn, tenant, "test", created_by="test")
        return ScimClient(slug, token)

    return make


@pytest.fixture
def scim(scim_tenant):
    return scim_tenant()


WEBHOOK_SECRET = "whsec-test-current"
OLD_WEBHOOK_SECRET = "whsec-test-previous"


@pytest.fixture
def standin():
    with WorkOSStandIn() as running:
        yield running


@pytest.fixture
def workos_settings(monkeypatch, standin):
    from shared import workos_api

    monkeypatch.setenv("WORKOS_API_KEY", standin.api_key)
    monkeypatch.setenv("WORKOS_CLIENT_ID", standin.client_id)
    monkeypatch.setenv("WORKOS_BASE_URL", standin.base_url)
    monkeypatch.setenv("WORKOS_WEBHOOK_SECRET", f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}")
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    workos_api.reset()
    yield standin
    workos_api.reset()
