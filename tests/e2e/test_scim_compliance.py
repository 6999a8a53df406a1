"""End to end: scim2-tester and scim-sanity against the SCIM service over HTTP, through the local host."""

from __future__ import annotations

import json
import subprocess

import pytest

from local.azurite import free_port
from shared import db
from shared.scim.tokens import create_scim_token
from tests.stack import PROJECT_ROOT, PYTHON, app_environment, start_host

pytestmark = pytest.mark.e2e


@pytest.fixture
def scim_endpoint(database, storage, make_tenant, tmp_path):
    tenant = make_tenant("acme", domains=("acme.com", "example.com", "example.org"))
    with db.transaction() as conn:
        _, token = create_scim_token(conn, tenant, "e2e", created_by="test")
    environment = app_environment(DATABASE_URL=database, AzureWebJobsStorage=storage,
                                  SCIM_CURSOR_SECRET="e2e-cursor-secret")
    host = start_host(PROJECT_ROOT, environment, tmp_path, port=free_port())
    yield f"{host.base_url}/api/scim/v2/acme", token, host
    host.stop()


def test_scim2_tester_finds_every_check_successful(scim_endpoint):
    import httpx2
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import check_server
    from scim2_tester.utils import Status

    url, token, _host = scim_endpoint
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        results = check_server(SyncSCIMClient(http))
    failures = [(result.title, result.status, result.reason) for result in results
                if result.status not in (Status.SUCCESS, Status.SKIPPED)]
    assert results
    assert failures == []


def test_scim_sanity_probe_has_no_failure(scim_endpoint):
    url, token, _ = scim_endpoint
    result = subprocess.run(
        [PYTHON, "-m", "scim_sanity", "probe", url, "--token", token, "--i-accept-side-effects", "--json-output",
         "--user-domain", "acme.com"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    checks = report.get("results", [])
    failed = {check["name"]: check["message"] for check in checks
              if str(check.get("status", "")).lower() in ("fail", "error")}
    # By design: group members must be users of the tenant, and the probe adds a made-up member id,
    # which gets 400 invalidValue. Nothing else may fail.
    assert failed == {"PATCH /Groups/{id} add member": "Expected 200, got 400"}
    assert sum(str(check.get("status", "")).lower() == "pass" for check in checks) >= 20
