"""End to end in a real browser: headless Chromium signs in through the real app under the local host.

Each test starts the app (``python -m local.host``) with the test's database and queues, no
PUBLIC_BASE_URL (so the callback is ``http://127.0.0.1:<host port>/api/auth/callback``), and drives the
journey a person makes by clicking:
- a WorkOS tenant (``sso-jit``): the demo tenant app's start page -> Sign in -> the WorkOS stand-in's page
  -> the test user's button -> the demo app's hand-over page with the user's email, the tenant and the
  app_state this browser started with;
- an Entra tenant: the same journey through the HTTPS Entra stand-in's page;
- a Thinkific school as the default app: login -> the WorkOS stand-in -> the school's
  ``/api/sso/v2/sso/jwt?jwt=...``, the JWT signed with the school's API key (HS256).
Chromium and chromium-driver come from Debian (tests/e2e/conftest.py skips, or fails under CI, without them).
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from local.azurite import free_port
from local.demo_app import DemoApp
from local.entra import EntraStandIn
from local.tls import local_ca
from shared import db, queues
from shared.identity import store
from shared.tenants.apps import AppSpec, add_app, create_app_secret
from shared.tenants.registry import TenantChanges, update_tenant
from tests.stack import PROJECT_ROOT, HostProcess, app_environment, start_host

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

STEP_TIMEOUT = 30  # seconds for one click's redirects to settle; the first callback warms up the host
ENTRA_SECRET = "entra-app-secret-for-the-browser-test"
SCHOOL_API_KEY = "thinkific-api-key-for-the-browser-test"
HOST_SETTINGS = ("DATABASE_URL", "AzureWebJobsStorage", "DSYNC_APPLY_QUEUE", "TEAMS_TURNS_QUEUE",
                 "TEAMS_ALERTS_QUEUE", "HRMS_SYNC_QUEUE", "HRMS_WRITEBACK_QUEUE", "WORKOS_API_KEY",
                 "WORKOS_CLIENT_ID", "WORKOS_BASE_URL", "WORKOS_WEBHOOK_SECRET", "OUTBOUND_ALLOWED_LOCAL_HOSTS")


# --- the running pieces ------------------------------------------------------------------------------


@pytest.fixture
def run_host(database, storage, workos_settings, tmp_path) -> Iterator[Callable[..., HostProcess]]:
    """``run_host(**extra_environment)``: the real app on a free port, with this test's database, queues and
    WorkOS stand-in; stopped (cleanly, or its log is shown) after the test."""
    from shared import config

    queues.ensure_queues()
    hosts: list[HostProcess] = []

    def run(**extra: str) -> HostProcess:
        settings = {name: config.SETTINGS[name].raw() or "" for name in HOST_SETTINGS}
        host = start_host(PROJECT_ROOT, app_environment(**settings, **extra), tmp_path, port=free_port())
        hosts.append(host)
        return host

    yield run
    for host in hosts:
        assert host.stop() == 0, host.log()


@pytest.fixture
def entra(tmp_path) -> Iterator[EntraStandIn]:
    with EntraStandIn(local_ca(tmp_path / "ca")) as running:
        yield running


class _School(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[str]


class _SchoolHandler(BaseHTTPRequestHandler):
    server: _School

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        body = b"<!doctype html><title>School</title><h1>Welcome to the school</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test asserts what it saw


@pytest.fixture
def school() -> Iterator[_School]:
    """A fake Thinkific school on 127.0.0.1 that records the paths the browser opens."""
    server = _School(("127.0.0.1", 0), _SchoolHandler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


# --- helpers -----------------------------------------------------------------------------------------


def wait_for_url(browser: WebDriver, prefix: str, host: HostProcess) -> str:
    """Wait until the browser is on a page under ``prefix`` (and it has loaded); answers the URL."""
    try:
        WebDriverWait(browser, STEP_TIMEOUT).until(
            lambda driver: driver.current_url.startswith(prefix)
            and driver.execute_script("return document.readyState") == "complete")
    except TimeoutException:
        page = browser.find_element(By.TAG_NAME, "body").text[:2000]
        raise AssertionError(f"the browser did not reach {prefix} but {browser.current_url}:\n{page}\n\n"
                             f"host log:\n{host.log()[-4000:]}") from None
    return browser.current_url


def claims_table(browser: WebDriver) -> dict[str, str]:
    """The demo app's hand-over page: its claims table as name -> shown value."""
    rows = browser.find_elements(By.CSS_SELECTOR, "#claims tr")
    return {row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "td").text for row in rows}


