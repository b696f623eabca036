"""The blueprint whose routes declare their request and answer models: `bp.operation` parses the
request into them, and the OpenAPI document describes the same operations."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint
from pydantic import BaseModel

from mlops.kernel.errors import ErrorAnswer
from mlops.kernel.examples import Example
from mlops.kernel.web.parsing import parse_json_body, parse_query

M = TypeVar("M", bound=BaseModel)


JSON = "application/json"
HTML = "text/html"


@dataclass(frozen=True)
class Answer:
    """One documented answer of an operation: what it means and, for a success, the model of its
    JSON body (or its media type where the body is not JSON, e.g. an HTML page)."""

    description: str
    model: type[BaseModel] | None = None
    media_types: tuple[str, ...] = (JSON,)


@dataclass(frozen=True)
class Operation:
    """One endpoint as the OpenAPI document describes it."""

    rule: str
    method: str
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: dict[int, Answer]
    # the shape of its 4xx/5xx bodies
    error_model: type[BaseModel]
    # its requests and answers, declared with the route (kept in the service's examples.py)
    examples: tuple[Example, ...] = ()


class ApiBlueprint(Blueprint):
    """A blueprint whose routes declare their request models: one place validates the request
    and describes it in the OpenAPI document."""

    def __init__(self, name: str, import_name: str, *, error_model: type[BaseModel] = ErrorAnswer):
        super().__init__(name, import_name)
        self.operations: list[Operation] = []
        self.error_model = error_model

    def operation(
        self,
        rule: str,
        method: str,
        *,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        responses: dict[int, Answer | str],
        reader: Callable[[type[M]], M] | None = None,
        examples: Sequence[Example] = (),
    ) -> Callable:
        """Route method+rule to the view; a `body`/`query` model is parsed and passed by that name.

        `responses` documents each status: an Answer, with the model of its body for every 2xx,
        or for an error a description (its body is the blueprint's error_model). `reader` reads
        the body into its model where the body is not plain JSON (default parse_json_body).
        `examples` are requests to it and their answers: the OpenAPI document and docs/API.md show them.
        """
        read_body = reader or parse_json_body
        answers = {status: a if isinstance(a, Answer) else Answer(a) for status, a in responses.items()}
        undescribed = [s for s, a in answers.items() if s < 400 and a.model is None and JSON in a.media_types]
        if undescribed:
            raise TypeError(f"{method} {rule}: give the model of the JSON answer for {undescribed}")

        def decorator(view: Callable) -> Callable:
            summary = (view.__doc__ or view.__name__).strip().splitlines()[0]
            self.operations.append(
                Operation(rule, method.upper(), summary, body, query, answers, self.error_model, tuple(examples))
            )

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
