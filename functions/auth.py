"""/api/auth/...: sign-in through WorkOS or Entra ID, the callback, the hand-over redemption, logout."""

import azure.functions as func

from functions.http import json_response

bp = func.Blueprint()


def _web(req: func.HttpRequest, handler_name: str) -> func.HttpResponse:
    from shared.admin.api import client_address
    from shared.sso import signin

    request = signin.SignInRequest(
        params=dict(req.params), cookie_header=req.headers.get("Cookie"),
        client=client_address(req.headers.get("X-Forwarded-For")), origin=signin.request_origin(req.url))
    response = getattr(signin, handler_name)(request)
    headers = dict(response.headers)
    if response.cookies:
        headers["Set-Cookie"] = response.cookies[0]  # one cookie: the login state's
    return func.HttpResponse(response.body, status_code=response.status, headers=headers)


@bp.route(route="auth/login", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def auth_login(req: func.HttpRequest) -> func.HttpResponse:
    return _web(req, "login")


@bp.route(route="auth/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def auth_callback(req: func.HttpRequest) -> func.HttpResponse:
    return _web(req, "callback")


@bp.route(route="auth/logout", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def auth_logout(req: func.HttpRequest) -> func.HttpResponse:
    return _web(req, "logout")


@bp.route(route="auth/handoff/redeem", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def auth_handoff_redeem(req: func.HttpRequest) -> func.HttpResponse:
    from shared.admin.api import client_address
    from shared.sso.handoff import redeem

    response = redeem(req.headers.get("Authorization"), req.get_body(),
                      client_address(req.headers.get("X-Forwarded-For")))
    return json_response(response.body, status=response.status, headers=response.headers)