def last_attempt(tenant) -> tuple[str, str, str | None]:
    with db.transaction(tenant_id=tenant.id) as conn:
        return tuple(conn.execute(
            "SELECT outcome, reason, app_name FROM sign_in_attempts ORDER BY id DESC LIMIT 1").fetchone())


def add_coach(tenant, base_url: str) -> tuple[str, str]:
    """The tenant's default ``instance`` app ``coach`` at ``base_url``; answers its client id and secret."""
    with db.transaction() as conn:
        add_app(conn, tenant, "coach", AppSpec(kind="instance", base_url=base_url))
        app, _, secret = create_app_secret(conn, tenant, "coach", created_by="test")
        update_tenant(conn, tenant.slug, TenantChanges(default_app="coach"))
    return app.client_id, secret


def sign_in_at_the_demo_app(browser: WebDriver, demo: DemoApp, host: HostProcess, idp_page: str,
                            user_button: tuple[str, str]) -> dict[str, str]:
    """The demo app's start page -> Sign in -> the IdP's page -> the user's button -> the hand-over page."""
    browser.get(demo.base_url + "/")
    started_with = browser.get_cookie(demo.cookie_name)["value"]  # the app_state this browser holds
    browser.find_element(By.ID, "sign-in").click()
    wait_for_url(browser, idp_page, host)
    browser.find_element(*user_button).click()
    wait_for_url(browser, f"{demo.base_url}/sso/handover?code=", host)
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == f"Signed in to coach of {demo.tenant}", browser.find_element(By.TAG_NAME, "body").text
    claims = claims_table(browser)
    assert claims["app_state"] == started_with  # the demo app checked it too, or it would show a refusal
    assert browser.get_cookie(demo.cookie_name) is None  # one sign-in per state
    return claims


