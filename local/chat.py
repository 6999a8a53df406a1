"""A terminal chat with the coaching bot through the Bot Connector stand-in, for ``make dev``: type as a Teams user
would, read what the bot posts (its answers, and later ones: a turn answered from the queue, an alert).

Contract (tests/local_stack/test_chat_client.py):

- The Teams tenant id of ``--tenant SLUG`` is read from the database (``SELECT teams_tenant_id FROM tenants WHERE
  slug = ...``), after filling unset settings from the same files as the ops CLI (``shared.cli
  .LOCAL_SETTINGS_FILES``: ``local.settings.json``, then what ``make dev`` started, ``.local/dev-settings.json``;
  ``--no-local-settings`` skips that). An unknown tenant, a tenant without a Teams tenant id (the message says
  ``python -m shared.cli tenant update SLUG --teams-tenant-id GUID``) or an unreachable database -> a message on
  stderr and exit 2. ``--teams-tenant-id GUID`` skips the database (for a setup without it, and for tests).
- It talks to the stand-in's control endpoints only (plain HTTP, no auth): ``POST /_standin/users`` registers the
  user and installs the app (200 or 201 with ``conversation_id``); ``POST /_standin/send`` sends a message or an
  ``installationUpdate``; ``GET /_standin/conversations/{id}/activities?after=N`` reads what the bot posted. The
  stand-in unreachable -> "is `make dev` running?" on stderr and exit 2; another refusal while starting -> exit 1.
- On the first start (the conversation has no activities yet), or always with ``--install``, it sends an
  ``installationUpdate``: the bot greets the user, or says they have no access. Earlier activities are not shown.
- Then it reads lines after a ``you> `` prompt (blank lines ignored; ``/quit`` or end of input ends, exit 0),
  sends each and shows the bot's answer. A background thread polls every 0.5 s for the whole session, so what the
  bot posts later appears too: on a new line, then the prompt again. Each activity is shown once, in order.
- ``render_activity`` (pure) shows a message as ``coach> text`` (further lines indented under the text), an
  Adaptive Card as its TextBlocks' (and RichTextBlocks', FactSets') text, then its actions as ``[title](url)``
  (``[title]`` when there is no URL); an edited message as ``coach (edited)> ...``, a deleted one as a note.
  Typing indicators and other activities show nothing.

Command line: ``python -m local.chat --tenant SLUG --user EMAIL [--name "Full Name"]
[--connector http://127.0.0.1:7083] [--teams-tenant-id GUID] [--install] [--no-local-settings]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from shared import config
from shared.cli import LOCAL_SETTINGS_FILES

DEFAULT_CONNECTOR = "http://127.0.0.1:7083"
POLL_SECONDS = 0.5
PROMPT = "you> "
SPEAKER = "coach> "
EDITED_SPEAKER = "coach (edited)> "
QUIT = "/quit"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


class UnknownTenant(LookupError):
    """No tenant has this slug."""


class DatabaseUnavailable(RuntimeError):
    """The database could not be asked (not configured, not running, schema behind)."""


class ConnectorUnreachable(RuntimeError):
    """The Bot Connector stand-in does not answer at all."""


class ConnectorRefused(RuntimeError):
    """The Bot Connector stand-in answered with an error or an unexpected body."""


# --- the tenant's Teams tenant id -----------------------------------------------------------------------------


def lookup_teams_tenant_id(slug: str) -> str | None:
    """The tenant's Teams tenant id (None when it has none); ``UnknownTenant`` when no tenant has the slug."""
    import psycopg

    from shared import db

    pool_log = logging.getLogger("psycopg.pool")
    pool_level = pool_log.level
    pool_log.setLevel(logging.ERROR)  # one message below says the database is down, not each retry
    try:
        with db.transaction() as conn:
            row = conn.execute("SELECT teams_tenant_id FROM tenants WHERE slug = %s", [slug]).fetchone()
    except (config.ConfigurationError, db.SchemaNotCurrent, psycopg.Error) as error:
        raise DatabaseUnavailable(str(error) or type(error).__name__) from error
    finally:
        db.close_pools()
        pool_log.setLevel(pool_level)
    if row is None:
        raise UnknownTenant(slug)
    return str(row[0]) if row[0] else None


