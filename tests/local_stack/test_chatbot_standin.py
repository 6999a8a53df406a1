"""The chatbot backend stand-in (local/chatbot.py) over HTTP: Basic authentication, the request contract,
the coach's answers (text, a card on "card"), a repeated turn id answered again without new work, and the
knobs (delay, hang_next, fail_next). Waits are observed through the stand-in's counters, not with timing."""

from __future__ import annotations

import base64
import re
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest

from local import chatbot
from local.chatbot import CHAT_PATH, ChatBackendStandIn
from shared.teams import chat as caller
from tests.stack import PROJECT_ROOT, PYTHON, base_environment, wait_until

CLIENT_ID = "app_coach_acme"
SECRET = "s3cr:et/é"  # a colon and a non-ASCII letter: Basic must carry them intact


@pytest.fixture
def bot() -> Iterator[ChatBackendStandIn]:
    with ChatBackendStandIn(client_id=CLIENT_ID, secret=SECRET) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:  # one keep-alive connection across answers
        yield client


def body(turn_id: str = "turn-1", text: str = "I want to prepare a hard conversation", **changes) -> dict:
    document = {"turn_id": turn_id, "tenant": "acme",
                "user": {"id": "0b5a3c9e-user", "email": "ada@acme.example", "display_name": "Ada Lovelace"},
                "conversation_id": "a:1conversation", "text": text, "locale": "en-US"}
    document.update(changes)
    return document


def basic(client_id: str = CLIENT_ID, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def ask(http: httpx.Client, bot: ChatBackendStandIn, document: object, **kwargs) -> httpx.Response:
    return http.post(bot.chat_url, json=document, headers=kwargs.pop("headers", basic()), **kwargs)


# --- authentication --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()},
    {"Authorization": "Basic"},
    {"Authorization": "Basic not/base64!"},
    {"Authorization": "Basic " + base64.b64encode(CLIENT_ID.encode()).decode()},  # no colon, no secret
    basic(client_id="app_other"),
    basic(secret="wrong"),
    basic(secret=SECRET + "x"),
    basic(secret=""),
], ids=["missing", "bearer", "empty", "not-base64", "no-secret", "wrong-id", "wrong-secret", "longer-secret",
        "empty-secret"])
def test_requests_without_the_right_basic_credentials_are_refused(bot, http, headers):
    answer = http.post(bot.chat_url, json=body(), headers=headers)

    assert answer.status_code == 401
    assert answer.json() == {"error": "unauthorized"}
    assert bot.turns_answered == 0
    assert bot.requests[-1]["status"] == 401


def test_the_scheme_is_case_insensitive_and_httpx_basic_auth_works(bot, http):
    token = basic()["Authorization"].split(" ", 1)[1]

    assert ask(http, bot, body("turn-a"), headers={"Authorization": f"basic {token}"}).status_code == 200
    assert http.post(bot.chat_url, json=body("turn-b"), auth=(CLIENT_ID, SECRET)).status_code == 200


# --- the contract ----------------------------------------------------------------------------------------------


def without(name: str) -> dict:
    document = body()
    document.pop(name)
    return document


def user_with(**changes) -> dict:
    document = body()
    document["user"] = {**document["user"], **changes}
    return document


@pytest.mark.parametrize(("document", "field"), [
    ([body()], "JSON object"),
    (without("turn_id"), "turn_id"),
    (body(turn_id=""), "turn_id"),
    (body(turn_id=7), "turn_id"),
    (without("tenant"), "tenant"),
    (without("conversation_id"), "conversation_id"),
    (without("text"), "text"),
    (body(text=None), "text"),
    (body(locale=5), "locale"),
    (without("locale"), "locale"),
    (without("user"), "user"),
    (body(user="ada"), "user"),
    (user_with(id=None), "user.id"),
    (user_with(email=["ada@acme.example"]), "user.email"),
    (user_with(display_name=1), "user.display_name"),
])
def test_a_body_that_breaks_the_contract_is_refused_naming_the_field(bot, http, document, field):
    answer = ask(http, bot, document)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert field in answer.json()["message"]
    assert bot.turns_answered == 0


def test_a_body_that_is_not_json_is_refused(bot, http):
    answer = http.post(bot.chat_url, content=b"{not json", headers={**basic(), "Content-Type": "application/json"})

    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_request", "message": "the body is not JSON"}
    assert bot.requests[-1]["body"] is None


