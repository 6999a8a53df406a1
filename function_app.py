"""The Functions entry point: creates the app and registers one blueprint per surface.

The worker imports this file to index the functions on every cold start, so it imports nothing
heavy: each function imports what it needs when it first runs (DESIGN.md, "Cold start").
"""

import azure.functions as func

from functions import admin, auth, context, directory, health, hrms, retention, scim, teams

# Every endpoint authenticates in code: IdPs, WorkOS and Teams cannot send function keys.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for surface in (health, admin, auth, context, retention, scim, directory, teams, hrms):
    app.register_functions(surface.bp)
