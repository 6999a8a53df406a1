"""End to end: the real function_app under the local host, called over HTTP."""

from __future__ import annotations

import pytest

from local.azurite import free_port
from shared import __version__, queues
from tests.stack import PROJECT_ROOT, app_environment, start_host

pytestmark = pytest.mark.e2e


def _app_environment(database_url: str, storage: str) -> dict[str, str]:
    from shared import config

    queue_names = {name: config.SETTINGS[name].raw() for name in (
        "DSYNC_APPLY_QUEUE", "TEAMS_TURNS_QUEUE", "TEAMS_ALERTS_QUEUE", "HRMS_SYNC_QUEUE", "HRMS_WRITEBACK_QUEUE")}
    return app_environment(DATABASE_URL=database_url, AzureWebJobsStorage=storage, **queue_names)


def test_health_over_http_reports_ok(database, storage, tmp_path):
    queues.ensure_queues()
    host = start_host(PROJECT_ROOT, _app_environment(database, storage), tmp_path, port=free_port())
    try:
        response = host.get("/api/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok", "queues": "ok", "version": __version__}
        assert host.request("POST", "/api/health").status_code == 404
    finally:
        assert host.stop() == 0, host.log()


def test_health_over_http_names_the_unreachable_database(storage, tmp_path):
    queues.ensure_queues()
    unreachable = f"postgresql://postgres@/nowhere?host={tmp_path}"
    host = start_host(PROJECT_ROOT, _app_environment(unreachable, storage), tmp_path, port=free_port())
    try:
        response = host.get("/api/health")
        assert response.status_code == 503
        assert response.json()["database"] == "unreachable"
        assert "Traceback" not in response.text
    finally:
        host.stop()