def test_null_email_display_name_and_locale_keep_the_contract(bot, http):
    document = body(locale=None)
    document["user"].update(email=None, display_name=None)

    answer = ask(http, bot, document)

    assert answer.status_code == 200
    assert answer.json() == {"text": "You said: I want to prepare a hard conversation. What would a good outcome "
                                     "look like for you?"}


def test_other_paths_and_methods(bot, http):
    assert http.post(bot.base_url + "/api/connect/other", json=body(), headers=basic()).status_code == 404
    assert http.get(bot.base_url + "/").json() == {"error": "not_found"}
    wrong_method = http.get(bot.chat_url, headers=basic())
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert http.put(bot.chat_url, json=body(), headers=basic()).status_code == 405
    assert bot.turns_answered == 0


# --- answers ---------------------------------------------------------------------------------------------------


def test_the_coach_answers_by_first_name_and_echoes_the_text(bot, http):
    answer = ask(http, bot, body(text="  I need help with feedback!  "))

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"text": "Ada, you said: I need help with feedback. What would a good outcome look like "
                                     "for you?"}
    assert bot.turns_answered == 1
    assert bot.requests == [{"body": body(text="  I need help with feedback!  "), "repeat": False, "status": 200}]


def test_the_word_card_adds_an_adaptive_card(bot, http):
    answer = ask(http, bot, body(text="Show me a Card please", conversation_id="a:1conv/x")).json()

    assert answer["text"].startswith("Ada, you said: Show me a Card please.")
    assert answer["card"] == {
        "type": "AdaptiveCard", "version": "1.5", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "body": [{"type": "TextBlock", "text": "Here is a card about: Show me a Card please", "wrap": True}],
        "actions": [{"type": "Action.OpenUrl", "title": "Open the coach",
                     "url": "https://coach.example/acme/conversations/a%3A1conv%2Fx"}],
    }
    assert "card" not in ask(http, bot, body("turn-2", text="my cardigan is blue")).json()


def test_the_callers_own_parser_accepts_the_answers(bot, http):
    request = caller.ChatRequest(turn_id="turn-c", tenant_id="t-1", tenant_slug="acme", user_id="u-1",
                                 email=None, display_name="Grace Hopper", conversation_id="a:1c", text="a card?")

    parsed = caller._answer(ask(http, bot, request.body()))

    assert parsed.text.startswith("Grace, you said: a card.")
    assert parsed.card["type"] == "AdaptiveCard"


# --- repeated turns, delay, hang_next, fail_next ---------------------------------------------------------------


def test_a_repeated_turn_id_gets_the_same_answer_without_a_second_wait(bot, http):
    bot.delay = 0.2
    first = ask(http, bot, body("turn-r", text="first words"))
    again = ask(http, bot, body("turn-r", text="other words"))  # the caller re-sends the same turn

    assert again.status_code == 200
    assert again.json() == first.json()
    assert "first words" in again.json()["text"]
    assert [entry["repeat"] for entry in bot.requests] == [False, True]
    assert bot.turns_answered == 1
    assert bot.waits == 1


def test_turn_ids_are_per_tenant(bot, http):
    ask(http, bot, body("turn-t"))
    ask(http, bot, body("turn-t", tenant="globex"))

    assert bot.turns_answered == 2
    assert [entry["repeat"] for entry in bot.requests] == [False, False]


def test_without_a_delay_nothing_waits_and_a_delay_applies_to_every_new_turn(bot, http):
    ask(http, bot, body("turn-1"))
    assert bot.waits == 0

    bot.delay = 0.05
    ask(http, bot, body("turn-2"))
    ask(http, bot, body("turn-3"))

    assert bot.waits == 2
    assert bot.turns_answered == 3


def test_hang_next_makes_one_turn_slow_and_its_repeat_gets_the_same_answer(bot, http):
    bot.hang_next(1.0)

    with pytest.raises(httpx.ReadTimeout):  # the caller gives up on the slow turn, as its inline budget ends
        ask(http, bot, body("turn-slow", text="the hanging one"), timeout=0.2)
    fast = ask(http, bot, body("turn-next", text="next one"))  # only one turn hangs
    again = ask(http, bot, body("turn-slow", text="re-sent"))  # joins the turn in progress: no new work

    assert fast.status_code == 200
    assert again.status_code == 200
    assert again.json()["text"].startswith("Ada, you said: the hanging one.")
    assert bot.waits == 1
    assert bot.turns_answered == 2
    assert [entry["repeat"] for entry in bot.requests] == [False, False, True]


