"""The OpenAPI 3.1 document of a service, built from the operations its blueprints declare."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from mlops.kernel.web.state import ServiceState

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error", "message"],
}


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
        paths.setdefault(openapi_path(op.rule), {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": state.title, "version": "1.0.0"},
        "servers": [{"url": f"http://{state.settings.host}:{state.settings.port_of(state.service)}"}],
        "paths": paths,
        "components": {"schemas": components},
    }


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /jobs/<job_id> is /jobs/{job_id}."""
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
