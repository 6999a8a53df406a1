"""shared/health.py and GET /api/health: each part's verdict, and the function's status codes."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from local.azurite import connection_string, free_port
from shared import health, queues


@pytest.fixture
def healthy(database, storage):
    queues.ensure_queues()


def _call_health_function() -> func.HttpResponse:
    from functions.health import health as health_function

    request = func.HttpRequest("GET", "http://127.0.0.1:7071/api/health", headers={}, params={}, route_params={},
                               body=b"")
    return health_function.build().get_user_function()(request)


def test_all_parts_ok_gives_200_and_the_version(healthy):
    response = _call_health_function()
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"status": "ok", "database": "ok", "queues": "ok",
                                               "version": health.__version__}
    assert response.mimetype == "application/json"


def test_an_unreachable_database_gives_503_naming_it_without_details(storage, monkeypatch, tmp_path):
    queues.ensure_queues()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:secret@/nowhere?host={tmp_path}")
    response = _call_health_function()
    body = json.loads(response.get_body())
    assert response.status_code == 503
    assert body == {"status": "unhealthy", "database": "unreachable", "queues": "ok", "version": health.__version__}
    assert b"secret" not in response.get_body()
    assert str(tmp_path).encode() not in response.get_body()


def test_a_database_behind_the_code_is_reported_with_the_fix(empty_database, storage):
    queues.ensure_queues()
    assert health.check_database() == "schema behind: run `python -m shared.cli migrate`"


def test_missing_configuration_is_reported_as_misconfigured():
    assert health.check_health().as_dict() == {
        "status": "unhealthy", "database": "misconfigured", "queues": "misconfigured", "version": health.__version__}


def test_unreachable_storage_gives_503_naming_the_queues(database, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", connection_string(free_port(), free_port(), free_port()))
    response = _call_health_function()
    assert response.status_code == 503
    assert json.loads(response.get_body())["queues"] == "unreachable"


def test_missing_queues_are_named(database, storage):
    assert health.check_queues().startswith("missing queues: dsync-apply-")