# --- rendering (pure) -----------------------------------------------------------------------------------------


def render_card(card: Mapping[str, Any]) -> list[str]:
    """An Adaptive Card as text lines: the text of its elements in order, then its actions."""
    lines = _render_elements(card.get("body"))
    lines += [_render_action(action) for action in _dicts(card.get("actions"))]
    return lines


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _render_elements(elements: Any) -> list[str]:
    lines: list[str] = []
    for element in _dicts(elements):
        kind = element.get("type")
        if kind == "TextBlock" and isinstance(element.get("text"), str):
            lines += element["text"].splitlines()
        elif kind == "RichTextBlock":
            inlines = element.get("inlines") if isinstance(element.get("inlines"), list) else []
            text = "".join(inline if isinstance(inline, str) else str(inline.get("text") or "")
                           for inline in inlines if isinstance(inline, str | Mapping))
            lines += text.splitlines()
        elif kind == "FactSet":
            lines += [f"{fact.get('title', '')}: {fact.get('value', '')}" for fact in _dicts(element.get("facts"))]
        elif kind == "ColumnSet":
            for column in _dicts(element.get("columns")):
                lines += _render_elements(column.get("items"))
        elif kind in ("Container", "Column"):
            lines += _render_elements(element.get("items"))
        elif kind == "ActionSet":
            lines += [_render_action(action) for action in _dicts(element.get("actions"))]
        elif kind == "Image" and (element.get("altText") or element.get("url")):
            lines.append(f"[image: {element.get('altText') or element.get('url')}]")
    return [line for line in lines if line.strip()]


def _render_action(action: Mapping[str, Any]) -> str:
    title = str(action.get("title") or action.get("type") or "action")
    url = action.get("url")
    return f"[{title}]({url})" if isinstance(url, str) and url else f"[{title}]"


def render_activity(activity: Mapping[str, Any]) -> list[str]:
    """What the terminal shows for one activity the bot posted: nothing for typing and other kinds."""
    kind = activity.get("type")
    if kind == "messageDelete" or activity.get("deleted"):
        return ["(the coach deleted a message)"]
    if kind != "message":
        return []
    body: list[str] = []
    text = activity.get("text")
    if isinstance(text, str):
        body += [line for line in text.splitlines() if line.strip()]
    for attachment in _dicts(activity.get("attachments")):
        content = attachment.get("content")
        if attachment.get("contentType") == ADAPTIVE_CARD and isinstance(content, Mapping):
            body += render_card(content)
        else:
            body.append(f"[attachment: {attachment.get('contentType') or 'unknown'}]")
    if not body:
        return []
    speaker = EDITED_SPEAKER if activity.get("updated") else SPEAKER
    return [speaker + body[0], *(" " * len(speaker) + line for line in body[1:])]


# --- the session (I/O) ----------------------------------------------------------------------------------------


