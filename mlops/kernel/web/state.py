"""What one service app holds (app.extensions["mlops"]): settings, operations, probes, metrics,
the dataset database engine, and the service's own resources, typed; and the accessors routes use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flask import Flask, current_app
from sqlalchemy import Engine, event

from mlops.kernel.config import Settings
from mlops.kernel.db import DATABASE_DOWN, ensure_schema, make_engine
from mlops.kernel.metrics import ServiceMetrics
from mlops.kernel.outages import DATASET_DB, outage
from mlops.kernel.web.operations import Operation

R = TypeVar("R")
EXTENSION = "mlops"


@dataclass
class ServiceState(Generic[R]):
    """Per-app state kept in app.extensions["mlops"]."""

    service: str
    title: str
    settings: Settings
    operations: list[Operation]
    health_checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    # what /ready checks besides the health checks (e.g. the MLflow store open); one named as a
    # health check replaces it in /ready. A check may return what it found (shown instead of "ok").
    ready_checks: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    # Prometheus metrics of the app (every worker's, under gunicorn): mlops.kernel.metrics
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    # what the service itself keeps per app (the ML service's pipeline cache, tracking's MLflow
    # store and job runner, monitoring's cache); None for the simulator
    resources: R = None  # type: ignore[assignment]
    _engine: Engine | None = None
    _engine_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def engine(self) -> Engine:
        """The dataset database engine, created on first use with its schema ensured.

        While the database is down the schema cannot be ensured; the engine is given all the same
        (every statement then fails as the outage does, a 503, while prediction can still answer
        with a model it holds) and the schema is ensured at the first use after the outage.
        """
        with self._engine_lock:
            if self._engine is None:
                self._engine = make_engine(self.settings.dataset_db)
                # a new connection means the database answers: the end of an outage, if there was one
                event.listen(self._engine, "connect", lambda *_: outage(DATASET_DB).recovered())
        try:
            ensure_schema(self._engine)
        except DATABASE_DOWN as error:
            outage(DATASET_DB).failed(error)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class NotReady(Exception):
    """Raised by a readiness check to say what is still missing (a 503 from /ready)."""


class Degraded(Exception):
    """Raised by a readiness check whose dependency is down while the service still answers its
    main requests without it (the ML service predicting with the model it holds): /ready stays
    200 and says why in `degraded`."""


def state_of(app: Flask) -> ServiceState[Any]:
    """The state of a service app built by create_service_app."""
    return app.extensions[EXTENSION]


def service_state() -> ServiceState[Any]:
    """The state of the app handling the current request."""
    return state_of(current_app)


def service_resources(kind: type[R]) -> R:
    """The current app's own resources, checked to be of the kind the caller expects."""
    resources = service_state().resources
    if not isinstance(resources, kind):
        raise TypeError(f"this app's resources are a {type(resources).__name__}, not a {kind.__name__}")
    return resources


def dataset_engine() -> Engine:
    """The dataset database engine of the current app."""
    return service_state().engine


def current_settings() -> Settings:
    return service_state().settings