def server_key_pin(base_url: str) -> str:
    """Chromium's ``--ignore-certificate-errors-spki-list`` value for the server at ``base_url``: the
    base64 SHA-256 of its certificate's SubjectPublicKeyInfo."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    parts = urlsplit(base_url)
    pem = ssl.get_server_certificate((parts.hostname, parts.port))  # not verified: we pin what it serves
    public_key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


# --- the journeys ------------------------------------------------------------------------------------


def test_a_workos_user_signs_in_from_the_demo_app(run_host, make_tenant, workos_settings, chromium):
    standin = workos_settings
    organization = standin.create_organization("Acme", ["acme.example"])
    tenant = make_tenant("acme", provisioning="sso-jit", domains=("acme.example",),
                         workos_organization_id=organization["id"])
    standin.add_sso_user(organization["id"], "ann@acme.example", first_name="Ann", last_name="Archer")
    demo_port = free_port()
    client_id, secret = add_coach(tenant, f"http://127.0.0.1:{demo_port}")
    host = run_host()
    browser = chromium()
    with DemoApp(demo_port, host.base_url, client_id, secret, tenant="acme", app="coach") as demo:
        claims = sign_in_at_the_demo_app(
            browser, demo, host, f"{standin.base_url}/sso/authorize?",
            (By.XPATH, "//button[contains(., '<ann@acme.example>')]"))

    assert (claims["user.email"], claims["user.given_name"], claims["user.family_name"]) == (
        "ann@acme.example", "Ann", "Archer")
    assert (claims["tenant.slug"], claims["tenant.id"], claims["app"]) == ("acme", tenant.id, "coach")
    assert last_attempt(tenant) == ("granted", "signed_in", "coach")


def test_an_entra_user_signs_in_from_the_demo_app(run_host, make_tenant, entra, chromium):
    tid, entra_client_id = str(uuid.uuid4()), str(uuid.uuid4())
    tenant = make_tenant("contoso", provisioning="sso-jit", domains=("contoso.example",), sso_provider="entra",
                         entra_tenant_id=tid, entra_client_id=entra_client_id)
    entra.add_user(tid, "ada@contoso.example", given_name="Ada", family_name="Lovelace", roles=["coach"])
    demo_port = free_port()
    client_id, secret = add_coach(tenant, f"http://127.0.0.1:{demo_port}")
    # The host's MSAL (requests) trusts the local CA through the bundle; nothing else in it changes.
    host = run_host(ENTRA_AUTHORITY_HOST=entra.base_url, SECRET_TENANT_CONTOSO_ENTRA=ENTRA_SECRET,
                    SSL_CERT_FILE=str(entra.ca.bundle_path), REQUESTS_CA_BUNDLE=str(entra.ca.bundle_path))
    entra.register_app(tid, entra_client_id, ENTRA_SECRET, [f"{host.base_url}/api/auth/callback"])
    # Chromium ignores SSL_CERT_FILE, and trusting the local CA would take an NSS database (certutil).
    # Pinning the stand-in's own key accepts that one server for this browser only, not every bad
    # certificate as --ignore-certificate-errors would.
    browser = chromium(f"--ignore-certificate-errors-spki-list={server_key_pin(entra.base_url)}")
    with DemoApp(demo_port, host.base_url, client_id, secret, tenant="contoso", app="coach") as demo:
        claims = sign_in_at_the_demo_app(
            browser, demo, host, f"{entra.base_url}/{tid}/oauth2/v2.0/authorize?",
            (By.CSS_SELECTOR, 'button[value="user:ada@contoso.example"]'))

    assert (claims["user.email"], claims["user.given_name"], claims["user.family_name"]) == (
        "ada@contoso.example", "Ada", "Lovelace")
    assert (claims["tenant.slug"], claims["tenant.id"], claims["user.roles"]) == ("contoso", tenant.id, "coach")
    assert last_attempt(tenant) == ("granted", "signed_in", "coach")


def test_a_learner_lands_at_the_thinkific_school_with_a_verifiable_jwt(run_host, make_tenant, workos_settings,
                                                                      school, chromium):
    standin = workos_settings
    organization = standin.create_organization("Globex", ["globex.example"])
    tenant = make_tenant("globex", provisioning="sso-jit", domains=("globex.example",),
                         workos_organization_id=organization["id"])
    standin.add_sso_user(organization["id"], "lea@globex.example", first_name="Lea", last_name="Learner")
    school_url = f"http://127.0.0.1:{school.server_address[1]}"  # http: 127.0.0.1 is an allowed local host
    with db.transaction() as conn:
        add_app(conn, tenant, "school", AppSpec(kind="thinkific", base_url=school_url,
                                                outbound_secret_refs={"api-key": "globex-school-key"}))
        update_tenant(conn, "globex", TenantChanges(default_app="school"))
    host = run_host(SECRET_GLOBEX_SCHOOL_KEY=SCHOOL_API_KEY)  # what the reference resolves to locally
    browser = chromium()

    browser.get(f"{host.base_url}/api/auth/login?tenant=globex&return_to=/courses/intro")
    wait_for_url(browser, f"{standin.base_url}/sso/authorize?", host)
    browser.find_element(By.XPATH, "//button[contains(., '<lea@globex.example>')]").click()
    landed = urlsplit(wait_for_url(browser, f"{school_url}/api/sso/v2/sso/jwt?", host))

    assert browser.find_element(By.TAG_NAME, "h1").text == "Welcome to the school"
    assert f"{landed.path}?{landed.query}" in school.seen  # the school itself received the JWT (and a favicon ask)
    query = {name: values[0] for name, values in parse_qs(landed.query).items()}
    claims = jwt.decode(query["jwt"], SCHOOL_API_KEY, algorithms=["HS256"])
    with db.transaction() as conn:
        lea = store.find_user(conn, tenant, "lea@globex.example")
    assert (claims["email"], claims["external_id"]) == ("lea@globex.example", lea.id)
    assert (claims["first_name"], claims["last_name"]) == ("Lea", "Learner")
    assert isinstance(claims["iat"], int)
    assert query["return_to"] == f"{school_url}/courses/intro"
    assert last_attempt(tenant) == ("granted", "signed_in", "school")

