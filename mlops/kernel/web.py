"""Flask plumbing shared by the four services: the app factory helper, request-model
validation, JSON errors, OpenAPI document and docs page, health endpoint, size limit, token."""

from __future__ import annotations

import functools
import hmac
import html
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request
from pydantic import BaseModel, BeforeValidator, ValidationError
from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from mlops.kernel.config import Settings
from mlops.kernel.db import ensure_schema, make_engine, ping
from mlops.kernel.errors import ApiError, BadRequest, Unauthorized, UnsupportedMediaType
from mlops.kernel.metrics import EXPOSITION_TYPE, ServiceMetrics, record_requests
from mlops.kernel.outages import DATASET_DB, MLFLOW_STORE, outage
from mlops.kernel.text import escape_controls

log = logging.getLogger("mlops")
# the dependency each health check is about, as outages are logged
HEALTH_DEPENDENCIES = {"database": DATASET_DB, "mlflow": MLFLOW_STORE}
M = TypeVar("M", bound=BaseModel)

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error", "message"],
}


@dataclass(frozen=True)
class Operation:
    """One endpoint as the OpenAPI document describes it."""

    rule: str
    method: str
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: dict[int, str]


class ApiBlueprint(Blueprint):
    """A blueprint whose routes declare their request models: one place validates the request
    and describes it in the OpenAPI document."""

    def __init__(self, name: str, import_name: str):
        super().__init__(name, import_name)
        self.operations: list[Operation] = []

    def operation(
        self,
        rule: str,
        method: str,
        *,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        responses: dict[int, str] | None = None,
        reader: Callable[[type[M]], M] | None = None,
    ) -> Callable:
        """Route method+rule to the view; a `body`/`query` model is parsed and passed by that name.

        `reader` reads the body into its model where the body is not plain JSON (default parse_json_body).
        """
        read_body = reader or parse_json_body

        def decorator(view: Callable) -> Callable:
            summary = (view.__doc__ or view.__name__).strip().splitlines()[0]
            self.operations.append(Operation(rule, method.upper(), summary, body, query, responses or {200: "OK"}))

            @functools.wraps(view)
            def parsed_view(**kwargs: Any) -> Any:
                if body is not None:
                    kwargs["body"] = read_body(body)
                if query is not None:
                    kwargs["query"] = parse_query(query)
                return view(**kwargs)

            self.add_url_rule(rule, view_func=parsed_view, methods=[method.upper()])
            return parsed_view

        return decorator


def _whole_number_as_int(value: Any) -> Any:
    """JSON Schema counts 8718.0 as an integer: take a whole-number float as that int.

    Anything else goes on unchanged to the strict int check (which refuses 1.5, "1" and true).
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


# Gives an int field JSON Schema's semantics (1262361.0 is the integer 1262361) in request models
# in strict mode, which would otherwise refuse every float. Put it after the field's constraints,
# `Annotated[int, Field(ge=1), WholeNumber]`, or pydantic leaves them out of the JSON schema.
WholeNumber = BeforeValidator(_whole_number_as_int)
Integer = Annotated[int, WholeNumber]


def parse_json_body(model: type[M]) -> M:
    """Read the request's JSON body into model; wrong content type, bad JSON or fields are 4xx."""
    if not request.is_json:
        raise UnsupportedMediaType("Send the request body as JSON with the header Content-Type: application/json")
    try:
        data = json.loads(request_body())
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"The body is not valid JSON: {error}", error="Malformed JSON") from None
    except RecursionError:  # e.g. [[[[...]]]] a hundred thousand levels deep
        raise BadRequest("The body's JSON is nested too deeply to be read", error="Malformed JSON") from None
    return validate(model, data)


def request_body() -> bytes:
    """The request's body, whole (413 above MAX_CONTENT_LENGTH)."""
    raw = request.get_data(cache=True)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    # Werkzeug stops reading a chunked body (one sent without Content-Length) at the cap and
    # hands over what it read so far without a word: a body that fills the cap was cut off.
    if request.content_length is None and limit is not None and len(raw) >= limit:
        raise RequestEntityTooLarge()
    return raw


def parse_query(model: type[M]) -> M:
    """Read the query string into model."""
    return validate(model, request.args.to_dict())


