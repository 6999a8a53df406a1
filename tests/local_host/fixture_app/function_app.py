"""A function app that exercises what the local host must do as the real host does.

Queue and timer functions append what they saw, one JSON object a line, to FIXTURE_RECORD_FILE.
"""

import asyncio
import json
import os
import threading
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
both_sync_calls_inside = threading.Barrier(2, timeout=10)


def record(**entry) -> None:
    with open(os.environ["FIXTURE_RECORD_FILE"], "a") as log:
        log.write(json.dumps({"at": time.time(), **entry}) + "\n")


def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({
        "method": req.method, "url": req.url, "route": dict(req.route_params), "params": dict(req.params),
        "headers": dict(req.headers), "body": req.get_body().decode(),
    }), mimetype="application/json")


@app.route(route="items/{id:int}/{detail?}", methods=["GET", "POST"])
def items(req: func.HttpRequest) -> func.HttpResponse:
    return echo(req)


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return echo(req)


@app.route(route="files/readme", methods=["GET"])
def readme(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("the literal route wins")


@app.route(route="administration/tools", methods=["GET"])
def reserved_route(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("never served: the host reserves routes starting with admin")


@app.route(route="Items/{id:int}/{detail?}", methods=["POST", "PUT"])
def items_again(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("never served: same route and a shared method as items")


@app.route(route="{area:regex(^admin$)}/reports", methods=["GET"])
def admin_area(req: func.HttpRequest) -> func.HttpResponse:
    return echo(req)


@app.route(route="cookies", methods=["GET"])
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("two cookies")
    response.headers.add("Set-Cookie", "session=abc; Path=/; HttpOnly; SameSite=Lax; Secure")
    response.headers.add("Set-Cookie", "theme=dark; Max-Age=60")
    return response


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret internals")


@app.route(route="keyed/function", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def keyed_function(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("function key accepted")


@app.route(route="keyed/admin", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def keyed_admin(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("master key accepted")


@app.route(route="threads/sync", methods=["GET"])
def sync_thread(req: func.HttpRequest) -> func.HttpResponse:
    # Passes only when two calls are inside at once: sync functions run on a thread pool.
    both_sync_calls_inside.wait()
    return func.HttpResponse(threading.current_thread().name)


@app.route(route="threads/async", methods=["GET"])
async def async_thread(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    loop = id(asyncio.get_running_loop())
    return func.HttpResponse(json.dumps({"thread": threading.current_thread().name, "loop": loop}))


@app.route(route="context", methods=["GET"])
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"name": context.function_name, "id": context.invocation_id}))


@app.queue_trigger(arg_name="msg", queue_name="%FIXTURE_QUEUE%", connection="AzureWebJobsStorage")
def worker(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode()
    record(kind="queue", id=msg.id, body=body, dequeue_count=msg.dequeue_count)
    instruction = json.loads(body)
    if msg.dequeue_count <= instruction.get("fail_times", 0):
        raise RuntimeError(f"failing attempt {msg.dequeue_count}")


@app.timer_trigger(schedule="%FIXTURE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def every_two_seconds(timer: func.TimerRequest) -> None:
    record(kind="timer", past_due=timer.past_due)


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
def at_startup(timer: func.TimerRequest) -> None:
    record(kind="startup", past_due=timer.past_due)


@app.timer_trigger(schedule="0 * * * * *", arg_name="timer", run_on_startup=False)
def every_minute(timer: func.TimerRequest) -> None:
    record(kind="minute", past_due=timer.past_due)
