"""The terminal chat (local/chat.py): rendering what the bot posts (text, Adaptive Cards, typing left out), the
session against a fake of the Bot Connector stand-in's control endpoints (register, installationUpdate, each
line sent, answers shown once and in order, a later proactive message shown with the prompt again), and what
it says when the tenant, the database or the stand-in is missing."""

from __future__ import annotations

import io
import json
import queue
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import pytest

from local import chat
from local.chat import ChatSession, render_activity, render_card
from shared import config
from shared.cli import LOCAL_SETTINGS_FILES
from tests.stack import wait_until

TEAMS_TENANT = "9f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
EMAIL = "ada@acme.example"
CONVERSATION = "a:1Ab-cD_ef:gh"  # ':' and letters of both cases: percent-encoded in the activities URL


def card(*body: dict, actions: tuple[dict, ...] = ()) -> dict:
    return {"type": "AdaptiveCard", "version": "1.5", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "body": list(body), "actions": list(actions)}


def attachment(content: dict) -> dict:
    return {"contentType": "application/vnd.microsoft.card.adaptive", "content": content}


# --- rendering -------------------------------------------------------------------------------------------------


def test_a_text_message_is_shown_after_the_speaker():
    assert render_activity({"seq": 1, "type": "message", "text": "Hi Ada! I'm your coach."}) == [
        "coach> Hi Ada! I'm your coach."]


def test_further_lines_are_indented_under_the_text():
    assert render_activity({"type": "message", "text": "One\n\nTwo"}) == ["coach> One", "       Two"]


def test_typing_and_other_activities_show_nothing():
    assert render_activity({"seq": 2, "type": "typing"}) == []
    assert render_activity({"type": "event", "name": "x"}) == []
    assert render_activity({"type": "message"}) == []


def test_a_card_shows_its_text_blocks_then_its_actions():
    content = card({"type": "TextBlock", "text": "New goal check-in", "weight": "Bolder", "wrap": True},
                   {"type": "TextBlock", "text": "How is it going?", "wrap": True},
                   actions=({"type": "Action.OpenUrl", "title": "Open the coach", "url": "https://coach.example/x"},
                            {"type": "Action.Submit", "title": "Later"}))

    assert render_card(content) == ["New goal check-in", "How is it going?",
                                    "[Open the coach](https://coach.example/x)", "[Later]"]


def test_a_message_with_text_and_a_card_shows_both():
    activity = {"seq": 3, "type": "message", "text": "Here you go",
                "attachments": [attachment(card({"type": "TextBlock", "text": "A card"},
                                                actions=({"type": "Action.OpenUrl", "title": "Open",
                                                          "url": "https://coach.example/o"},)))]}

    assert render_activity(activity) == ["coach> Here you go", "       A card",
                                         "       [Open](https://coach.example/o)"]


def test_a_card_only_message_starts_with_the_speaker():
    activity = {"type": "message", "attachments": [attachment(card({"type": "TextBlock", "text": "Alert"}))]}

    assert render_activity(activity) == ["coach> Alert"]


def test_nested_elements_fact_sets_and_rich_text_are_read_in_order():
    content = card(
        {"type": "Container", "items": [{"type": "TextBlock", "text": "In a container"}]},
        {"type": "ColumnSet", "columns": [{"type": "Column", "items": [{"type": "TextBlock", "text": "Left"}]},
                                          {"type": "Column", "items": [{"type": "TextBlock", "text": "Right"}]}]},
        {"type": "FactSet", "facts": [{"title": "Due", "value": "Friday"}]},
        {"type": "RichTextBlock", "inlines": ["Plain ", {"type": "TextRun", "text": "and bold"}]},
        {"type": "TextBlock", "text": ""},
        {"type": "ActionSet", "actions": [{"type": "Action.OpenUrl", "title": "Inline", "url": "https://i.example"}]},
    )

    assert render_card(content) == ["In a container", "Left", "Right", "Due: Friday", "Plain and bold",
                                    "[Inline](https://i.example)"]


def test_other_attachments_edits_and_deletions_are_noted():
    assert render_activity({"type": "message", "attachments": [{"contentType": "image/png"}]}) == [
        "coach> [attachment: image/png]"]
    assert render_activity({"type": "message", "text": "Fixed", "updated": True}) == ["coach (edited)> Fixed"]
    assert render_activity({"type": "messageDelete", "id": "7", "deleted": True}) == [
        "(the coach deleted a message)"]


# --- a fake of the Bot Connector stand-in's control endpoints ----------------------------------------------------


