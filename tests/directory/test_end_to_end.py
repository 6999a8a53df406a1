"""End to end: WorkOS webhooks against the running app under the local host — forged and replayed
signatures are refused with nothing written; a genuine event is acknowledged, its retry is a
duplicate, and the dsync-apply worker applies it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from local.azurite import free_port
from local.workos import sign
from shared import db, queues
from tests.directory.conftest import WEBHOOK_SECRET, state_of
from tests.stack import PROJECT_ROOT, app_environment, start_host, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(make_directory, workos_settings, storage, tmp_path, standin):
    from shared import config

    queues.ensure_queues()
    tenant, directory = make_directory("acme")
    settings = {name: config.SETTINGS[name].raw() or "" for name in (
        "DATABASE_URL", "AzureWebJobsStorage", "DSYNC_APPLY_QUEUE", "TEAMS_TURNS_QUEUE", "TEAMS_ALERTS_QUEUE",
        "HRMS_SYNC_QUEUE", "HRMS_WRITEBACK_QUEUE", "WORKOS_API_KEY", "WORKOS_CLIENT_ID", "WORKOS_BASE_URL",
        "WORKOS_WEBHOOK_SECRET", "OUTBOUND_ALLOWED_LOCAL_HOSTS")}
    host = start_host(PROJECT_ROOT, app_environment(**settings), tmp_path, port=free_port())
    yield host, tenant, directory
    assert host.stop() == 0, host.log()


def _post(host, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"} | ({"WorkOS-Signature": signature} if signature else {})
    return host.request("POST", "/api/webhooks/workos", content=body, headers=headers)


def _inbox() -> int:
    with db.transaction(all_tenants=True) as conn:
        return conn.execute("SELECT count(*) FROM workos_events").fetchone()[0]


def test_forged_and_replayed_signatures_are_refused_and_a_genuine_event_is_applied(running):
    host, tenant, directory = running
    event = directory.event("dsync.user.created", directory.user("ann", first_name="Ann"))
    body = json.dumps(event).encode()
    old = datetime.now(UTC) - timedelta(minutes=10)
    forged = json.dumps({**event, "data": {**event["data"], "email": "eve@acme.example"}}).encode()
    for attempt_body, signature in [
        (body, None),
        (body, "t=123, v1=" + "0" * 64),
        (body, sign(body, "a-guessed-secret")),
        (forged, sign(body, WEBHOOK_SECRET)),  # a genuine signature on another body
        (body, sign(body, WEBHOOK_SECRET, timestamp_ms=int(old.timestamp() * 1000))),  # replayed later
    ]:
        response = _post(host, attempt_body, signature)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_signature"
    assert _inbox() == 0

    response = _post(host, body, sign(body, WEBHOOK_SECRET))
    assert (response.status_code, response.json()["duplicate"]) == (200, False)
    assert _post(host, body, sign(body, WEBHOOK_SECRET)).json()["duplicate"] is True
    wait_until(lambda: state_of(tenant, directory)["users"], timeout=30, message="the worker to apply the event")
    assert state_of(tenant, directory)["users"] == [("ann", "ann", "Ann", "active", [])]
    assert _inbox() == 1