def test_a_repeat_that_arrives_while_the_turn_is_worked_on_waits_for_the_same_answer(bot, http):
    bot.hang_next(0.5)
    answers: list[httpx.Response] = []

    def first_request() -> None:
        with httpx.Client(timeout=10, trust_env=False) as other:
            answers.append(ask(other, bot, body("turn-p", text="original")))

    first = threading.Thread(target=first_request)
    first.start()
    wait_until(lambda: bot.requests, message="the first request")

    again = ask(http, bot, body("turn-p", text="repeat"))
    first.join(10)

    assert again.json() == answers[0].json()
    assert "original" in again.json()["text"]
    assert bot.waits == 1
    assert bot.turns_answered == 1


def test_the_word_slow_waits_at_least_eight_seconds(bot, http):
    assert chatbot.is_slow("this is SLOW.")
    assert not chatbot.is_slow("slowly")

    with pytest.raises(httpx.ReadTimeout):
        ask(http, bot, body("turn-s", text="please be slow"), timeout=0.3)

    assert bot.waits == 1  # stopping the stand-in ends the wait (the fixture does)


def test_fail_next_answers_the_status_then_recovers_and_a_failed_turn_is_new_work(bot, http):
    bot.fail_next(503, count=2)

    failures = [ask(http, bot, body("turn-f")) for _ in range(2)]
    recovered = ask(http, bot, body("turn-f"))

    assert [answer.status_code for answer in failures] == [503, 503]
    assert failures[0].json() == {"error": "service_unavailable", "message": "failure injected by fail_next"}
    assert recovered.status_code == 200
    assert [entry["repeat"] for entry in bot.requests] == [False, False, False]
    assert bot.turns_answered == 1


def test_fail_next_applies_to_repeats_and_queues_in_order(bot, http):
    first = ask(http, bot, body("turn-q")).json()
    bot.fail_next(500)
    bot.fail_next(429)

    statuses = [ask(http, bot, body("turn-q")).status_code for _ in range(3)]

    assert statuses == [500, 429, 200]
    assert ask(http, bot, body("turn-q")).json() == first
    assert bot.turns_answered == 1


def test_faults_wait_for_an_authenticated_well_formed_request(bot, http):
    bot.fail_next(502)

    assert ask(http, bot, body(), headers=basic(secret="wrong")).status_code == 401
    assert ask(http, bot, without("text")).status_code == 400
    assert ask(http, bot, body()).status_code == 502


def test_knob_arguments_are_checked(bot):
    with pytest.raises(ValueError, match="error status"):
        bot.fail_next(200)
    with pytest.raises(ValueError, match="count"):
        bot.fail_next(500, count=0)
    with pytest.raises(ValueError, match="negative"):
        bot.hang_next(-1)


# --- command line ----------------------------------------------------------------------------------------------


def test_serve_reads_the_secret_from_the_named_environment_variable():
    environment = {**base_environment(), "CHATBOT_TEST_SECRET": SECRET}
    process = subprocess.Popen(
        [PYTHON, "-m", "local.chatbot", "serve", "--port", "0", "--client-id", CLIENT_ID,
         "--secret-env", "CHATBOT_TEST_SECRET", "--delay", "0"],
        cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        base_url = re.search(r"on (http://127\.0\.0\.1:\d+)" + re.escape(CHAT_PATH), banner).group(1)
        answer = httpx.post(base_url + CHAT_PATH, json=body(), headers=basic(), timeout=10)
        assert answer.status_code == 200
        assert httpx.post(base_url + CHAT_PATH, json=body(), headers=basic(secret="CHATBOT_TEST_SECRET"),
                          timeout=10).status_code == 401
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0
    assert SECRET not in banner


def test_serve_refuses_an_unset_secret_variable(monkeypatch, capsys):
    monkeypatch.delenv("CHATBOT_TEST_UNSET", raising=False)

    assert chatbot.main(["serve", "--client-id", CLIENT_ID, "--secret-env", "CHATBOT_TEST_UNSET"]) == 2
    assert "CHATBOT_TEST_UNSET" in capsys.readouterr().err