@dataclass
class FakeConnector:
    """``/_standin/users``, ``/_standin/send`` and the activities log; the "bot" echoes (and adds a card on
    "card"), greets on installationUpdate; ``post`` adds what the bot sends later, unasked."""

    base_url: str = ""
    received: list[tuple[str, str, dict | None]] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, activity: dict) -> None:
        with self.lock:
            self.log.append({**activity, "seq": len(self.log) + 1})

    def sent(self) -> list[dict]:
        return [document for method, path, document in self.received if path == "/_standin/send"]

    def answer(self, method: str, target: str, document: dict | None) -> tuple[int, dict]:
        url = urlsplit(target)
        with self.lock:
            self.received.append((method, url.path, document))
        if method == "POST" and url.path == "/_standin/users":
            return 201, {"tenant_id": document["tenant_id"], "aad_object_id": "0e1f-aad", "id": "29:1ada",
                         "conversation_id": CONVERSATION, "name": document.get("name") or "Ada",
                         "email": document["email"]}
        if method == "POST" and url.path == "/_standin/send":
            if document.get("type") == "installationUpdate":
                self.post({"type": "message", "text": "Hi Ada Lovelace! I'm your coach."})
            else:
                self.post({"type": "typing"})
                reply = {"type": "message", "text": f"echo: {document['text']}"}
                if "card" in document["text"]:
                    reply["attachments"] = [attachment(card(
                        {"type": "TextBlock", "text": "Card for you"},
                        actions=({"type": "Action.OpenUrl", "title": "Open", "url": "https://coach.example/c"},)))]
                self.post(reply)
            return 200, {"status": 200, "activity_id": f"act-{len(self.received)}"}
        segments = url.path.split("/")
        if method == "GET" and segments[1:3] == ["_standin", "conversations"] and segments[4:] == ["activities"]:
            if unquote(segments[3]) != CONVERSATION or "%3A" not in segments[3]:
                return 404, {"error": f"no conversation {segments[3]}"}
            after = int(parse_qs(url.query).get("after", ["0"])[0])
            with self.lock:
                return 200, {"activities": [entry for entry in self.log if entry["seq"] > after]}
        return 404, {"error": "not_found"}


