"""The algorithm filing and audit registry (人工智能审批算法备案库): the Flask application."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from registry import config as config_module
from registry.db import make_engine
from registry.storage.files import LocalContentStore


@dataclass
class RegistryState:
    """What the app holds for the domain code: the database engine and the content store."""

    engine: Engine
    content: LocalContentStore


def create_app(config: dict | None = None) -> Flask:
    """Build the application: defaults, then the environment, then ``config`` (tests), then extensions and routes.

    No migrations, network calls or waiting here: ``registry serve`` and ``registry db upgrade`` do those.
    """
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_mapping(config_module.DEFAULTS)
    app.config.from_mapping(config_module.from_environment())
    if config:
        app.config.from_mapping(config)

    instance = Path(app.config["INSTANCE_PATH"] or config_module.default_instance_path()).resolve()
    instance.mkdir(parents=True, exist_ok=True)
    app.config["INSTANCE_PATH"] = str(instance)
    app.instance_path = str(instance)
    app.config["DATABASE_URL"] = config_module.database_url(instance, app.config["DATABASE_URL"])
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = config_module.instance_secret_key(instance)
    # Uploads are limited per kind in the services; this caps any request body (the model limit plus form overhead).
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_MODEL_BYTES"]) + 1024 * 1024

    from registry.library.page_cache import FrontCache

    app.wsgi_app = FrontCache(app.wsgi_app, app)  # cached public pages, answered before Flask's request handling
    if hops := int(app.config["PROXY_HOPS"]):
        # Only behind proxies we run: otherwise anyone could claim to have come over TLS or from another address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    app.extensions["registry"] = RegistryState(
        engine=make_engine(app.config["DATABASE_URL"]),
        content=LocalContentStore(instance / "files"),
    )

    from registry import access, api_support, i18n, meta, problems, request_db, security_headers
    from registry.accounts import api as accounts_api
    from registry.accounts import views as accounts_views
    from registry.audit_jobs import api as audit_jobs_api
    from registry.audit_jobs import views as audit_jobs_views
    from registry.decision_log import api as decision_log_api
    from registry.decision_log import keys as log_keys
    from registry.decisions import api as decisions_api
    from registry.decisions import views as decisions_views
    from registry.filings import api as filings_api
    from registry.filings import views as filings_views
    from registry.library import concern_views
    from registry.library import data_views as library_data_views
    from registry.library import views as library_views
    from registry.notifications import api as notifications_api
    from registry.notifications import mailer
    from registry.notifications import views as notifications_views
    from registry.reference_data import api as reference_data_api
    from registry.reference_data import views as reference_data_views
    from registry.web import csrf, figures, plain, render_error
    from registry.web import views as home_views

    request_db.init_app(app)
    access.init_app(app)
    i18n.init_app(app)
    figures.register(app)
    plain.register(app)
    csrf.init_app(app)
    security_headers.init_app(app)
    concern_views.init_rate_limits(app)  # after CSRF: a forged form is refused before it counts
    problems.register(app, render_error)
    api_blueprints = (
        meta.bp,
        accounts_api.bp,
        filings_api.bp,
        audit_jobs_api.bp,
        decisions_api.bp,
        reference_data_api.bp,
        notifications_api.bp,
        decision_log_api.bp,
    )
    page_blueprints = (
        home_views.bp,
        accounts_views.bp,
        filings_views.bp,
        audit_jobs_views.bp,
        decisions_views.bp,
        reference_data_views.bp,
        notifications_views.bp,
        library_data_views.bp,
        library_views.bp,
        concern_views.bp,
    )
    app.url_map.converters["int"] = api_support.RowIdConverter  # before any route: ids beyond the columns are 404
    for blueprint in api_blueprints + page_blueprints:
        app.register_blueprint(blueprint)
    for blueprint in api_blueprints:
        csrf.exempt(blueprint)  # bearer-token API: no cookie authorises it (see registry.access)
    # E-mail for the notifications written through this engine, when SMTP is configured (nothing connects here).
    mailer.configure(app.extensions["registry"].engine, mailer.MailSettings.from_config(app.config))
    # The decision log's signing key, read when the first decision is logged (`registry serve` checks it at start).
    log_keys.configure(app.extensions["registry"].engine, functools.partial(log_keys.load, dict(app.config)))
    return app
