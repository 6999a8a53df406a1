"""function_app.py: what it registers, and what importing it costs."""

from __future__ import annotations

import json
import subprocess

from tests.stack import PROJECT_ROOT, PYTHON, base_environment

HEAVY = ("workos", "botbuilder", "botframework", "msal", "azure.identity", "azure.storage", "azure.keyvault",
         "scim2_server", "scim2_models", "psycopg", "httpx", "aiohttp", "pydantic", "jwt")

# Import the app as the worker does, note what that loaded, then index it as the host would.
INDEX_LIKE_THE_HOST = f"""
import json, sys
import function_app
heavy = {HEAVY!r}
loaded = sorted({{m for m in sys.modules for h in heavy if m == h or m.startswith(h + ".")}})
from local.host.index import index_functions
from shared.config import SETTINGS
defaults = {{name: setting.default for name, setting in SETTINGS.items() if setting.default}}
errors = {{}}
functions = [{{"name": f.name, "trigger": f.trigger}}
             for f in index_functions(function_app.app, environ=defaults, errors=errors)]
print(json.dumps({{"functions": functions, "loaded": loaded, "errors": errors}}))
"""


def index_app() -> dict:
    result = subprocess.run([PYTHON, "-c", INDEX_LIKE_THE_HOST], env=base_environment(), cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_indexing_the_app_imports_no_heavy_module():
    index = index_app()
    assert index["functions"], "the app registers functions"
    assert index["loaded"] == []


def test_the_host_accepts_every_function_no_reserved_or_duplicate_route():
    assert index_app()["errors"] == {}


def test_every_http_function_is_anonymous_and_authenticates_in_code():
    triggers = [function["trigger"] for function in index_app()["functions"]
                if function["trigger"]["type"] == "httpTrigger"]
    assert triggers
    assert {trigger["authLevel"] for trigger in triggers} == {"ANONYMOUS"}


def test_health_is_served_at_its_documented_route():
    routes = {function["trigger"].get("route") for function in index_app()["functions"]}
    assert "health" in routes