@pytest.fixture
def connector() -> Iterator[FakeConnector]:
    fake = FakeConnector()

    class Handler(BaseHTTPRequestHandler):
        def _dispatch(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = fake.answer(self.command, self.path, json.loads(raw) if raw else None)
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _dispatch

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


class Keyboard:
    """A stdin that hands out lines as the test types them (``readline`` blocks until then)."""

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()

    def type(self, line: str) -> None:
        self._lines.put(line + "\n")

    def end(self) -> None:
        self._lines.put("")

    def readline(self) -> str:
        return self._lines.get(timeout=30)


@dataclass
class Running:
    keyboard: Keyboard
    screen: io.StringIO
    thread: threading.Thread
    result: list[int]

    def shown(self) -> str:
        return self.screen.getvalue()

    def wait_for(self, text: str) -> None:
        wait_until(lambda: text in self.shown(), timeout=10, message=f"{text!r} on the screen:\n{self.shown()}")

    def finish(self) -> int:
        self.thread.join(15)
        assert not self.thread.is_alive()
        return self.result[0]


def start_chat(*argv: str) -> Running:
    keyboard, screen, result = Keyboard(), io.StringIO(), []
    thread = threading.Thread(target=lambda: result.append(chat.main(list(argv), stdin=keyboard, stdout=screen)),
                              daemon=True)
    thread.start()
    return Running(keyboard, screen, thread, result)


def chat_args(connector: FakeConnector, *extra: str) -> tuple[str, ...]:
    return ("--teams-tenant-id", TEAMS_TENANT, "--user", EMAIL, "--name", "Ada Lovelace",
            "--connector", connector.base_url, *extra)


# --- the session -----------------------------------------------------------------------------------------------


def test_a_chat_registers_greets_sends_each_line_and_shows_later_messages(connector, monkeypatch):
    monkeypatch.setattr(chat, "lookup_teams_tenant_id", lambda slug: pytest.fail("--teams-tenant-id skips the DB"))
    running = start_chat(*chat_args(connector))

    running.wait_for("coach> Hi Ada Lovelace! I'm your coach.\nyou> ")
    running.keyboard.type("hello there")
    running.wait_for("coach> echo: hello there\nyou> ")
    running.keyboard.type("   ")  # blank: not sent
    running.keyboard.type("show me a card")
    running.wait_for("       [Open](https://coach.example/c)\nyou> ")
    connector.post({"type": "message", "text": "The answer to your slow question, at last."})  # from the queue
    running.wait_for("you> \ncoach> The answer to your slow question, at last.\nyou> ")
    running.keyboard.type("/quit")

    assert running.finish() == 0
    registrations = [document for _, path, document in connector.received if path == "/_standin/users"]
    assert registrations == [{"tenant_id": TEAMS_TENANT, "email": EMAIL, "name": "Ada Lovelace"}]
    assert connector.sent() == [
        {"tenant_id": TEAMS_TENANT, "email": EMAIL, "type": "installationUpdate"},
        {"tenant_id": TEAMS_TENANT, "email": EMAIL, "text": "hello there"},
        {"tenant_id": TEAMS_TENANT, "email": EMAIL, "text": "show me a card"},
    ]
    screen = running.shown()
    assert "coach> echo: show me a card\n       Card for you\n       [Open](https://coach.example/c)\n" in screen
    for line in ("coach> Hi Ada Lovelace! I'm your coach.", "coach> echo: hello there",
                 "coach> The answer to your slow question, at last."):
        assert screen.count(line) == 1  # each activity once, though the poller and the sender both look
    assert "typing" not in screen


def test_end_of_input_ends_the_chat(connector):
    running = start_chat(*chat_args(connector))
    running.wait_for("I'm your coach.\nyou> ")
    running.keyboard.end()

    assert running.finish() == 0
    assert running.shown().endswith("you> \n")


def test_a_conversation_with_messages_is_continued_without_a_new_greeting(connector):
    connector.post({"type": "message", "text": "An old message"})
    running = start_chat(*chat_args(connector))
    running.wait_for("continuing an earlier conversation")
    running.keyboard.type("/quit")

    assert running.finish() == 0
    assert connector.sent() == []
    assert "An old message" not in running.shown()


def test_install_greets_again(connector):
    connector.post({"type": "message", "text": "An old message"})
    running = start_chat(*chat_args(connector, "--install"))
    running.wait_for("I'm your coach.\nyou> ")
    running.keyboard.type("/quit")

    assert running.finish() == 0
    assert connector.sent() == [{"tenant_id": TEAMS_TENANT, "email": EMAIL, "type": "installationUpdate"}]


def test_the_bots_error_status_is_shown(connector, monkeypatch):
    original = connector.answer

    def bot_fails(method, target, document):
        status, payload = original(method, target, document)
        if target.startswith("/_standin/send") and document.get("text"):
            return 200, {"status": 401, "activity_id": "a", "body": {"error": "denied"}}
        return status, payload

    monkeypatch.setattr(connector, "answer", bot_fails)
    running = start_chat(*chat_args(connector))
    running.wait_for("I'm your coach.\nyou> ")
    running.keyboard.type("hello")
    running.wait_for("(the bot answered HTTP 401: {'error': 'denied'})")
    running.keyboard.type("/quit")

    assert running.finish() == 0


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_connector_says_make_dev_must_run(capsys):
    screen = io.StringIO()
    code = chat.main(["--teams-tenant-id", TEAMS_TENANT, "--user", EMAIL,
                      "--connector", f"http://127.0.0.1:{closed_port()}"], stdin=Keyboard(), stdout=screen)

    assert code == 2
    assert "`make dev` must be running" in capsys.readouterr().err


def test_the_session_class_can_be_driven_directly(connector):
    screen = io.StringIO()
    session = ChatSession(connector.base_url, TEAMS_TENANT, EMAIL, out=screen)
    try:
        assert session.register()["conversation_id"] == CONVERSATION
        session.send_text("direct")
        assert session.show_new() == 2  # the typing indicator and the answer
        assert session.show_new() == 0
    finally:
        session.close()
    assert screen.getvalue() == "coach> echo: direct\n"
    assert connector.received[0][2] == {"tenant_id": TEAMS_TENANT, "email": EMAIL}  # no name given: none sent


# --- the tenant's Teams tenant id ------------------------------------------------------------------------------


@pytest.fixture
def settings_loads(monkeypatch) -> list[tuple]:
    """Record settings loads instead of filling this process's environment from the checkout's files."""
    calls: list[tuple] = []
    monkeypatch.setattr(config, "load_local_settings", lambda *paths, **kwargs: calls.append(paths) or [])
    return calls


def test_an_unknown_tenant_is_named(monkeypatch, capsys, settings_loads):
    def unknown(slug: str) -> str | None:
        raise chat.UnknownTenant(slug)

    monkeypatch.setattr(chat, "lookup_teams_tenant_id", unknown)

    assert chat.main(["--tenant", "acme", "--user", EMAIL], stdin=Keyboard(), stdout=io.StringIO()) == 2
    assert "there is no tenant 'acme'" in capsys.readouterr().err
    assert settings_loads == [LOCAL_SETTINGS_FILES]  # as the ops CLI loads them, before the database


def test_a_tenant_without_a_teams_tenant_id_says_how_to_set_it(monkeypatch, capsys, settings_loads):
    asked: list[str] = []
    monkeypatch.setattr(chat, "lookup_teams_tenant_id", lambda slug: asked.append(slug))

    assert chat.main(["--tenant", "acme", "--user", EMAIL, "--no-local-settings"], stdin=Keyboard(),
                     stdout=io.StringIO()) == 2
    assert "python -m shared.cli tenant update acme --teams-tenant-id GUID" in capsys.readouterr().err
    assert asked == ["acme"]
    assert settings_loads == []


def test_an_unreachable_database_says_so(monkeypatch, capsys, settings_loads):
    def down(slug: str) -> str | None:
        raise chat.DatabaseUnavailable("connection refused")

    monkeypatch.setattr(chat, "lookup_teams_tenant_id", down)

    assert chat.main(["--tenant", "acme", "--user", EMAIL], stdin=Keyboard(), stdout=io.StringIO()) == 2
    error = capsys.readouterr().err
    assert "connection refused" in error
    assert "make dev" in error


def test_the_tenant_from_the_database_is_used(connector, monkeypatch, settings_loads):
    monkeypatch.setattr(chat, "lookup_teams_tenant_id", lambda slug: TEAMS_TENANT if slug == "acme" else None)
    running = start_chat("--tenant", "acme", "--user", EMAIL, "--connector", connector.base_url)
    running.wait_for("I'm your coach.\nyou> ")
    running.keyboard.end()

    assert running.finish() == 0
    assert connector.sent()[0]["tenant_id"] == TEAMS_TENANT


def test_neither_tenant_nor_teams_tenant_id_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        chat.main(["--user", EMAIL], stdin=Keyboard(), stdout=io.StringIO())
    assert exit_info.value.code == 2


def test_the_lookup_reads_the_tenants_table(make_tenant):
    make_tenant("acme", teams_tenant_id=TEAMS_TENANT)
    make_tenant("globex")

    assert chat.lookup_teams_tenant_id("acme") == TEAMS_TENANT
    assert chat.lookup_teams_tenant_id("globex") is None
    with pytest.raises(chat.UnknownTenant):
        chat.lookup_teams_tenant_id("initech")


# --- against the real Bot Connector stand-in -----------------------------------------------------------------


def test_a_chat_through_the_bot_connector_stand_in():
    """The same flow with local/botconnector.py in the middle and a minimal bot behind it (it answers through the
    Bot Connector REST API, as the real bot does): the control endpoints keep the shapes this client reads."""
    import jwt

    from local.botconnector import BotConnectorStandIn

    app_id = "00000000-0000-0000-0000-0000000b0700"
    unchecked_key = "the stand-in reads these claims unverified"
    token = jwt.encode({"aud": "https://api.botframework.com", "appid": app_id}, unchecked_key, algorithm="HS256")

    def reply(activity: dict, posted: dict) -> None:
        url = (f"{activity['serviceUrl'].rstrip('/')}/v3/conversations/"
               f"{quote(activity['conversation']['id'], safe='')}/activities/{quote(activity['id'], safe='')}")
        answer = httpx.post(url, json=posted, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 201, answer.text

    class Bot(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            activity = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if activity["type"] == "installationUpdate":
                reply(activity, {"type": "message", "text": f"Hi {activity['from']['name']}! I'm your coach."})
            elif activity["type"] == "message":
                reply(activity, {"type": "typing"})
                reply(activity, {"type": "message", "text": "Noted.",
                                 "attachments": [attachment(card({"type": "TextBlock", "text": activity["text"]}))]})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    bot = ThreadingHTTPServer(("127.0.0.1", 0), Bot)
    bot.daemon_threads = True
    threading.Thread(target=bot.serve_forever, daemon=True).start()
    try:
        with BotConnectorStandIn(app_id=app_id,
                                 bot_endpoint=f"http://127.0.0.1:{bot.server_address[1]}/api/messages") as standin:
            running = start_chat("--teams-tenant-id", TEAMS_TENANT, "--user", EMAIL, "--name", "Ada Lovelace",
                                 "--connector", standin.base_url)
            running.wait_for("coach> Hi Ada Lovelace! I'm your coach.\nyou> ")
            running.keyboard.type("how do I give feedback?")
            running.wait_for("coach> Noted.\n       how do I give feedback?\nyou> ")
            conversation = standin.conversation_of(TEAMS_TENANT, standin.find_user(TEAMS_TENANT, EMAIL).aad_object_id)
            reply({"serviceUrl": standin.service_url, "conversation": {"id": conversation}, "id": "proactive"},
                  {"type": "message", "text": "A late answer."})
            running.wait_for("you> \ncoach> A late answer.\nyou> ")
            running.keyboard.type("/quit")
            assert running.finish() == 0
    finally:
        bot.shutdown()
        bot.server_close()
