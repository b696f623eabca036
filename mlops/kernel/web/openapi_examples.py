"""An operation's examples in its OpenAPI document, as OpenAPI 3 `examples` (each with `summary` =
its title), so that Swagger UI (/docs) and client generators show them.

A request's parts go where OpenAPI puts them: its body under the request body, its query string
and path under each parameter (the same example name on each, so that one example's values are
sent together). Only requests the operation takes are request examples: an example of a refused
request (400) is shown under its answer only. An answer goes under its status: a success's is a
real run's; an error's words are the service's own, known only by asking it (docs/API.md shows
them, tools/apidoc.py asks), so here an error example names its request and leaves the value to
the error shape.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from mlops.kernel.examples import ABRIDGED, Example
from mlops.kernel.web.operations import HTML, JSON, Operation


def add_examples(item: dict[str, Any], op: Operation, path: str) -> None:
    """Put the operation's examples into its OpenAPI operation object `item` (path: its OpenAPI path)."""
    names = example_names(op.examples)
    for name, example in zip(names, op.examples, strict=True):
        summary = example.title if example.status < 300 else f"{example.title} (answers {example.status})"
        if example.status != 400:
            _add_request(item, name, summary, example, path)
        _add_answer(item, name, example, request_line(op.method, path, example))


def example_names(examples: tuple[Example, ...]) -> list[str]:
    """A name per example, from its title, unique within the operation."""
    names: list[str] = []
    for example in examples:
        base = re.sub(r"\W+", "_", example.title.lower()).strip("_")[:60] or "example"
        name, number = base, 2
        while name in names:
            name, number = f"{base}_{number}", number + 1
        names.append(name)
    return names


def request_line(method: str, path: str, example: Example) -> str:
    """The example's request as one line: `POST /root/ml {"dataset": "testing"}`."""
    target = (example.path or path) + (f"?{example.query}" if example.query else "")
    body = "" if example.body is None else " " + json.dumps(example.body, ensure_ascii=False)
    return f"{method} {target}{body}"


def path_values(path: str, filled: str) -> dict[str, str]:
    """The path parameters' values in a filled-in path: /jobs/{job_id}, /jobs/abc -> {"job_id": "abc"}."""
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    match = re.fullmatch(pattern, filled)
    if match is None:
        raise ValueError(f"the example's path {filled} is not one of {path}")
    return match.groupdict()


def _add_request(item: dict[str, Any], name: str, summary: str, example: Example, path: str) -> None:
    if example.body is not None and "requestBody" in item:
        content = item["requestBody"]["content"][JSON]
        content.setdefault("examples", {})[name] = {"summary": summary, "value": example.body}
    values = dict(parse_qsl(example.query)) | (path_values(path, example.path) if example.path else {})
    for parameter in item.get("parameters", []):
        if parameter["name"] in values:
            value = values[parameter["name"]]
            parameter.setdefault("examples", {})[name] = {"summary": summary, "value": value}


def _add_answer(item: dict[str, Any], name: str, example: Example, request: str) -> None:
    response = item["responses"].get(str(example.status))
    if response is None:  # an undocumented status: tools/apidoc.py and the tests report it
        return
    media_type = HTML if isinstance(example.response, str) and HTML in response["content"] else JSON
    shown: dict[str, Any] = {"summary": example.title}
    if example.status >= 400:
        shown["description"] = _error_description(example, request)
    else:
        shown["value"] = example.response
        if ABRIDGED in json.dumps(example.response, ensure_ascii=False):
            shown["description"] = f"A real run's answer, abridged where it shows {ABRIDGED}"
    response["content"].setdefault(media_type, {}).setdefault("examples", {})[name] = shown


def _error_description(example: Example, request: str) -> str:
    given = "; ".join(
        f"{g.service}: {g.method} {g.path}" + ("" if g.body is None else " " + json.dumps(g.body, ensure_ascii=False))
        for g in example.given
    )
    state = f", after {given}" if given else ""
    return (
        f"The answer to `{request}`{state}: an error in this shape; its words are the service's own "
        "(docs/API.md shows them)."
    )
