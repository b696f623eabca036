"""create_service_app: a service's blueprints plus what every service has (probes, metrics,
OpenAPI, docs, JSON errors, body limit, token, access log)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask

from mlops.kernel.config import Settings
from mlops.kernel.db import ping
from mlops.kernel.metrics import record_requests
from mlops.kernel.web.access_log import register_request_hooks
from mlops.kernel.web.endpoints import plumbing_blueprint
from mlops.kernel.web.error_handlers import register_error_handlers
from mlops.kernel.web.operations import ApiBlueprint
from mlops.kernel.web.state import EXTENSION, ServiceState

R = TypeVar("R")
Check = Callable[[ServiceState[Any]], None]
# A readiness check may also return what it found (shown in /ready instead of "ok").
ReadyCheck = Callable[[ServiceState[Any]], str | None]


def create_service_app(
    service: str,
    title: str,
    settings: Settings,
    blueprints: Iterable[ApiBlueprint],
    *,
    resources: Callable[[ServiceState[Any]], R] | None = None,
    health_checks: dict[str, Check] | None = None,
    ready_checks: dict[str, ReadyCheck] | None = None,
) -> Flask:
    """Build a service's Flask app: its blueprints plus health, OpenAPI, docs, errors, limits.

    `resources` makes what the service keeps per app (ServiceState.resources) from the state.
    """
    _configure_logging()
    app = Flask(f"mlops.{service}")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    blueprints = list(blueprints)
    state: ServiceState[Any] = ServiceState(
        service=service,
        title=title,
        settings=settings,
        operations=[op for bp in blueprints for op in bp.operations],
    )
    checks = health_checks if health_checks is not None else {"database": lambda s: ping(s.engine)}
    state.health_checks = {name: functools.partial(check, state) for name, check in checks.items()}
    state.ready_checks = {name: functools.partial(check, state) for name, check in (ready_checks or {}).items()}
    if resources is not None:
        state.resources = resources(state)
    app.extensions[EXTENSION] = state
    record_requests(app, state.metrics, service)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    app.register_blueprint(plumbing_blueprint())
    register_error_handlers(app)
    register_request_hooks(app, service, settings)
    return app


def _configure_logging() -> None:
    """Log INFO lines to stderr unless the host program (gunicorn, pytest) configured logging."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
