"""GET /api/health: database and queue status for ops and load balancers."""

import azure.functions as func

from functions.http import json_response

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.health import check_health

    report = check_health()
    return json_response(report.as_dict(), status=200 if report.ok else 503)
