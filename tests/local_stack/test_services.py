"""The local services: embedded Postgres, Azurite, the local CA, and `make dev` as a whole."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import psycopg
import pytest
from azure.storage.queue import QueueClient

from local.azurite import DEFAULT_PORTS, free_port, port_is_open, start_azurite
from local.tls import local_ca
from tests.conftest import OUTSIDE_DATABASE_URL
from tests.local_host.conftest import FIXTURE_APP
from tests.stack import PROJECT_ROOT, PYTHON, base_environment, wait_until


@pytest.mark.skipif(bool(OUTSIDE_DATABASE_URL), reason="DATABASE_URL points at an outside server")
def test_embedded_postgres_is_major_version_16_like_the_deployment(postgres_server):
    with psycopg.connect(postgres_server) as conn:
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("16")


def test_azurite_keeps_its_data_across_a_restart(tmp_path):
    ports = (free_port(), free_port(), free_port())
    azurite = start_azurite(tmp_path / "azurite", ports=ports)
    try:
        queue = QueueClient.from_connection_string(azurite.connection_string, "kept")
        queue.create_queue()
        queue.send_message("still here")
    finally:
        azurite.stop()
    assert not port_is_open(ports[1])
    azurite = start_azurite(tmp_path / "azurite", ports=ports)
    try:
        queue = QueueClient.from_connection_string(azurite.connection_string, "kept")
        assert [message.content for message in queue.peek_messages()] == ["still here"]
    finally:
        azurite.stop()


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello over tls")

    def log_message(self, *args) -> None:
        pass


def test_the_local_ca_is_trusted_only_where_a_local_run_trusts_it(tmp_path):
    authority = local_ca(tmp_path / "ca")
    server = HTTPServer(("127.0.0.1", 0), _Hello)
    server.socket = authority.server_context().wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/"
    probe = (
        "import sys, urllib.request, httpx\n"
        f"from local.tls import local_ca\nfrom pathlib import Path\n"
        f"if sys.argv[1] == 'trust': local_ca(Path({str(tmp_path / 'ca')!r})).trust_in_process()\n"
        f"print(urllib.request.urlopen({url!r}).read().decode(), httpx.get({url!r}).text)\n"
    )
    try:
        trusted = subprocess.run([PYTHON, "-c", probe, "trust"], cwd=PROJECT_ROOT, env=base_environment(),
                                 capture_output=True, text=True)
        untrusted = subprocess.run([PYTHON, "-c", probe, "plain"], cwd=PROJECT_ROOT, env=base_environment(),
                                   capture_output=True, text=True)
    finally:
        server.shutdown()
    assert trusted.stdout.strip() == "hello over tls hello over tls", trusted.stderr
    assert untrusted.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


def test_the_ca_persists_so_it_is_trusted_once(tmp_path):
    first = local_ca(tmp_path / "ca").cert_path.read_bytes()
    assert local_ca(tmp_path / "ca").cert_path.read_bytes() == first
    context = ssl.create_default_context(cafile=str(tmp_path / "ca" / "bundle.pem"))
    assert any(cert["subject"] for cert in context.get_ca_certs())


def test_an_unresolved_setting_expression_stops_the_host_with_its_name(storage_account, tmp_path):
    env = base_environment() | {"AzureWebJobsStorage": storage_account, "FIXTURE_SCHEDULE": "*/2 * * * * *"}
    result = subprocess.run(
        [PYTHON, "-m", "local.host", "--script-root", str(FIXTURE_APP), "--port", str(free_port()),
         "--state-dir", str(tmp_path), "--no-local-settings"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "'%FIXTURE_QUEUE%' does not resolve to a value" in result.stderr


def _start_dev(state_dir: Path, port: int, azurite_ports: tuple[int, int, int], log: Path,
               **settings: str) -> subprocess.Popen:
    arguments = [PYTHON, "-m", "local.dev", "--state-dir", str(state_dir), "--port", str(port), "--no-local-settings",
                 "--azurite-ports", *map(str, azurite_ports)]
    env = base_environment() | {"AzureWebJobsStorage": "UseDevelopmentStorage=true"} | settings
    return subprocess.Popen(arguments, cwd=PROJECT_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _healthy(process: subprocess.Popen, url: str, log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"make dev exited with {process.returncode}:\n{log.read_text()}")
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _interrupt(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(60)


@pytest.mark.e2e
def test_make_dev_serves_health_seeds_demo_and_ctrl_c_stops_everything(tmp_path):
    """The demo tenants work as the summary says: an event sent lands, a person signs in to the demo app."""
    state, port, log = tmp_path / "state", free_port(), tmp_path / "dev.log"
    azurite_ports = (free_port(), free_port(), free_port())
    workos_port, entra_port, connector_port = free_port(), free_port(), free_port()
    process = _start_dev(state, port, azurite_ports, log, WORKOS_API_KEY="sk_test_local",
                         WORKOS_CLIENT_ID="client_local", WORKOS_WEBHOOK_SECRET="dev-secret",
                         WORKOS_BASE_URL=f"http://127.0.0.1:{workos_port}",
                         ENTRA_AUTHORITY_HOST=f"https://127.0.0.1:{entra_port}",
                         BOT_OPENID_METADATA_URL=f"http://127.0.0.1:{connector_port}/v1/.well-known/openidconfiguration")
    try:
        wait_until(lambda: _healthy(process, f"http://127.0.0.1:{port}/api/health", log), timeout=120,
                   message="make dev to serve /api/health")
        database_url = json.loads((state / "dev-settings.json").read_text())["DATABASE_URL"]
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT display_name FROM tenants WHERE slug = 'demo'").fetchone() == ("Demo Company",)
        output = log.read_text()
        assert "demo tenant  demo" in output
        assert f"http://127.0.0.1:{port}/api/health" in output
        # The demo-dsync tenant takes events from the WorkOS stand-in, as the printed command sends them.
        sent = subprocess.run(
            [PYTHON, "-m", "local.workos", "send", "--app", f"http://127.0.0.1:{port}/api/webhooks/workos",
             "--secret", "dev-secret", "--standin", f"http://127.0.0.1:{workos_port}", "dsync.user.created",
             "--organization", "org_demo_dsync", "--email", "ada@demo-dsync.example", "--first-name", "Ada"],
            cwd=PROJECT_ROOT, env=base_environment(), capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stdout + sent.stderr

        def ada() -> tuple | None:
            with psycopg.connect(database_url) as conn:
                return conn.execute(
                    "SELECT u.given_name, u.status FROM users u JOIN tenants t ON t.id = u.tenant_id"
                    " WHERE t.slug = 'demo-dsync' AND u.primary_email = 'ada@demo-dsync.example'").fetchone()

        assert wait_until(ada, timeout=60, message="the sent event to be applied") == ("Ada", "active")
        # Sign-in as a person would do it, without a browser: demo app -> login -> WorkOS stand-in -> back.
        from local.workos import sign_in

        with httpx.Client(timeout=30) as browser:
            home = browser.get("http://127.0.0.1:7090/")
            login_url = next(part.split('"')[0] for part in home.text.split('href="')[1:] if "/api/auth/login" in part)
            to_idp = browser.get(login_url.replace("&amp;", "&"))
            assert to_idp.status_code == 302, to_idp.text
            back = browser.get(sign_in(to_idp.headers["Location"], "ada@demo-sso.example"))
            assert back.status_code == 302, back.text
            landed = browser.get(back.headers["Location"])
        assert landed.status_code == 200, landed.text
        assert "ada@demo-sso.example" in landed.text
        # demo-entra signs in directly with Entra ID: its login goes to the HTTPS Entra stand-in.
        to_entra = httpx.get(f"http://127.0.0.1:{port}/api/auth/login?tenant=demo-entra", timeout=30)
        assert to_entra.status_code == 302, to_entra.text
        assert to_entra.headers["Location"].startswith(f"https://127.0.0.1:{entra_port}/")
        # The demo tenant reads the Personio stand-in: the first sync ran, and Alex has HR context.
        def alex_context() -> tuple | None:
            with psycopg.connect(database_url) as conn:
                return conn.execute(
                    "SELECT e.profile ->> 'job_title', r.status FROM hrms_employees e JOIN users u ON u.id = e.user_id"
                    " JOIN tenants t ON t.id = e.tenant_id JOIN hrms_runs r ON r.tenant_id = t.id"
                    " WHERE t.slug = 'demo' AND u.primary_email = 'alex@demo.example' AND r.status = 'succeeded'"
                ).fetchone()

        assert wait_until(alex_context, timeout=90, message="the demo tenant's first HRMS sync")[0]
        # A tenant app reports a result, as the README shows, and it arrives in the Personio stand-in.
        secret = subprocess.run(
            [PYTHON, "-m", "shared.cli", "--no-local-settings", "app", "secret", "create", "demo", "coach"],
            cwd=PROJECT_ROOT, env=base_environment() | {"DATABASE_URL": database_url,
                                                        "OUTBOUND_ALLOWED_LOCAL_HOSTS": "127.0.0.1"},
            capture_output=True, text=True, timeout=60)
        assert secret.returncode == 0, secret.stderr
        with psycopg.connect(database_url) as conn:
            client_id = conn.execute("SELECT a.client_id FROM apps a JOIN tenants t ON t.id = a.tenant_id"
                                     " WHERE t.slug = 'demo' AND a.name = 'coach'").fetchone()[0]
        app = (client_id, secret.stdout.strip().splitlines()[-1])
        posted = httpx.post(f"http://127.0.0.1:{port}/api/context/demo/results", auth=app, timeout=30, json={
            "result_id": "lms-1", "user": "alex@demo.example", "kind": "completion", "title": "Giving feedback",
            "completed_on": "2026-11-20", "hours": 2})
        assert posted.status_code == 202, posted.text

        def written() -> dict | None:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/context/demo/results/lms-1", auth=app, timeout=30)
            return answer.json() if answer.json().get("status") != "queued" else None

        assert wait_until(written, timeout=60, message="the result to be written")["status"] == "written"
        # A chat in Teams as the summary prints it: the seeded employee talks to the demo coach.
        chat = subprocess.run(
            [PYTHON, "-m", "local.chat", "--tenant", "demo", "--user", "alex@demo.example", "--no-local-settings",
             "--connector", f"http://127.0.0.1:{connector_port}"],
            input="How do I prepare for my review?\n/quit\n", cwd=PROJECT_ROOT,
            env=base_environment() | {"DATABASE_URL": database_url}, capture_output=True, text=True, timeout=120)
        assert chat.returncode == 0, chat.stdout + chat.stderr
        assert "coach> Hi Alex!" in chat.stdout, chat.stdout
        assert "coach> Alex, you said: How do I prepare for my review" in chat.stdout, chat.stdout
    finally:
        code = _interrupt(process)
    assert code == 0, log.read_text()
    assert not port_is_open(port)
    assert not port_is_open(workos_port)
    assert not port_is_open(entra_port)
    assert not port_is_open(connector_port)
    assert not any(port_is_open(azurite_port) for azurite_port in azurite_ports)
    assert not (state / "postgres" / "postmaster.pid").exists()
    assert not (state / "dev-settings.json").exists()


@pytest.mark.e2e
@pytest.mark.skipif(any(port_is_open(port) for port in (7071, *DEFAULT_PORTS))
                    or (PROJECT_ROOT / ".local" / "dev-settings.json").exists(),
                    reason="a make dev is running here: its ports and .local are taken")
def test_the_ops_cli_reaches_the_embedded_database_while_make_dev_runs(tmp_path):
    log = tmp_path / "dev.log"
    process = _start_dev(PROJECT_ROOT / ".local", 7071, DEFAULT_PORTS, log)
    try:
        wait_until(lambda: _healthy(process, "http://127.0.0.1:7071/api/health", log), timeout=120,
                   message="make dev to serve /api/health")
        result = subprocess.run([PYTHON, "-m", "shared.cli", "migrate", "--check"], cwd=PROJECT_ROOT,
                                env=base_environment(), capture_output=True, text=True)
        assert (result.returncode, result.stdout.strip()) == (0, "schema is current"), result.stderr
    finally:
        assert _interrupt(process) == 0, log.read_text()


@pytest.mark.parametrize(("configured", "expected"), [
    ("", 7082), ("https://login.microsoftonline.com", 7082),  # the sample's value: a local run has no Microsoft
    ("https://127.0.0.1:9443", 9443), ("https://login.partner.microsoftonline.cn", None),
])
def test_make_dev_starts_the_entra_stand_in_unless_another_entra_is_configured(configured, expected):
    from local.dev import entra_standin_port

    assert entra_standin_port(configured) == expected