class ChatSession:
    """One Teams user's chat through the Bot Connector stand-in at ``connector_url``, shown on ``out``."""

    def __init__(self, connector_url: str, teams_tenant_id: str, email: str, name: str | None = None, *,
                 out: TextIO, poll_interval: float = POLL_SECONDS, timeout: float = 60.0) -> None:
        self.connector_url = connector_url.rstrip("/")
        self.teams_tenant_id = teams_tenant_id
        self.email = email
        self.name = name
        self.out = out
        self.poll_interval = poll_interval
        self.conversation_id: str | None = None
        self.after = 0  # the seq of the last activity seen
        # A turn can take the bot's whole inline budget: sends get a long timeout, polls a short one.
        self._client = httpx.Client(base_url=self.connector_url, timeout=timeout, trust_env=False)
        self._poll_client = httpx.Client(base_url=self.connector_url, timeout=5.0, trust_env=False)
        self._fetch_lock = threading.Lock()  # one reader of the log at a time: each activity shown once, in order
        self._out_lock = threading.Lock()
        self._prompt_shown = False
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None

    # the stand-in's control endpoints

    def _call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
              client: httpx.Client | None = None) -> dict[str, Any]:
        try:
            response = (client or self._client).request(method, path, json=json, params=params)
        except httpx.TransportError as error:
            raise ConnectorUnreachable(f"cannot reach the Bot Connector stand-in at {self.connector_url} "
                                       f"({type(error).__name__}: {error})") from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.status_code not in (200, 201) or not isinstance(document, dict):
            detail = document.get("error") if isinstance(document, dict) else response.text[:300]
            raise ConnectorRefused(f"{method} {path} answered {response.status_code}: {detail}")
        return document

    def register(self) -> dict[str, Any]:
        """Add the Teams user (and install the app for them); remembers their conversation."""
        body: dict[str, Any] = {"tenant_id": self.teams_tenant_id, "email": self.email}
        if self.name:
            body["name"] = self.name
        user = self._call("POST", "/_standin/users", json=body)
        if not isinstance(user.get("conversation_id"), str) or not user["conversation_id"]:
            raise ConnectorRefused("POST /_standin/users answered without a conversation_id")
        self.conversation_id = user["conversation_id"]
        return user

    def send_text(self, text: str) -> dict[str, Any]:
        return self._call("POST", "/_standin/send",
                          json={"tenant_id": self.teams_tenant_id, "email": self.email, "text": text})

    def send_installation_update(self) -> dict[str, Any]:
        return self._call("POST", "/_standin/send", json={"tenant_id": self.teams_tenant_id, "email": self.email,
                                                          "type": "installationUpdate"})

    def fetch_new(self, *, client: httpx.Client | None = None) -> list[dict[str, Any]]:
        """The activities after the last one seen (which they become); call with ``_fetch_lock`` held."""
        if self.conversation_id is None:
            raise RuntimeError("register() first")
        path = f"/_standin/conversations/{quote(self.conversation_id, safe='')}/activities"
        document = self._call("GET", path, params={"after": self.after}, client=client)
        activities = [item for item in document.get("activities") or () if isinstance(item, dict)
                      and isinstance(item.get("seq"), int) and item["seq"] > self.after]
        activities.sort(key=lambda item: item["seq"])
        if activities:
            self.after = activities[-1]["seq"]
        return activities

    def show_new(self, *, client: httpx.Client | None = None) -> int:
        """Fetch and show what the bot posted since the last look; returns how many activities came."""
        with self._fetch_lock:
            activities = self.fetch_new(client=client)
            lines = [line for activity in activities for line in render_activity(activity)]
            self.say(lines)
        return len(activities)

    # output

    def say(self, lines: Sequence[str]) -> None:
        """Print lines; when the prompt is waiting for input, on a new line and with the prompt again after."""
        if not lines:
            return
        with self._out_lock:
            interrupted = self._prompt_shown
            self.out.write(("\n" if interrupted else "") + "".join(f"{line}\n" for line in lines)
                           + (PROMPT if interrupted else ""))
            self.out.flush()

    def _show_prompt(self) -> None:
        with self._out_lock:
            self.out.write(PROMPT)
            self.out.flush()
            self._prompt_shown = True

    def _prompt_answered(self) -> None:
        with self._out_lock:
            self._prompt_shown = False

    # polling

    def start_polling(self) -> None:
        if self._poller is None:
            self._stopping.clear()
            self._poller = threading.Thread(target=self._poll, name="chat poller", daemon=True)
            self._poller.start()

    def stop_polling(self) -> None:
        self._stopping.set()
        if self._poller is not None:
            self._poller.join(10)
            self._poller = None

    def _poll(self) -> None:
        lost = False
        while not self._stopping.wait(self.poll_interval):
            try:
                self.show_new(client=self._poll_client)
            except (ConnectorUnreachable, ConnectorRefused) as error:
                if not lost:
                    self.say([f"(lost contact with the Bot Connector stand-in, still trying: {error})"])
                lost = True
                continue
            if lost:
                self.say(["(in contact with the Bot Connector stand-in again)"])
                lost = False

    def close(self) -> None:
        self.stop_polling()
        self._client.close()
        self._poll_client.close()

    # the conversation

    def _report_send(self, result: Mapping[str, Any]) -> None:
        status = result.get("status")
        if isinstance(status, int) and status >= 300:
            body = result.get("body")
            self.say([f"(the bot answered HTTP {status}{f': {body}' if body else ''})"])

    def start(self, *, install: bool = False) -> None:
        """Register; on the first start (or with ``install``) send the installationUpdate and show the greeting."""
        self.register()
        with self._fetch_lock:
            earlier = self.fetch_new()  # not shown: only what happens from now on
        if earlier and not install:
            self.say([f"(continuing an earlier conversation; {QUIT} or Ctrl-D ends the chat)"])
            return
        self.say([f"(chatting as {self.email} in Teams tenant {self.teams_tenant_id}; {QUIT} or Ctrl-D ends the "
                  "chat)"])
        self._report_send(self.send_installation_update())
        self.show_new()

    def run(self, stdin: TextIO, *, install: bool = False) -> int:
        """Start, then send each line of ``stdin`` until ``/quit`` or its end; 0 then."""
        self.start(install=install)
        self.start_polling()
        try:
            while True:
                self._show_prompt()
                line = stdin.readline()
                self._prompt_answered()
                if not line:  # end of input
                    self.say([""])
                    return 0
                text = line.strip()
                if not text:
                    continue
                if text == QUIT:
                    return 0
                try:
                    self._report_send(self.send_text(text))
                except ConnectorRefused as error:  # the bot unreachable (502), no bot endpoint (409): keep going
                    self.say([f"(not sent: {error})"])
                    continue
                self.show_new()
        finally:
            self.stop_polling()


