"""The WSGI application ``benchmarks/load.py`` serves with gunicorn: the registry at ``/``, and the floor — a bare
``Flask(__name__)`` app with one trivial route — at ``/floor``, through werkzeug's DispatcherMiddleware, so that the
floor runs in the same server, the same workers and the same run as the registry.

The registry is configured as in production, from the environment (REGISTRY_DATABASE_URL, REGISTRY_INSTANCE,
REGISTRY_LOG_SIGNING_KEY_FILE…). Run: ``gunicorn benchmarks.load_app:application``.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from registry import create_app

FLOOR_PREFIX = "/floor"

floor = Flask(__name__)


@floor.get("/")
def hello():
    return "ok"


registry_app = create_app()
application = DispatcherMiddleware(registry_app, {FLOOR_PREFIX: floor})
