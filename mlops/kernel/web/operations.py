"""The blueprint whose routes declare their request models: `bp.operation` parses the request
into them, and the OpenAPI document describes the same operations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint
from pydantic import BaseModel

from mlops.kernel.web.parsing import parse_json_body, parse_query

M = TypeVar("M", bound=BaseModel)


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
