"""With pacing on (the default), a connector stays under its vendor's documented per-minute limit: Personio
allows 300 employee requests a minute and answers 429 beyond; the stand-in enforces exactly that here."""

from __future__ import annotations

import json
import time

import pytest

from local.hrms_people import Workforce
from local.personio import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PersonioStandIn
from shared import config, http
from shared.hrms.connectors.base import ConnectorSettings
from shared.hrms.connectors.personio import PersonioConnector, connect

PAGES = 12


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setenv("OUTBOUND_ALLOWED_LOCAL_HOSTS", "127.0.0.1")
    config.reset()
    http.PACER.reset()
    with PersonioStandIn(Workforce(PAGES * 10, domain="pace.example")) as running:
        running.limit_rate(PersonioConnector.requests_per_minute)
        yield running


def test_a_paced_personio_sync_keeps_under_300_requests_a_minute(standin):
    credential = json.dumps({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET})
    connector = connect(ConnectorSettings(standin.base_url, credential))  # pace: the default
    connector.page_size = 10
    started = time.monotonic()
    cursor, pages = None, 0
    while True:
        page = connector.page(cursor)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    elapsed = time.monotonic() - started
    connector.close()
    requests = standin.requests_count
    assert pages == PAGES
    # Requests 60/300 s apart at least: whatever the machine's speed, never faster than the limit.
    assert elapsed >= (requests - 1) * 60 / PersonioConnector.requests_per_minute * 0.99
    assert (requests - 1) / elapsed * 60 <= PersonioConnector.requests_per_minute  # intervals, not requests
    assert all(status != 429 for _, _, status in standin.requests_log)
