"""Teams: the bot's messaging endpoint, and the workers of slow chat turns and proactive alerts."""

import azure.functions as func

from functions.http import json_response

bp = func.Blueprint()


@bp.route(route="messages", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def teams_messages(req: func.HttpRequest) -> func.HttpResponse:
    from shared.teams.endpoint import receive

    response = await receive(req.get_body(), req.headers.get("Authorization"))
    if response.body is None:
        return func.HttpResponse(status_code=response.status)
    return json_response(response.body, status=response.status)


@bp.queue_trigger(arg_name="msg", queue_name="%TEAMS_TURNS_QUEUE%", connection="AzureWebJobsStorage")
async def teams_turns(msg: func.QueueMessage) -> None:
    from shared.teams.turns import answer_message

    await answer_message(msg.get_body().decode("utf-8"))


@bp.queue_trigger(arg_name="msg", queue_name="%TEAMS_ALERTS_QUEUE%", connection="AzureWebJobsStorage")
async def teams_alerts(msg: func.QueueMessage) -> None:
    from shared.teams.delivery import deliver_message

    await deliver_message(msg.get_body().decode("utf-8"))
