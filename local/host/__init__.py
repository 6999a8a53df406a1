"""A local Azure Functions host for the Python v2 programming model.

Azure Functions Core Tools cannot be installed everywhere (its npm package downloads the binary
from Microsoft's CDN), so this host runs the same ``function_app.py`` wherever the code could
notice a difference: HTTP routing and auth levels, queue polling, retries and poison queues, and
NCRONTAB timers. Each module states the behaviours it reproduces; tests/local_host proves them.
"""
