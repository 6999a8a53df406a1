"""The WorkOS stand-in (local/workos.py) as the official SDK sees it: every shape parses into the SDK's own
models, errors map to the SDK's error classes, signatures pass the SDK's verifier."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from workos import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    RateLimitExceededError,
    UnprocessableEntityError,
    WorkOSClient,
    create_public_client,
)
from workos.common.models.dsync_activated import DsyncActivated
from workos.common.models.dsync_deleted import DsyncDeleted
from workos.common.models.dsync_group_created import DsyncGroupCreated
from workos.common.models.dsync_group_deleted import DsyncGroupDeleted
from workos.common.models.dsync_group_updated import DsyncGroupUpdated
from workos.common.models.dsync_group_user_added import DsyncGroupUserAdded
from workos.common.models.dsync_group_user_removed import DsyncGroupUserRemoved
from workos.common.models.dsync_user_created import DsyncUserCreated
from workos.common.models.dsync_user_deleted import DsyncUserDeleted
from workos.common.models.dsync_user_updated import DsyncUserUpdated
from workos.organizations.models import Organization
from workos.sso.models import Profile, SSOTokenResponse

import local.workos as standin_module
from local.workos import ApiError, WorkOSStandIn, deny, new_id, send_webhook, sign, sign_in
from tests.stack import PROJECT_ROOT, PYTHON, base_environment

DSYNC_MODELS = {
    "dsync.activated": DsyncActivated,
    "dsync.deleted": DsyncDeleted,
    "dsync.user.created": DsyncUserCreated,
    "dsync.user.updated": DsyncUserUpdated,
    "dsync.user.deleted": DsyncUserDeleted,
    "dsync.group.created": DsyncGroupCreated,
    "dsync.group.updated": DsyncGroupUpdated,
    "dsync.group.deleted": DsyncGroupDeleted,
    "dsync.group.user_added": DsyncGroupUserAdded,
    "dsync.group.user_removed": DsyncGroupUserRemoved,
}
CROCKFORD = "[0-9A-HJKMNP-TV-Z]"
ULID_TAIL = f"{CROCKFORD}{{26}}"


@pytest.fixture
def standin() -> Iterator[WorkOSStandIn]:
    with WorkOSStandIn() as running:
        yield running


def sdk(standin: WorkOSStandIn, api_key: str | None = None) -> WorkOSClient:
    return WorkOSClient(api_key=api_key or standin.api_key, client_id=standin.client_id,
                        base_url=standin.base_url, max_retries=0)


def a_directory(standin: WorkOSStandIn, name: str = "Acme", domain: str = "acme.example") -> dict:
    organization = standin.create_organization(name, [domain])
    return standin.add_directory(organization["id"])


def test_the_sdk_parses_every_dsync_event_into_its_own_model(standin):
    directory = a_directory(standin)
    user = standin.directory_user(directory, email="ada@acme.example", first_name="Ada", last_name="Lovelace",
                                  role_slug="coach", custom_attributes={"department": "R&D"})
    group = standin.directory_group(directory, name="Coaches")
    payloads = {
        "dsync.activated": standin.directory_payload(directory),
        "dsync.user.created": user,
        "dsync.group.created": group,
        "dsync.group.user_added": standin.membership_payload(directory, user, group),
        "dsync.user.updated": {**user, "state": "inactive"},
        "dsync.group.updated": {**group, "name": "Head coaches"},
        "dsync.group.user_removed": standin.membership_payload(directory, user, group),
        "dsync.user.deleted": {**user, "state": "inactive"},
        "dsync.group.deleted": group,
        "dsync.deleted": standin.directory_payload(directory, state="deleting"),
    }
    emitted = [standin.emit(kind, data) for kind, data in payloads.items()]

    page = sdk(standin).events.list_events(events=list(DSYNC_MODELS), limit=100)

    assert [event.id for event in page.data] == [event["id"] for event in emitted]
    assert [type(event) for event in page.data] == [DSYNC_MODELS[kind] for kind in payloads]
    parsed = {event.event: event for event in page.data}
    assert parsed["dsync.activated"].data.domains[0].domain == "acme.example"
    assert parsed["dsync.activated"].data.organization_id == directory["organization_id"]
    assert parsed["dsync.user.created"].data.email == "ada@acme.example"
    assert parsed["dsync.user.created"].data.role.slug == "coach"
    assert parsed["dsync.user.created"].data.custom_attributes == {"department": "R&D"}
    # The stand-in fills previous_attributes from the last payload of the same object, as WorkOS does.
    assert parsed["dsync.user.updated"].data.previous_attributes == {"state": "active"}
    assert parsed["dsync.group.updated"].data.previous_attributes == {"name": "Coaches"}
    assert parsed["dsync.group.user_added"].data.group.name == "Coaches"
    assert parsed["dsync.deleted"].data.state == "deleting"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["created_at"]) for event in emitted)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", user["updated_at"])


def test_paging_with_after_serves_every_event_once_in_order_and_the_last_page_has_no_cursor(standin):
    directory = a_directory(standin)
    emitted = [standin.emit("dsync.user.created", standin.directory_user(directory, email=f"u{n}@acme.example"))
               for n in range(23)]
    client = sdk(standin)

    seen, cursors, after = [], [], None
    while True:
        page = client.events.list_events(events=["dsync.user.created"], limit=10, after=after)
        seen += [event.id for event in page.data]
        cursors.append(page.list_metadata.after)
        if page.list_metadata.after is None:
            break
        after = page.list_metadata.after

    assert seen == [event["id"] for event in emitted]
    assert cursors == [emitted[9]["id"], emitted[19]["id"], None]
    first = client.events.list_events(events=["dsync.user.created"], limit=10)
    assert first.list_metadata.before is None
    assert [event.id for event in first.auto_paging_iter()] == seen
    # After the newest event: an empty page, no cursor; a poller keeps its last processed id instead.
    tail = client.events.list_events(events=["dsync.user.created"], after=emitted[-1]["id"])
    assert (tail.data, tail.list_metadata.after) == ([], None)
    # `after` is exclusive and works from any id, even one of an event the filter hides.
    hidden = standin.emit("dsync.group.created", standin.directory_group(directory, name="G"))
    newer = standin.emit("dsync.user.created", standin.directory_user(directory, email="late@acme.example"))
    page = client.events.list_events(events=["dsync.user.created"], after=hidden["id"])
    assert [event.id for event in page.data] == [newer["id"]]
    page = client.events.list_events(events=["dsync.user.created"], after=emitted[21]["id"])
    assert [event.id for event in page.data] == [emitted[22]["id"], newer["id"]]


def test_the_events_and_organization_filters_and_the_exclusive_range(standin):
    acme, globex = a_directory(standin, "Acme", "acme.example"), a_directory(standin, "Globex", "globex.example")
    acme_user = standin.emit("dsync.user.created", standin.directory_user(acme, email="a@acme.example"))
    globex_user = standin.emit("dsync.user.created", standin.directory_user(globex, email="g@globex.example"))
    acme_group = standin.emit("dsync.group.created", standin.directory_group(acme, name="Coaches"))
    membership = standin.emit("dsync.group.user_added", standin.membership_payload(
        acme, acme_user["data"], acme_group["data"]))
    client = sdk(standin)

    def ids(**filters) -> list[str]:
        return [event.id for event in client.events.list_events(limit=100, **filters).data]

    assert ids(events=["dsync.user.created"]) == [acme_user["id"], globex_user["id"]]
    assert ids(events=["dsync.group.created", "dsync.group.user_added"]) == [acme_group["id"], membership["id"]]
    all_kinds = ["dsync.user.created", "dsync.group.created", "dsync.group.user_added"]
    assert ids(events=all_kinds, organization_id=globex["organization_id"]) == [globex_user["id"]]
    assert ids(events=all_kinds, organization_id=acme["organization_id"]) == [
        acme_user["id"], acme_group["id"], membership["id"]]
    start = datetime.fromisoformat(acme_user["created_at"])
    assert acme_user["id"] not in ids(events=all_kinds, range_start=start)
    assert ids(events=all_kinds, range_end=start) == []
    assert ids(events=["dsync.user.created"], order="desc") == [globex_user["id"], acme_user["id"]]


def test_events_older_than_the_retention_are_not_served():
    with WorkOSStandIn(retention_days=90) as standin:
        directory = a_directory(standin)
        now = datetime.now(UTC)
        expired = standin.emit("dsync.user.created", standin.directory_user(directory, email="old@acme.example"),
                               created_at=now - timedelta(days=91))
        kept = standin.emit("dsync.user.created", standin.directory_user(directory, email="new@acme.example"),
                            created_at=now - timedelta(days=89))

        page = sdk(standin).events.list_events(events=["dsync.user.created"])

        assert [event.id for event in page.data] == [kept["id"]]
        assert [event["id"] for event in standin.events()] == [expired["id"], kept["id"]]


def test_bad_event_queries_get_the_errors_workos_documents(standin):
    client = sdk(standin)
    with pytest.raises(UnprocessableEntityError) as missing:
        client.events.list_events(events=[])
    assert missing.value.errors == [{"code": "required", "field": "events"}]
    with pytest.raises(BadRequestError) as malformed:
        client.events.list_events(events=["dsync user created"])
    assert malformed.value.code == "invalid_events_request"
    for bad in ({"limit": 0}, {"limit": 101}, {"range_start": "2026-01-01T00:00:00+00:00"}, {"order": "sideways"}):
        with pytest.raises(UnprocessableEntityError):
            client.events.list_events(events=["dsync.user.created"], **bad)
    response = httpx.get(f"{standin.base_url}/nowhere", headers={"Authorization": f"Bearer {standin.api_key}"})
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_an_admin_portal_link_opens_its_page_for_five_minutes(standin, monkeypatch):
    organization = standin.create_organization("Acme & Sons", ["acme.example"])
    client = sdk(standin)

    link = client.admin_portal.generate_link(organization=organization["id"], intent="dsync",
                                             return_url="https://app.example/settings").link

    assert link.startswith(f"{standin.base_url}/portal/launch?secret=")
    assert [(entry["organization"], entry["intent"], entry["link"]) for entry in standin.portal_links] == [
        (organization["id"], "dsync", link)]
    page = httpx.get(link)
    assert page.status_code == 200
    assert "WorkOS Admin Portal (local stand-in): dsync for Acme &amp; Sons" in page.text
    assert httpx.get(f"{standin.base_url}/portal/launch?secret=guessed").status_code == 404
    later = datetime.now(UTC) + timedelta(minutes=5, seconds=1)
    monkeypatch.setattr(standin_module, "_utcnow", lambda: later)
    assert httpx.get(link).status_code == 404


def test_admin_portal_errors_map_to_the_sdk_errors(standin):
    organization = standin.create_organization("Acme", ["acme.example"])
    client = sdk(standin)
    with pytest.raises(NotFoundError) as unknown:
        client.admin_portal.generate_link(organization="org_01UNKNOWN", intent="dsync")
    assert "org_01UNKNOWN" in unknown.value.message
    with pytest.raises(UnprocessableEntityError):
        client.admin_portal.generate_link(organization=organization["id"], intent="billing")
    assert standin.portal_links == []


def test_organizations_parse_and_a_domain_belongs_to_one_organization(standin):
    client = sdk(standin)

    created = client.organizations.create_organization(name="Acme", domains=["Acme.example", "acme.io"])

    assert isinstance(created, Organization)
    assert created.id.startswith("org_01")
    assert [(domain.domain, domain.organization_id) for domain in created.domains] == [
        ("acme.example", created.id), ("acme.io", created.id)]
    assert client.organizations.get_organization(created.id) == created
    assert [organization.id for organization in client.organizations.list_organizations().data] == [created.id]
    with pytest.raises(ConflictError):
        client.organizations.create_organization(name="Impostor", domains=["acme.io"])
    with pytest.raises(NotFoundError):
        client.organizations.get_organization("org_01NOPE")
    newer = client.organizations.create_organization(name="Globex")
    listed = client.organizations.list_organizations(limit=1)
    assert [organization.id for organization in listed.data] == [newer.id]  # newest first by default
    assert [organization.id for organization in listed.auto_paging_iter()] == [newer.id, created.id]


def test_a_wrong_api_key_is_the_sdk_authentication_error(standin):
    with pytest.raises(AuthenticationError):
        sdk(standin, api_key="sk_test_wrong").events.list_events(events=["dsync.user.created"])
    response = httpx.get(f"{standin.base_url}/events?events=dsync.user.created")
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized", "code": "unauthorized"})
    assert response.headers["X-Request-ID"]


def test_beyond_the_rate_limit_the_sdk_raises_with_retry_after():
    with WorkOSStandIn(requests_per_second=2) as standin:
        client = sdk(standin)
        client.events.list_events(events=["dsync.user.created"])
        client.events.list_events(events=["dsync.user.created"])
        with pytest.raises(RateLimitExceededError) as limited:
            client.events.list_events(events=["dsync.user.created"])
        assert limited.value.retry_after == 1.0
        raw = httpx.get(f"{standin.base_url}/events?events=dsync.user.created",
                        headers={"Authorization": f"Bearer {standin.api_key}"})
        assert (raw.status_code, raw.headers["Retry-After"], raw.json()["code"]) == (429, "1", "rate_limit_exceeded")
        # The control endpoints are plumbing, never limited.
        assert httpx.get(f"{standin.base_url}/_standin/events",
                         headers={"Authorization": f"Bearer {standin.api_key}"}).status_code == 200
        time.sleep(1.05)
        client.events.list_events(events=["dsync.user.created"])


@settings(max_examples=60, deadline=None)
@given(body=st.text(alphabet=st.characters(codec="utf-8")), secret=st.text(st.characters(codec="utf-8"), min_size=1))
def test_sign_is_what_the_sdk_verifier_accepts(body, secret):
    verifier = WorkOSClient(api_key="x", base_url="http://127.0.0.1:9").webhooks
    raw = body.encode()

    verifier.verify_header(event_body=raw, event_signature=sign(raw, secret), secret=secret)

    with pytest.raises(ValueError, match="Signature hash"):
        verifier.verify_header(event_body=raw, event_signature=sign(raw, secret), secret=secret + "x")


def test_the_signature_timestamp_is_in_milliseconds_with_comma_and_space():
    verifier = WorkOSClient(api_key="x", base_url="http://127.0.0.1:9").webhooks
    header = sign(b"{}", "whsec")
    assert re.fullmatch(r"t=\d{13}, v1=[0-9a-f]{64}", header)
    stale = sign(b"{}", "whsec", timestamp_ms=int(time.time() * 1000) - 181_000)
    with pytest.raises(ValueError, match="tolerance"):
        verifier.verify_header(event_body=b"{}", event_signature=stale, secret="whsec")


@contextmanager
def webhook_receiver(status: int = 200) -> Iterator[tuple[str, list[tuple[bytes, dict]]]]:
    received: list[tuple[bytes, dict]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.rfile.read(int(self.headers["Content-Length"])), dict(self.headers)))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/webhooks/workos", received
    finally:
        server.shutdown()
        server.server_close()


def test_send_webhook_posts_the_event_as_a_signed_raw_body(standin):
    directory = a_directory(standin)
    event = standin.emit("dsync.user.created", standin.directory_user(directory, email="zoë@acme.example"))
    with webhook_receiver(202) as (url, received):
        response = send_webhook(url, event, "whsec_local")
    assert response.status_code == 202
    [(body, headers)] = received
    verified = sdk(standin).webhooks.verify_event(event_body=body, event_signature=headers["WorkOS-Signature"],
                                                  secret="whsec_local")
    assert isinstance(verified, DsyncUserCreated)
    assert (verified.id, verified.data.email) == (event["id"], "zoë@acme.example")


def test_new_ids_strictly_increase_even_within_one_millisecond():
    ids = [new_id("event") for _ in range(5000)]
    assert all(re.fullmatch(f"event_01{CROCKFORD}{{24}}", value) for value in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    stamps = [value[len("event_"):][:10] for value in ids]
    assert len(set(stamps)) < len(stamps)  # many shared a millisecond

    per_thread: list[list[str]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda out=out: out.extend(new_id("x") for _ in range(2000)))
               for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(out == sorted(out) for out in per_thread)
    assert len({value for out in per_thread for value in out}) == 8000


def test_the_control_endpoints_drive_a_stand_in_in_another_process(standin):
    control = httpx.Client(base_url=standin.base_url, headers={"Authorization": f"Bearer {standin.api_key}"})
    assert httpx.get(f"{standin.base_url}/_standin/events").status_code == 401

    created = control.post("/_standin/organizations", json={"id": "org_demo", "name": "Demo", "domains": ["d.example"]})
    again = control.post("/_standin/organizations", json={"id": "org_demo", "name": "Demo"})
    directory = control.post("/_standin/directories", json={"organization_id": "org_demo", "id": "directory_demo"})
    user = standin.directory_user(directory.json(), email="ada@d.example")
    event = control.post("/_standin/events", json={"event": "dsync.user.created", "data": user,
                                                   "created_at": "2026-01-02T03:04:05.678Z"})

    assert (created.status_code, again.status_code, again.json()["id"]) == (201, 200, "org_demo")
    assert (directory.status_code, directory.json()["organization_id"]) == (201, "org_demo")
    assert event.status_code == 201
    assert event.json()["created_at"] == "2026-01-02T03:04:05.678Z"
    assert control.get("/_standin/events").json() == standin.events() == [event.json()]
    assert control.post("/_standin/directories", json={"id": "directory_new"}).status_code == 422


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "local.workos", *arguments], cwd=PROJECT_ROOT, env=base_environment(),
                          capture_output=True, text=True, timeout=60)


def test_send_creates_the_event_in_the_stand_in_and_delivers_the_same_id_signed(standin):
    common = ["--secret", "whsec_demo", "--standin", standin.base_url, "--api-key", standin.api_key]
    client = sdk(standin)
    with webhook_receiver() as (url, received):
        created = run_cli("send", "--app", url, *common, "dsync.user.created", "--organization", "org_demo",
                          "--email", "ada@demo-dsync.example", "--first-name", "Ada", "--last-name", "Lovelace",
                          "--attr", "department=R&D")
        updated = run_cli("send", "--app", url, *common, "dsync.user.updated", "--organization", "org_demo",
                          "--email", "ada@demo-dsync.example", "--state", "inactive")
    assert created.returncode == 0, created.stderr
    assert updated.returncode == 0, updated.stderr
    created_id = re.fullmatch(rf"(event_{ULID_TAIL}) dsync\.user\.created -> 200 OK\n", created.stdout).group(1)
    updated_id = re.fullmatch(rf"(event_{ULID_TAIL}) dsync\.user\.updated -> 200 OK\n", updated.stdout).group(1)

    delivered = [client.webhooks.verify_event(event_body=body, event_signature=headers["WorkOS-Signature"],
                                              secret="whsec_demo") for body, headers in received]
    polled = client.events.list_events(events=["dsync.user.created", "dsync.user.updated"]).data
    assert [event.id for event in delivered] == [event.id for event in polled] == [created_id, updated_id]
    first, second = polled
    assert second.data.id == first.data.id  # derived from the directory and the email
    assert (second.data.first_name, second.data.state) == ("Ada", "inactive")
    assert second.data.custom_attributes == {"department": "R&D"}
    assert second.data.previous_attributes == {"state": "active"}
    assert second.data.organization_id == "org_demo"


def test_send_without_an_app_only_feeds_the_events_api_and_help_explains_it(standin):
    result = run_cli("send", "--standin", standin.base_url, "dsync.group.created", "--organization", "org_x",
                     "--group", "Coaches")
    assert result.returncode == 0, result.stderr
    [event] = standin.events()
    assert event["data"]["name"] == "Coaches"
    assert result.stdout == f"{event['id']} dsync.group.created (in the Events API only: no --app given)\n"

    missing = run_cli("send", "--standin", standin.base_url, "dsync.user.created", "--organization", "org_x")
    assert missing.returncode == 2
    assert "needs --email" in missing.stderr
    help_text = run_cli("send", "--help")
    assert help_text.returncode == 0
    assert "derived" in help_text.stdout
    assert "--organization" in help_text.stdout
    assert json.dumps(standin.events())  # the log stays JSON-serializable


# --- SSO --------------------------------------------------------------------------------------------------

CALLBACK = "https://app.example/sso/callback"


def callback_query(location: str) -> dict[str, str]:
    """The query of a redirect to CALLBACK, one value per name."""
    assert location.startswith(CALLBACK + "?"), location
    return {name: values[-1] for name, values in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def test_the_sdk_authorization_url_opens_a_sign_in_page_listing_the_organization_users(standin):
    organization = standin.create_organization("Acme & Sons", ["acme.example"])
    other = standin.create_organization("Globex", ["globex.example"])
    standin.add_sso_user(organization["id"], "ada@acme.example", first_name="Ada", last_name="Lovelace",
                         role="coach", groups=["Coaches <EU>"])
    standin.add_sso_user(other["id"], "hank@globex.example")

    url = sdk(standin).sso.get_authorization_url(redirect_uri=CALLBACK, state="s1", organization=organization["id"],
                                                 login_hint="bob@acme.example")
    page = httpx.get(url)

    assert url.startswith(f"{standin.base_url}/sso/authorize?")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Sign in to Acme &amp; Sons (WorkOS stand-in)" in page.text
    assert "Ada Lovelace &lt;ada@acme.example&gt; — roles: coach; groups: Coaches &lt;EU&gt;" in page.text
    assert "hank@globex.example" not in page.text  # only this organization's users
    assert 'value="bob@acme.example"' in page.text  # login_hint prefills the form
    assert "Deny" in page.text
    by_connection = sdk(standin).sso.get_authorization_url(
        redirect_uri=CALLBACK, connection=standin.sso_connection(organization["id"])["id"])
    assert "ada@acme.example" in httpx.get(by_connection).text


def test_sign_in_then_get_profile_and_token_parses_into_the_sdk_models(standin):
    organization = standin.create_organization("Acme", ["acme.example"])
    connection = standin.sso_connection(organization["id"])
    added = standin.add_sso_user(organization["id"], "ada@acme.example", first_name="Ada", last_name="Lovelace",
                                 role="admin", roles=["coach"], groups=["Coaches", "Admins"])
    client = sdk(standin)

    location = sign_in(client.sso.get_authorization_url(redirect_uri=CALLBACK + "?from=app", state="opaque state",
                                                        organization=organization["id"]), "ada@acme.example")
    query = parse_qs(urlsplit(location).query)
    result = client.sso.get_profile_and_token(code=query["code"][0])

    assert (query["state"], query["from"]) == (["opaque state"], ["app"])  # the app's own query is kept
    assert isinstance(result, SSOTokenResponse)
    assert isinstance(result.profile, Profile)
    assert (result.token_type, result.expires_in) == ("Bearer", 600)
    assert result.access_token
    profile = result.profile
    assert profile.id == added["id"]
    assert (profile.organization_id, profile.connection_id) == (organization["id"], connection["id"])
    assert connection["id"].startswith("conn_")
    assert profile.connection_type == "OktaSAML"
    assert (profile.email, profile.first_name, profile.last_name, profile.name) == (
        "ada@acme.example", "Ada", "Lovelace", "Ada Lovelace")
    assert profile.role.slug == "admin"
    assert [role.slug for role in profile.roles] == ["admin", "coach"]
    assert profile.groups == ["Coaches", "Admins"]
    assert (profile.custom_attributes, profile.raw_attributes) == ({}, {})
    assert profile.idp_id

    # A typed user is added (default role, as WorkOS gives users with no mapped group) and listed afterwards.
    url = client.sso.get_authorization_url(redirect_uri=CALLBACK, state="s2", organization=organization["id"])
    typed = client.sso.get_profile_and_token(code=callback_query(sign_in(
        url, "bob@acme.example", first_name="Bob", groups="Learners, Coaches"))["code"]).profile
    assert (typed.first_name, typed.role.slug, typed.groups) == ("Bob", "member", ["Learners", "Coaches"])
    assert "bob@acme.example" in httpx.get(url).text
    again = client.sso.get_profile_and_token(code=callback_query(sign_in(url, "bob@acme.example"))["code"]).profile
    assert again.id == typed.id  # the same person keeps their profile id


def test_the_pkce_round_trip_and_its_refusals(standin):
    organization = standin.create_organization("Acme", ["acme.example"])
    standin.add_sso_user(organization["id"], "ada@acme.example", role="coach")
    client = sdk(standin)

    def pkce_code() -> tuple[str, str]:
        started = client.sso.get_authorization_url_with_pkce(redirect_uri=CALLBACK, organization=organization["id"])
        query = callback_query(sign_in(started["url"], "ada@acme.example"))
        assert query["state"] == started["state"]  # the SDK made up the state; it comes back
        return query["code"], started["code_verifier"]

    code, verifier = pkce_code()
    with pytest.raises(BadRequestError) as wrong:
        client.sso.get_profile_and_token_pkce(code=code, code_verifier="x" * 43)
    assert (wrong.value.error, wrong.value.error_description) == (
        "invalid_grant", "code_verifier does not match the code_challenge.")
    with pytest.raises(BadRequestError, match="code_verifier is required"):
        client.sso.get_profile_and_token(code=code)  # the non-PKCE call sends no verifier
    # Refusals do not spend the code: the right verifier still works, once.
    result = client.sso.get_profile_and_token_pkce(code=code, code_verifier=verifier)
    assert (result.profile.email, result.profile.role.slug) == ("ada@acme.example", "coach")
    with pytest.raises(BadRequestError, match="already been used"):
        client.sso.get_profile_and_token_pkce(code=code, code_verifier=verifier)

    # A public client (no API key) may exchange a PKCE code, and only a PKCE code.
    public = create_public_client(client_id=standin.client_id, base_url=standin.base_url)
    code, verifier = pkce_code()
    assert public.sso.get_profile_and_token_pkce(code=code, code_verifier=verifier).profile.email == "ada@acme.example"
    plain = callback_query(sign_in(client.sso.get_authorization_url(redirect_uri=CALLBACK,
                                                                    organization=organization["id"]),
                                   "ada@acme.example"))["code"]
    with pytest.raises(AuthenticationError):
        public.sso.get_profile_and_token(code=plain)
    with pytest.raises(BadRequestError, match="no code_challenge"):
        client.sso.get_profile_and_token(code=plain, code_verifier=verifier)


def test_a_code_works_once_for_its_client_within_ten_minutes(standin, monkeypatch):
    organization = standin.create_organization("Acme", ["acme.example"])
    standin.add_sso_user(organization["id"], "ada@acme.example")
    client = sdk(standin)

    def new_code() -> str:
        url = client.sso.get_authorization_url(redirect_uri=CALLBACK, organization=organization["id"])
        return callback_query(sign_in(url, "ada@acme.example"))["code"]

    code = new_code()
    with pytest.raises(AuthenticationError):
        sdk(standin, api_key="sk_test_wrong").sso.get_profile_and_token(code=code)
    other_client = WorkOSClient(api_key=standin.api_key, client_id="client_other", base_url=standin.base_url,
                                max_retries=0)
    with pytest.raises(BadRequestError) as wrong_client:
        other_client.sso.get_profile_and_token(code=code)
    assert wrong_client.value.error == "invalid_grant"
    client.sso.get_profile_and_token(code=code)
    with pytest.raises(BadRequestError) as reused:
        client.sso.get_profile_and_token(code=code)
    assert reused.value.response_json == {"error": "invalid_grant",
                                          "error_description": f"The code '{code}' has already been used."}
    with pytest.raises(BadRequestError, match="expired or is invalid"):
        client.sso.get_profile_and_token(code="guessed")

    late = new_code()
    later = datetime.now(UTC) + timedelta(minutes=10, seconds=1)
    monkeypatch.setattr(standin_module, "_utcnow", lambda: later)
    with pytest.raises(BadRequestError, match="expired or is invalid"):
        client.sso.get_profile_and_token(code=late)

    # What the SDK sends, checked on the wire: a wrong client_secret alone is invalid_client.
    raw = httpx.post(f"{standin.base_url}/sso/token", json={
        "code": "x", "grant_type": "authorization_code", "client_id": standin.client_id, "client_secret": "nope"})
    assert (raw.status_code, raw.json()["error"]) == (401, "invalid_client")
    raw = httpx.post(f"{standin.base_url}/sso/token", headers={"Authorization": f"Bearer {standin.api_key}"},
                     json={"code": "x", "grant_type": "password", "client_id": standin.client_id})
    assert (raw.status_code, raw.json()["error"]) == (400, "unsupported_grant_type")


def test_deny_redirects_with_access_denied_and_the_state(standin):
    organization = standin.create_organization("Acme", ["acme.example"])
    url = sdk(standin).sso.get_authorization_url(redirect_uri=CALLBACK, state="s-deny", organization=organization["id"])

    query = callback_query(deny(url))

    assert query["error"] == "access_denied"
    assert query["error_description"]
    assert query["state"] == "s-deny"
    assert "code" not in query


def test_a_sign_in_page_is_submitted_once(standin):
    organization = standin.create_organization("Acme", ["acme.example"])
    user = standin.add_sso_user(organization["id"], "ada@acme.example")
    page = httpx.get(sdk(standin).sso.get_authorization_url(redirect_uri=CALLBACK, organization=organization["id"]))
    request_id = re.search(r'name="request" value="([^"]+)"', page.text).group(1)
    form = {"request": request_id, "user": user["id"]}

    first = httpx.post(f"{standin.base_url}/sso/authorize/complete", data=form)
    second = httpx.post(f"{standin.base_url}/sso/authorize/complete", data=form)

    assert first.status_code == 302
    assert "state" not in callback_query(first.headers["Location"])  # the app sent none
    assert second.status_code == 400
    assert "start the sign-in again" in second.text


def test_idp_initiated_sign_in_arrives_with_no_state(standin):
    organization = standin.create_organization("Acme", ["acme.example"])
    standin.add_sso_user(organization["id"], "ada@acme.example", role="coach")

    answer = httpx.get(f"{standin.base_url}/sso/idp_initiated",
                       params={"organization": organization["id"], "redirect_uri": CALLBACK,
                               "email": "ada@acme.example"})

    assert answer.status_code == 302
    query = callback_query(answer.headers["Location"])
    assert set(query) == {"code"}
    profile = sdk(standin).sso.get_profile_and_token(code=query["code"]).profile
    assert (profile.organization_id, profile.email, profile.role.slug) == (
        organization["id"], "ada@acme.example", "coach")


def test_bad_authorization_requests_get_an_error_page():
    with WorkOSStandIn(redirect_uris=["https://*.app.example/cb", CALLBACK]) as standin:
        organization = standin.create_organization("Acme", ["acme.example"])
        other = standin.create_organization("Globex", ["globex.example"])
        good = {"client_id": standin.client_id, "response_type": "code", "redirect_uri": CALLBACK,
                "organization": organization["id"]}

        def page(**changes) -> httpx.Response:
            params = {name: value for name, value in {**good, **changes}.items() if value is not None}
            return httpx.get(f"{standin.base_url}/sso/authorize", params=params)

        assert page().status_code == 200
        assert page(redirect_uri="https://acme.app.example/cb").status_code == 200
        for changes, message in [
            ({"client_id": "client_other"}, "Invalid client_id"),
            ({"response_type": "token"}, "response_type must be"),
            ({"organization": "org_01UNKNOWN"}, "org_01UNKNOWN"),
            ({"organization": None}, "Pass organization or connection"),
            ({"organization": None, "connection": "conn_UNKNOWN"}, "conn_UNKNOWN"),
            ({"connection": standin.sso_connection(other["id"])["id"]}, "does not belong"),
            ({"redirect_uri": "https://evil.example/cb"}, "not one of the configured"),
            ({"redirect_uri": "https://a.b.app.example/cb"}, "not one of the configured"),
            ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "S256"),
        ]:
            answer = page(**changes)
            assert answer.status_code == 400, changes
            assert answer.headers["Content-Type"].startswith("text/html")
            assert message in answer.text, (changes, answer.text)
        with pytest.raises(ApiError, match="Invalid client_id") as refused:
            sign_in(f"{standin.base_url}/sso/authorize?client_id=nope", "ada@acme.example")
        assert refused.value.status == 400


def test_sso_users_through_the_control_endpoint(standin):
    control = httpx.Client(base_url=standin.base_url, headers={"Authorization": f"Bearer {standin.api_key}"})
    control.post("/_standin/organizations", json={"id": "org_demo", "name": "Demo", "connection_type": "AzureSAML"})
    fields = {"organization_id": "org_demo", "email": "ada@demo.example", "first_name": "Ada", "role": "coach",
              "groups": ["Coaches"], "idp_id": "00u_ada"}

    created = control.post("/_standin/sso_users", json=fields)
    replaced = control.post("/_standin/sso_users", json={**fields, "groups": []})

    assert (created.status_code, replaced.status_code) == (201, 200)
    assert replaced.json()["id"] == created.json()["id"]
    assert (replaced.json()["groups"], replaced.json()["idp_id"]) == ([], "00u_ada")
    assert control.get("/_standin/sso_users", params={"organization_id": "org_demo"}).json() == [replaced.json()]
    assert control.post("/_standin/sso_users", json={**fields, "email": "not an email"}).status_code == 422
    assert control.post("/_standin/sso_users", json={**fields, "organization_id": "org_none"}).status_code == 404
    url = sdk(standin).sso.get_authorization_url(redirect_uri=CALLBACK, organization="org_demo")
    profile = sdk(standin).sso.get_profile_and_token(code=callback_query(sign_in(url, "ADA@demo.example"))["code"])
    assert (profile.profile.connection_type, profile.profile.idp_id) == ("AzureSAML", "00u_ada")
