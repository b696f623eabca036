"""The OpenAPI 3.1 document of a service, built from the operations its blueprints declare: their
request models, the model of every success, the error shape of every failure, their examples."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel

from mlops.kernel.web.auth import OPEN_PATHS, READ_METHODS
from mlops.kernel.web.openapi_examples import add_examples
from mlops.kernel.web.operations import JSON, Answer, Operation
from mlops.kernel.web.state import ServiceState

# What any operation may answer besides what it documents, always in its error shape.
OTHER_ERRORS = (
    "Any other error: 503 while a dependency (database, MLflow store, another service) is down, 500 unexpected"
)
BODY_ERRORS = {
    400: "Invalid request: the message names each wrong field",
    413: "The body is over MLOPS_MAX_BODY_BYTES",
    415: "The body is not JSON: send it with Content-Type: application/json",
}


def openapi_document(state: ServiceState) -> dict[str, Any]:
    """An OpenAPI 3.1 document built from the models the routes validate with and answer in."""
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    settings = state.settings
    for op in state.operations:
        answers = dict(op.responses)
        if op.body is not None:
            for status, description in BODY_ERRORS.items():
                answers.setdefault(status, Answer(description))
        if op.query is not None:
            answers.setdefault(400, Answer(BODY_ERRORS[400]))
        needs_token = settings.api_token and op.rule not in OPEN_PATHS
        if needs_token and (op.method not in READ_METHODS or settings.protect_reads):
            answers.setdefault(401, Answer("No or wrong token: send Authorization: Bearer <MLOPS_API_TOKEN>"))
        item: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method.lower()}_{op.rule.strip('/').replace('/', '_') or 'root'}",
            "responses": {
                str(status): _response(op, status, answer, components) for status, answer in sorted(answers.items())
            }
            | {"default": _response(op, 500, Answer(OTHER_ERRORS), components)},
        }
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": _schema_ref(op.body, components, "validation")}},
            }
        if op.query is not None:
            schema = op.query.model_json_schema()
            required = set(schema.get("required", []))
            item["parameters"] = [
                {"name": name, "in": "query", "required": name in required, "schema": prop}
                for name, prop in schema.get("properties", {}).items()
            ]
        path_names = re.findall(r"<(?:\w+:)?(\w+)>", op.rule)
        if path_names:
            item["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in path_names
            ] + item.get("parameters", [])
        add_examples(item, op, openapi_path(op.rule))
        paths.setdefault(openapi_path(op.rule), {})[op.method.lower()] = item
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": state.title, "version": "1.0.0"},
        "servers": [{"url": f"http://{settings.host}:{settings.port_of(state.service)}"}],
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items()))},
    }
    if settings.api_token:
        document["components"]["securitySchemes"] = {"token": {"type": "http", "scheme": "bearer"}}
    return document


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /jobs/<job_id> is /jobs/{job_id}."""
    return rule.replace("<", "{").replace(">", "}")


def _response(op: Operation, status: int, answer: Answer, components: dict[str, Any]) -> dict[str, Any]:
    model = answer.model if status < 400 else op.error_model
    content = {}
    for media_type in answer.media_types:
        if media_type == JSON and model is not None:
            content[media_type] = {"schema": _schema_ref(model, components, "serialization")}
        else:
            content[media_type] = {"schema": {"type": "string"}}
    return {"description": answer.description, "content": content}


def _schema_ref(
    model: type[BaseModel], components: dict[str, Any], mode: Literal["validation", "serialization"]
) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}
