"""``POST /api/messages``, free of any transport: a body and an Authorization header in, a status out.

Contract (tests/teams/test_endpoint.py): a request without ``Authorization`` is a 401 before botbuilder or
the settings are consulted; an empty ``MicrosoftAppId`` (or an incomplete identity) is a 500 logged as a
configuration error, never anonymous access; any authentication failure is a 401 and nothing is written or
sent; an authenticated activity runs through the adapter and the bot, and the answer is 200 (an invoke's
own status and body when the activity is an invoke).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from shared.config import ConfigurationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BotResponse:
    status: int
    body: Any = None


UNAUTHORIZED = BotResponse(401, {"error": "unauthorized", "message": "a valid Bot Framework token is required"})


def _activity(body: bytes) -> Any:
    from botbuilder.schema import Activity

    try:
        document = json.loads(body)
    except ValueError:
        return Activity()
    # A body that is not an activity authenticates as an empty one: without a service URL it fails.
    return Activity().deserialize(document) if isinstance(document, dict) else Activity()


async def receive(body: bytes, authorization: str | None) -> BotResponse:
    if not authorization:
        return UNAUTHORIZED
    try:
        from shared.teams.runtime import runtime

        current = runtime()
    except ConfigurationError as error:
        log.error("teams: the bot is not configured: %s", error)
        return BotResponse(500, {"error": "not_configured", "message": "the bot is not configured"})
    from shared.teams.auth import Unauthorized

    activity = _activity(body)
    try:
        result = await current.identity.authenticate(activity, authorization)
    except Unauthorized as error:
        log.warning("teams: refused a request to /api/messages: %s", error)
        return UNAUTHORIZED
    invoke = await current.adapter.process_activity(result, activity, current.bot.on_turn)
    if invoke is not None:
        return BotResponse(invoke.status, invoke.body)
    return BotResponse(200)
