"""Reading a request into its pydantic model: JSON body, query string, whole-number floats as
integers, and pydantic's errors as one readable 400."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, TypeVar

from flask import current_app, request
from pydantic import BaseModel, BeforeValidator, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from mlops.kernel.errors import BadRequest, UnsupportedMediaType
from mlops.kernel.text import escape_controls

M = TypeVar("M", bound=BaseModel)


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