def validate(model: type[M], data: Any) -> M:
    """Validate data against model, turning pydantic's errors into one readable 400."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BadRequest(describe_validation_error(error), error="Invalid request") from None


# A body of a million wrong numbers gets an answer of a few lines, not a million sentences.
SHOWN_PROBLEMS = 10


def describe_validation_error(error: ValidationError) -> str:
    """One sentence per problem (the first SHOWN_PROBLEMS): where it is, what is wrong, what was given."""
    parts = []
    problems = error.errors(include_url=False)
    for problem in problems[:SHOWN_PROBLEMS]:
        where = escape_controls(".".join(str(p) for p in problem["loc"])) or "body"
        message = problem["msg"]
        if problem["type"] == "missing":
            parts.append(f"{where}: field required")
        elif problem["type"] == "extra_forbidden":
            parts.append(f"{where}: unknown field")
        else:
            given = problem.get("input")
            shown = json.dumps(given)[:80] if _is_json_scalar(given) else type(given).__name__
            parts.append(f"{where}: {message} (got {shown})")
    if len(problems) > SHOWN_PROBLEMS:
        parts.append(f"and {len(problems) - SHOWN_PROBLEMS} more problems")
    return "; ".join(parts)


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


@dataclass
class ServiceState:
    """Per-app state kept in app.extensions["mlops"]."""

    service: str
    title: str
    settings: Settings
    operations: list[Operation]
    health_checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    # what /ready checks besides the health checks (e.g. the MLflow store open)
    ready_checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    # Prometheus metrics of the app (every worker's, under gunicorn): mlops.kernel.metrics
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    _engine: Engine | None = None
    _engine_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def engine(self) -> Engine:
        """The dataset database engine, created on first use with its schema ensured."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = make_engine(self.settings.dataset_db)
                # a new connection means the database answers: the end of an outage, if there was one
                event.listen(self._engine, "connect", lambda *_: outage(DATASET_DB).recovered())
        ensure_schema(self._engine)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class NotReady(Exception):
    """Raised by a readiness check to say what is still missing (a 503 from /ready)."""


def service_state() -> ServiceState:
    return current_app.extensions["mlops"]


def dataset_engine() -> Engine:
    """The dataset database engine of the current app."""
    return service_state().engine


def current_settings() -> Settings:
    return service_state().settings


def create_service_app(
    service: str,
    title: str,
    settings: Settings,
    blueprints: Iterable[ApiBlueprint],
    *,
    health_checks: dict[str, Callable[[ServiceState], None]] | None = None,
    ready_checks: dict[str, Callable[[ServiceState], None]] | None = None,
) -> Flask:
    """Build a service's Flask app: its blueprints plus health, OpenAPI, docs, errors, limits."""
    _configure_logging()
    app = Flask(f"mlops.{service}")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    blueprints = list(blueprints)
    state = ServiceState(
        service=service,
        title=title,
        settings=settings,
        operations=[op for bp in blueprints for op in bp.operations],
    )
    checks = health_checks if health_checks is not None else {"database": lambda s: ping(s.engine)}
    state.health_checks = {name: functools.partial(check, state) for name, check in checks.items()}
    state.ready_checks = {name: functools.partial(check, state) for name, check in (ready_checks or {}).items()}
    app.extensions["mlops"] = state
    record_requests(app, state.metrics, service)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    app.register_blueprint(_plumbing_blueprint())
    _register_error_handlers(app)
    _register_request_hooks(app, settings)
    return app


