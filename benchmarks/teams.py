"""Teams: alert fan-out through the Bot connector stand-in, the pacing it keeps, and a chat turn's own cost.

The Bot connector and the chatbot stand-ins are served from forked processes (the services they play run
elsewhere); the bot's token comes once from the Entra ID stand-in. Figures:
- fan-out: an alert to TEAMS_BENCH_RECIPIENTS (1,000) users with stored conversations, pacing off, its
  batches of 50 worked by TEAMS_BENCH_WORKERS (4) concurrent workers as a host instance runs queue
  messages: messages per second, the engine's own ceiling (target at least 200);
- pacing: TEAMS_BENCH_PACED (200) recipients at TEAMS_BENCH_RATE (50) per second, the same workers: the
  rate Teams saw (from the connector's receive times) and the most sends in any one-second window;
- turn overhead: TEAMS_BENCH_TURNS (500, after 20 not counted) messages through the endpoint (token
  check, who is talking, reference stored, typing indicator, reply), the chatbot's own time subtracted:
  p50/p99 (target p99 under 30 ms).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

RECIPIENTS = int(os.environ.get("TEAMS_BENCH_RECIPIENTS", "1000"))
WORKERS = int(os.environ.get("TEAMS_BENCH_WORKERS", "4"))
PACED = int(os.environ.get("TEAMS_BENCH_PACED", "200"))
RATE = float(os.environ.get("TEAMS_BENCH_RATE", "50"))
TURNS = int(os.environ.get("TEAMS_BENCH_TURNS", "500"))
WARM_UP = 20
TEAMS_TENANT = "be7c0000-0000-4000-8000-0000000be7c0"
BOT_APP_ID = "be7b0700-0000-4000-8000-0000000be7b0"
BOT_HOME = "be7b0700-0000-4000-8000-00000000a0e7"
BOT_SECRET = "bench-bot-secret"
CONNECT_SECRET = "bench-connect-secret"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * fraction) - 1)]


def _people(tenant: Any, connector: Any, count: int, prefix: str) -> list[str]:
    """Users provisioned with Entra object ids, known to Teams, each with a stored conversation."""
    from botbuilder.core import TurnContext
    from botbuilder.schema import Activity
    from psycopg.types.json import Jsonb

    from shared import db
    from shared.identity import store
    from shared.identity.models import Actor, ActorKind, Channel, PersonClaims

    claims, rows = [], []
    for number in range(count):
        object_id = str(uuid.uuid4())
        email = f"{prefix}{number}@bench.example"
        claims.append(PersonClaims(channel=Channel.SCIM, issuer="scim", external_id=f"{prefix}{number}", email=email,
                                   display_name=f"User {number}", entra_object_id=object_id, active=True))
        connector.add_user(TEAMS_TENANT, email, aad_object_id=object_id)
        activity = connector.message_activity(TEAMS_TENANT, object_id, "hi")
        reference = TurnContext.get_conversation_reference(Activity().deserialize(activity)).serialize()
        rows.append((object_id, activity["from"]["id"], activity["conversation"]["id"], reference))
    with db.transaction() as conn:
        store.sync_people(conn, tenant, claims, Actor(ActorKind.SYSTEM, "bench"))
        ids = dict(conn.execute("SELECT entra_object_id::text, id FROM users WHERE tenant_id = %s",
                                [tenant.id]).fetchall())
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO teams_conversations (tenant_id, user_id, teams_tenant_id, aad_object_id, teams_user_id,"
                " conversation_id, service_url, reference) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(tenant.id, ids[object_id], TEAMS_TENANT, object_id, teams_id, conversation, connector.service_url,
                  Jsonb(reference)) for object_id, teams_id, conversation, reference in rows])
    return [conversation for _, _, conversation, _ in rows]


async def _fan_out(tenant: Any, alert_id: str, recipients: str | list[str]) -> float:
    """Accept an alert and work its batches with WORKERS concurrent workers; returns the seconds taken."""
    from shared import db
    from shared.teams import alerts, delivery

    document = {"alert_id": alert_id, "tenant": tenant.slug, "recipients": recipients, "title": "Check-in",
                "text": "Your weekly check-in is ready.", "url": "https://coach.example/checkin"}
    with db.transaction() as conn:
        accepted = alerts.accept_alert(conn, tenant, alerts.parse_alert(document), created_by="bench")
    pending = list(range(accepted.batches))
    started = time.perf_counter()

    async def worker() -> None:
        while pending:
            result = await delivery.deliver_batch(tenant.id, alert_id, pending.pop(0))
            if result.deferred or result.failed or result.unreachable:
                raise RuntimeError(f"batch not delivered: {result}")

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return time.perf_counter() - started


def _receive_times(connector_url: str, conversations: list[str]) -> list[float]:
    import httpx

    times = []
    with httpx.Client(base_url=connector_url, timeout=10) as client:
        for conversation in conversations:
            for activity in client.get(f"/_standin/conversations/{conversation.replace(':', '%3A')}/activities"
                                       ).json()["activities"]:
                if activity.get("attachments"):
                    times.append(datetime.fromisoformat(activity["timestamp"].replace("Z", "+00:00")).timestamp())
    return sorted(times)


async def _turns(connector: Any, object_ids: list[str], asked: list[float]) -> list[float]:
    import json

    from shared.teams.endpoint import receive

    token = connector.channel_token()
    overheads = []
    for number in range(WARM_UP + TURNS):
        activity = connector.message_activity(TEAMS_TENANT, object_ids[number % len(object_ids)], f"question {number}")
        body = json.dumps(activity).encode()
        started = time.perf_counter()
        response = await receive(body, f"Bearer {token}")
        elapsed = time.perf_counter() - started - asked[-1]
        if response.status != 200:
            raise RuntimeError(f"turn {number}: {response.status} {response.body}")
        if number >= WARM_UP:
            overheads.append(elapsed)
    return overheads


def measure() -> dict[str, Any]:
    import psycopg

    from benchmarks.local_host import serve_in_child
    from local.azurite import free_port
    from local.botconnector import BotConnectorStandIn
    from local.chatbot import ChatBackendStandIn
    from local.entra import EntraStandIn
    from local.postgres import create_database, start_embedded_postgres
    from local.tls import local_ca
    from shared import config, db
    from shared.migrations import migrate
    from shared.teams import chat, runtime
    from shared.tenants.apps import AppSpec, add_app
    from shared.tenants.registry import TenantChanges, create_tenant

    with tempfile.TemporaryDirectory() as folder:
        ca = local_ca(Path(folder) / "ca")
        ca.trust_in_process()
        entra = EntraStandIn(ca).start()
        entra.register_app(BOT_HOME, BOT_APP_ID, BOT_SECRET, [])
        connector = BotConnectorStandIn(port=free_port(), app_id=BOT_APP_ID, token_jwks=entra.jwks)
        server = os.environ.get("DATABASE_URL") or start_embedded_postgres(Path(folder) / "pg", delete_on_exit=True)
        url = create_database(server, f"bench_teams_{uuid.uuid4().hex[:8]}")
        with psycopg.connect(url) as conn:
            migrate(conn)
        chatbot_port = free_port()
        os.environ.update({
            "DATABASE_URL": url, "MicrosoftAppId": BOT_APP_ID, "MicrosoftAppPassword": BOT_SECRET,
            "MicrosoftAppTenantId": BOT_HOME, "ENTRA_AUTHORITY_HOST": entra.base_url,
            "BOT_OPENID_METADATA_URL": connector.openid_metadata_url, "TEAMS_SERVICE_URL": connector.service_url,
            "OUTBOUND_ALLOWED_LOCAL_HOSTS": "127.0.0.1", "TEAMS_SENDS_PER_SECOND": "0",
            "SECRET_BENCH_CONNECT": CONNECT_SECRET})
        config.reset()
        runtime.reset()
        chat.reset()
        with db.transaction() as conn:
            tenant = create_tenant(conn, "bench", TenantChanges(
                display_name="Bench", add_domains=("bench.example",), provisioning_channel="scim",
                teams_tenant_id=TEAMS_TENANT))
            app = add_app(conn, tenant, "coach", AppSpec(kind="instance", base_url=f"http://127.0.0.1:{chatbot_port}",
                                                         outbound_secret_refs={"connect": "bench-connect"}))
        _people(tenant, connector, RECIPIENTS, "user")
        paced_conversations = _people(tenant, connector, PACED, "paced")
        chatbot = ChatBackendStandIn(client_id=app.client_id, secret=CONNECT_SECRET, port=chatbot_port)
        children = [serve_in_child(connector), serve_in_child(chatbot)]
        asked: list[float] = []
        real_ask = chat.ask

        def timed_ask(request: chat.ChatRequest, *, timeout: float) -> chat.ChatAnswer:
            started = time.perf_counter()
            try:
                return real_ask(request, timeout=timeout)
            finally:
                asked.append(time.perf_counter() - started)

        async def run_all() -> tuple[float, float, list[float]]:
            fan_out = await _fan_out(tenant, "bench-fan-out", [f"user{number}@bench.example"
                                                               for number in range(RECIPIENTS)])
            os.environ["TEAMS_SENDS_PER_SECOND"] = str(RATE)
            paced = await _fan_out(tenant, "bench-paced", [f"paced{number}@bench.example" for number in range(PACED)])
            chat.ask = timed_ask
            object_ids = [connector.find_user(TEAMS_TENANT, f"user{number}@bench.example").aad_object_id
                          for number in range(50)]
            turns = await _turns(connector, object_ids, asked)
            return fan_out, paced, turns

        try:
            fan_out_seconds, paced_seconds, overheads = asyncio.run(run_all())
            received = _receive_times(connector.base_url, paced_conversations)
        finally:
            chat.ask = real_ask
            db.close_pools()
            for child in children:
                child.terminate()
                child.join(10)
            entra.stop()
    windows = [sum(1 for moment in received if start <= moment < start + 1.0) for start in received]
    achieved = (len(received) - 1) / (received[-1] - received[0]) if len(received) > 1 else 0.0
    return {
        "fan_out": {"recipients": RECIPIENTS, "workers": WORKERS, "seconds": round(fan_out_seconds, 2),
                    "messages_per_second": round(RECIPIENTS / fan_out_seconds, 1), "target_per_second": 200},
        "pacing": {"recipients": PACED, "configured_per_second": RATE, "seconds": round(paced_seconds, 2),
                   "achieved_per_second": round(achieved, 1), "most_in_any_second": max(windows or [0]),
                   "holds": max(windows or [0]) <= RATE + 1},
        "turn_overhead_without_chatbot": {
            "turns": TURNS, "p50_ms": round(statistics.median(overheads) * 1000, 2),
            "p99_ms": round(_percentile(overheads, 0.99) * 1000, 2), "target_p99_ms": 30},
    }
