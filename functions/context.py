"""/api/context/{tenant}/...: what tenant apps read about their users (app credentials)."""

import azure.functions as func

from functions.http import json_response

bp = func.Blueprint()


@bp.route(route="context/{tenant}/changes", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def context_changes(req: func.HttpRequest) -> func.HttpResponse:
    from shared.context.api import changes

    response = changes(req.route_params["tenant"], req.headers.get("Authorization"), dict(req.params))
    return json_response(response.body, status=response.status, headers=response.headers)


@bp.route(route="context/{tenant}/users/{user}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def context_user(req: func.HttpRequest) -> func.HttpResponse:
    from shared.context.api import user_context

    response = user_context(req.route_params["tenant"], req.headers.get("Authorization"), req.route_params["user"])
    return json_response(response.body, status=response.status, headers=response.headers)


@bp.route(route="context/{tenant}/results", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def context_report_result(req: func.HttpRequest) -> func.HttpResponse:
    from shared.context.api import ContextResponse, report_result

    response, after = report_result(req.route_params["tenant"], req.headers.get("Authorization"), req.get_body())
    if after is not None:
        try:
            after()
        except Exception:  # recorded but not queued: the same request again queues it
            response = ContextResponse(503, {"error": "unavailable", "message": "the result was recorded but could"
                                             " not be queued; send the same request again"})
    return json_response(response.body, status=response.status, headers=response.headers)


@bp.route(route="context/{tenant}/results/{result_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def context_result(req: func.HttpRequest) -> func.HttpResponse:
    from shared.context.api import result

    response = result(req.route_params["tenant"], req.headers.get("Authorization"), req.route_params["result_id"])
    return json_response(response.body, status=response.status, headers=response.headers)