def _configure_logging() -> None:
    """Log INFO lines to stderr unless the host program (gunicorn, pytest) configured logging."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _plumbing_blueprint() -> ApiBlueprint:
    bp = ApiBlueprint("plumbing", __name__)

    @bp.operation("/health", "GET", responses={200: "Alive, dependencies reachable", 503: "A dependency is down"})
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
            200: "Ready: the service can answer its main requests",
            503: "Not ready: the message says what is missing",
        },
    )
    def ready():
        """Say whether the service can answer its main requests now (readiness), else what is missing."""
        state = service_state()
        checks: dict[str, str] = {}
        missing = []
        for name, check in {**state.health_checks, **state.ready_checks}.items():
            try:
                check()
                checks[name] = "ok"
            except NotReady as why:
                checks[name] = str(why)
                missing.append(f"{name}: {why}")
            except Exception as error:  # a probe reports any failure, it never raises
                checks[name] = "unavailable"
                missing.append(f"{name}: {type(error).__name__}")
        body = {"status": "ready" if not missing else "not ready", "service": state.service, "checks": checks}
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
        return docs_page(openapi_document(service_state())), 200, {"Content-Type": "text/html; charset=utf-8"}

    return bp


def openapi_document(state: ServiceState) -> dict[str, Any]:
    """An OpenAPI 3.1 document built from the request models the routes validate with."""
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for op in state.operations:
        item: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method.lower()}_{op.rule.strip('/').replace('/', '_') or 'root'}",
            "responses": {str(status): _response(status, description) for status, description in op.responses.items()},
        }
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_ref(op.body, components)}},
            }
            item["responses"].setdefault("400", _response(400, "Invalid request"))
        if op.query is not None:
            schema = op.query.model_json_schema()
            required = set(schema.get("required", []))
            item["parameters"] = [
                {"name": name, "in": "query", "required": name in required, "schema": prop}
                for name, prop in schema.get("properties", {}).items()
            ]
            item["responses"].setdefault("400", _response(400, "Invalid request"))
        path_names = re.findall(r"<(?:\w+:)?(\w+)>", op.rule)
        if path_names:
            item["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in path_names
            ] + item.get("parameters", [])
        paths.setdefault(_openapi_path(op.rule), {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": state.title, "version": "1.0.0"},
        "servers": [{"url": f"http://{state.settings.host}:{state.settings.port_of(state.service)}"}],
        "paths": paths,
        "components": {"schemas": components},
    }


def _openapi_path(rule: str) -> str:
    return rule.replace("<", "{").replace(">", "}")


def _response(status: int, description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"} if status >= 400 else {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def docs_page(document: dict[str, Any]) -> str:
    """A self-contained HTML page listing every endpoint and its request schema."""
    rows = []
    for path, methods in document["paths"].items():
        for method, item in methods.items():
            body = item.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            schema = ""
            if body:
                name = body["$ref"].rsplit("/", 1)[-1]
                schema = json.dumps(document["components"]["schemas"][name], indent=2)
            params = ", ".join(p["name"] for p in item.get("parameters", []))
            rows.append(
                f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                f"<p>{html.escape(item['summary'])}</p>"
                + (f"<p>Query: <code>{html.escape(params)}</code></p>" if params else "")
                + (f"<pre>{html.escape(schema)}</pre>" if schema else "")
                + "<p>Responses: "
                + ", ".join(f"{s} {html.escape(r['description'])}" for s, r in item["responses"].items())
                + "</p></section>"
            )
    title = html.escape(document["info"]["title"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title} API</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "pre{background:#f4f4f4;padding:.5em;overflow:auto}</style></head>"
        f"<body><h1>{title} API</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        + "".join(rows)
        + "</body></html>"
    )


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error.to_json(), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def body_too_large(error: RequestEntityTooLarge):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return {
            "error": "Request Entity Too Large",
            "message": f"The request body is larger than the limit of {limit} bytes (MLOPS_MAX_BODY_BYTES)",
        }, 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        # Keep the headers the status calls for (Allow on a 405), not the HTML page's Content-Type.
        headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        return {"error": error.name, "message": error.description}, error.code, headers

    @app.errorhandler(ValidationError)
    def validation_error(error: ValidationError):
        return {"error": "Invalid request", "message": describe_validation_error(error)}, 400

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def database_unavailable(error: Exception):
        if _lost_to_a_concurrent_change(error):
            log.warning("transaction lost to a concurrent one: %s", error)
            return {
                "error": "Conflict",
                "message": "The request collided with a concurrent change of the same data; send it again",
            }, 409
        outage(DATASET_DB).failed(error)
        return {
            "error": "Service Unavailable",
            "message": "The dataset database is unavailable right now; retry shortly",
        }, 503

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return {"error": "Internal Server Error", "message": "An unexpected error occurred; see the service log"}, 500


def _lost_to_a_concurrent_change(error: Exception) -> bool:
    """Whether PostgreSQL rolled the transaction back for another one (deadlock, serialization
    failure: SQLSTATE class 40); the database itself is fine and the request can be sent again."""
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None) or ""
    return sqlstate.startswith("40")


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# liveness and readiness probes (the Open Inference Protocol's too) never need the token
OPEN_PATHS = frozenset({"/health", "/ready", "/v2/health/live", "/v2/health/ready"})


def _register_request_hooks(app: Flask, settings: Settings) -> None:
    access = logging.getLogger(f"mlops.{app.extensions['mlops'].service}.access")

    @app.before_request
    def start_and_authorize():
        g.started = time.perf_counter()
        if not settings.api_token or request.path in OPEN_PATHS:
            return None
        if request.method in READ_METHODS and not settings.protect_reads:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), settings.api_token.encode()):
            raise Unauthorized("Send the header Authorization: Bearer <MLOPS_API_TOKEN>")
        return None

    @app.after_request
    def log_request(response):
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        access.info("%s %s %s %.1fms", request.method, request.full_path.rstrip("?"), response.status_code, elapsed)
        return response