# --- command line ---------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.chat",
        description="Chat with the coaching bot as a Teams user, through the Bot Connector stand-in of `make dev`.")
    parser.add_argument("--tenant", metavar="SLUG", help="the tenant whose Teams tenant the user is in")
    parser.add_argument("--user", required=True, metavar="EMAIL", help="the Teams user's email address")
    parser.add_argument("--name", help="the user's display name (default: from the email address)")
    parser.add_argument("--connector", default=DEFAULT_CONNECTOR, metavar="URL",
                        help=f"the Bot Connector stand-in (default {DEFAULT_CONNECTOR})")
    parser.add_argument("--teams-tenant-id", metavar="GUID",
                        help="use this Teams tenant id instead of reading the tenant's from the database "
                             "(for setups without the database)")
    parser.add_argument("--install", action="store_true",
                        help="send the installationUpdate (the greeting) even when the conversation has messages")
    parser.add_argument("--no-local-settings", action="store_true",
                        help="read settings from the environment only (ignore local.settings.json and "
                             ".local/dev-settings.json)")
    return parser


def _teams_tenant_id(args: argparse.Namespace) -> str | None:
    """The Teams tenant id to chat in, or None after saying on stderr why there is none."""
    if args.teams_tenant_id:
        return args.teams_tenant_id
    if not args.no_local_settings:
        config.load_local_settings(*LOCAL_SETTINGS_FILES)
    try:
        teams_tenant_id = lookup_teams_tenant_id(args.tenant)
    except UnknownTenant:
        print(f"error: there is no tenant {args.tenant!r} in the database (`python -m shared.cli tenant list` lists "
              "them)", file=sys.stderr)
        return None
    except DatabaseUnavailable as error:
        print(f"error: cannot read tenant {args.tenant!r} from the database: {error}\nIs `make dev` running? "
              "(Or give --teams-tenant-id.)", file=sys.stderr)
        return None
    if not teams_tenant_id:
        print(f"error: tenant {args.tenant!r} has no Teams tenant id, so no Teams user can reach the bot for it.\n"
              f"Set it with:  python -m shared.cli tenant update {args.tenant} --teams-tenant-id GUID\n"
              "(the Microsoft 365 tenant id of its Teams users; against the local stand-ins any GUID will do)",
              file=sys.stderr)
    return teams_tenant_id


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.tenant and not args.teams_tenant_id:
        parser.error("--tenant SLUG is required (or --teams-tenant-id GUID)")
    teams_tenant_id = _teams_tenant_id(args)
    if not teams_tenant_id:
        return 2
    session = ChatSession(args.connector, teams_tenant_id, args.user, args.name, out=stdout or sys.stdout)
    try:
        return session.run(stdin or sys.stdin, install=args.install)
    except ConnectorUnreachable as error:
        print(f"error: {error}\n`make dev` must be running (it starts the Bot Connector stand-in), or give "
              "--connector URL.", file=sys.stderr)
        return 2
    except ConnectorRefused as error:
        print(f"error: the Bot Connector stand-in refused: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(main())
