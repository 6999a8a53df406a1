"""WorkOS Directory Sync: the signed webhook, the dsync-apply worker and the Events API poller."""

import azure.functions as func

from functions.http import json_response

bp = func.Blueprint()


@bp.route(route="webhooks/workos", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def workos_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared.directory.webhook import receive

    response = receive(req.get_body(), req.headers.get("WorkOS-Signature"))
    return json_response(response.body, status=response.status)


@bp.queue_trigger(arg_name="msg", queue_name="%DSYNC_APPLY_QUEUE%", connection="AzureWebJobsStorage")
def dsync_apply(msg: func.QueueMessage) -> None:
    from shared.directory.worker import apply_message

    apply_message(msg.get_body().decode("utf-8"))


@bp.timer_trigger(schedule="%DSYNC_POLL_SCHEDULE%", arg_name="timer", run_on_startup=False)
def dsync_poll(timer: func.TimerRequest) -> None:
    from shared.directory.poller import poll

    poll()
