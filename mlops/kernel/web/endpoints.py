"""What every service answers besides its own routes: liveness, readiness, Prometheus metrics,
its OpenAPI document and its docs page."""

from __future__ import annotations

from typing import Literal

from flask import Response, send_from_directory
from pydantic import BaseModel, ConfigDict, Field

from mlops.kernel.errors import NotFound
from mlops.kernel.metrics import EXPOSITION_TYPE
from mlops.kernel.outages import DATASET_DB, MLFLOW_STORE, outage
from mlops.kernel.web.docs_page import ASSETS, DOCS_POLICY, assets_dir, docs_page
from mlops.kernel.web.openapi import openapi_document
from mlops.kernel.web.operations import Answer, ApiBlueprint
from mlops.kernel.web.state import Degraded, NotReady, service_state

# the dependency each health check is about, as outages are logged
HEALTH_DEPENDENCIES = {"database": DATASET_DB, "mlflow": MLFLOW_STORE}


class Health(BaseModel):
    """Alive, with each dependency the service checks (`database`, tracking's `mlflow`) as "ok"."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": {"type": "string"}})

    status: Literal["ok"]
    service: str


class Readiness(BaseModel):
    """Ready to answer the main requests: every check "ok"."""

    status: Literal["ready"]
    service: str
    checks: dict[str, str]
    degraded: str | None = Field(None, description="why it answers without a dependency, when it does")


def plumbing_blueprint() -> ApiBlueprint:
    bp = ApiBlueprint("plumbing", __name__)

    @bp.operation(
        "/health",
        "GET",
        responses={200: Answer("Alive, dependencies reachable", Health), 503: "A dependency is down"},
    )
    def health():
        """Say whether the service is alive and its dependencies answer."""
        state = service_state()
        report: dict[str, str] = {}
        failed = []
        for name, check in state.health_checks.items():
            try:
                check()
                report[name] = "ok"
                outage(HEALTH_DEPENDENCIES.get(name, name)).recovered()
            except Exception as error:  # a health check reports any failure, it never raises
                outage(HEALTH_DEPENDENCIES.get(name, name)).failed(error)
                report[name] = "unavailable"
                failed.append(f"{name}: {type(error).__name__}")
        body = {"status": "ok" if not failed else "unavailable", "service": state.service, **report}
        if failed:
            body |= {"error": "Service Unavailable", "message": "Unreachable: " + ", ".join(failed)}
            return body, 503
        return body

    @bp.operation(
        "/ready",
        "GET",
        responses={
            200: Answer(
                "Ready: the service can answer its main requests (`degraded` says why if it does so without a "
                "dependency)",
                Readiness,
            ),
            503: "Not ready: the message says what is missing",
        },
    )
    def ready():
        """Say whether the service can answer its main requests now (readiness), else what is missing."""
        state = service_state()
        checks: dict[str, str] = {}
        missing, degraded = [], []
        for name, check in {**state.health_checks, **state.ready_checks}.items():
            try:
                checks[name] = check() or "ok"
            except NotReady as why:
                checks[name] = str(why)
                missing.append(f"{name}: {why}")
            except Degraded as why:
                checks[name] = "degraded"
                degraded.append(str(why))
            except Exception as error:  # a probe reports any failure, it never raises
                checks[name] = "unavailable"
                missing.append(f"{name}: {type(error).__name__}")
        body = {"status": "ready" if not missing else "not ready", "service": state.service, "checks": checks}
        if degraded:
            body["degraded"] = "; ".join(degraded)
        if missing:
            body |= {"error": "Service Unavailable", "message": "Not ready: " + "; ".join(missing)}
            return body, 503, {"Retry-After": "1"}
        return body

    @bp.get("/metrics")
    def metrics():
        """Prometheus metrics: requests by endpoint rule and status, summed over the service's workers."""
        return Response(service_state().metrics.exposition(), content_type=EXPOSITION_TYPE)

    @bp.get("/openapi.json")
    def openapi():
        return openapi_document(service_state())

    @bp.get("/docs")
    def docs():
        """Swagger UI on this service's OpenAPI document, served offline."""
        page = docs_page(f"{service_state().title}", "/openapi.json", "/docs/assets")
        return page, 200, {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": DOCS_POLICY}

    @bp.get("/docs/assets/<name>")
    def docs_asset(name: str):
        """One of Swagger UI's files, from the installed package."""
        if name not in ASSETS:
            raise NotFound(f"No docs asset {name!r}", error="Not Found")
        response = send_from_directory(assets_dir(), name, mimetype=ASSETS[name], max_age=86400)
        response.headers["Content-Security-Policy"] = DOCS_POLICY
        return response

    return bp
