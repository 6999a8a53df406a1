"""Teams fixtures: a tenant mapped to a Teams tenant, with users to talk and send alerts to."""

from __future__ import annotations

import uuid

import pytest

from shared import db
from shared.identity import store
from shared.identity.models import Actor, ActorKind, Channel, PersonClaims

TEAMS_TENANT_ID = "72f988bf-0000-4000-8000-00000000a1b2"
SCIM_ACTOR = Actor(ActorKind.SCIM_TOKEN, "test")


@pytest.fixture
def acme(make_tenant, monkeypatch):
    monkeypatch.setenv("TEAMS_SENDS_PER_SECOND", "0")
    return make_tenant("acme", domains=("acme.com",), teams_tenant_id=TEAMS_TENANT_ID,
                       support_contact="it@acme.com")


def add_user(tenant, email: str, *, entra_object_id: str | None = None, active: bool = True,
             display_name: str | None = None) -> str:
    """A SCIM-provisioned user; returns its id."""
    claims = PersonClaims(channel=Channel.SCIM, issuer="scim", external_id=None, email=email,
                          display_name=display_name or email.split("@")[0].title(),
                          entra_object_id=entra_object_id, active=active)
    with db.transaction() as conn:
        return store.sync_person(conn, tenant, claims, SCIM_ACTOR).user.id


def new_object_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def teams_queues(storage):
    from shared import queues

    queues.ensure_queues()
    return storage


def drain_queue(name: str) -> list[dict]:
    """Every message now on a queue (decoded and deleted), in the order received."""
    import base64
    import json

    from shared import queues

    client = queues.queue_client(name)
    found = []
    while True:
        batch = list(client.receive_messages(max_messages=32, visibility_timeout=60))
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(base64.b64decode(message.content)))
            client.delete_message(message)


BOT_APP_ID = "b07b07b0-0000-4000-8000-000000000b07"
BOT_HOME_TENANT = "40e3e000-0000-4000-8000-0000000000aa"
BOT_SECRET = "bot-secret-for-tests"


@pytest.fixture(scope="session")
def bot_entra(tmp_path_factory):
    """The Entra ID stand-in (HTTPS, a local CA this process trusts) knowing the bot's app registration."""
    from local.entra import EntraStandIn
    from local.tls import local_ca

    ca = local_ca(tmp_path_factory.mktemp("bot-ca"))
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):  # what trust_in_process sets
            patch.setenv(variable, "")
        ca.trust_in_process()
        with EntraStandIn(ca) as running:
            running.register_app(BOT_HOME_TENANT, BOT_APP_ID, BOT_SECRET, [])
            yield running


@pytest.fixture
def connector(bot_entra):
    from local.botconnector import BotConnectorStandIn

    with BotConnectorStandIn(app_id=BOT_APP_ID, token_jwks=bot_entra.jwks) as running:
        yield running


@pytest.fixture
def bot(connector, bot_entra, monkeypatch, database, acme):
    """The bot configured against the stand-ins, with fresh process state; yields the connector."""
    from shared import config
    from shared.teams import chat, runtime

    monkeypatch.setenv("MicrosoftAppId", BOT_APP_ID)
    monkeypatch.setenv("MicrosoftAppPassword", BOT_SECRET)
    monkeypatch.setenv("MicrosoftAppTenantId", BOT_HOME_TENANT)
    monkeypatch.setenv("ENTRA_AUTHORITY_HOST", bot_entra.base_url)
    monkeypatch.setenv("BOT_OPENID_METADATA_URL", connector.openid_metadata_url)
    monkeypatch.setenv("TEAMS_SERVICE_URL", connector.service_url)
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    config.reset()
    runtime.reset()
    chat.reset()
    yield connector
    runtime.reset()
    chat.reset()


def run_async(awaitable):
    """asyncio.run, closing the loop's database pool before the loop ends (production has one loop for
    the process; each test run of a coroutine has its own, and its connections must not linger)."""
    import asyncio

    from shared import db

    async def run():
        try:
            return await awaitable
        finally:
            pool = db._async_pools.pop(asyncio.get_running_loop(), None)
            if pool is not None:
                await pool.close()

    return asyncio.run(run())


def post_activity(activity: dict, token: str | None, *, raw: bytes | None = None):
    """Run one request through the transport-free endpoint, as the HTTP function does."""
    import json

    from shared.teams.endpoint import receive

    return run_async(receive(raw if raw is not None else json.dumps(activity).encode(),
                             None if token is None else f"Bearer {token}"))


@pytest.fixture
def ann(acme, bot):
    """A provisioned user with an Entra object id, known to Teams: (user id, object id)."""
    object_id = new_object_id()
    user_id = add_user(acme, "ann@acme.com", entra_object_id=object_id, display_name="Ann Example")
    bot.add_user(TEAMS_TENANT_ID, "ann@acme.com", name="Ann Example", aad_object_id=object_id)
    return user_id, object_id
