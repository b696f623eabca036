"""Request strings that are stored: names and free text without control characters.

A NUL byte or an escape sequence in an experiment name or a tag is stored as given and then
breaks whatever reads it back: PostgreSQL refuses NUL in text and JSON, terminals interpret
escapes, log lines split on a newline. Such strings are refused with a 400 naming the
characters, before anything is stored. Names may hold no control character at all; free text
(a description) may hold tabs and line breaks.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# Unicode's control characters (category Cc) are exactly C0, DEL and C1. The patterns are written
# so that both ECMA 262 (JSON Schema's regex dialect) and Python's re read them the same way.
NAME_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"


CONTROL = re.compile(r"[\u0000-\u001f\u007f-\u009f]")


def escape_controls(value: str) -> str:
    """value with its control characters written as escapes (\\x00, \\n), fit for a message."""
    return CONTROL.sub(lambda found: repr(found.group())[1:-1], value)


def _refuse_controls(kind: str, pattern: str):
    """A validator that refuses a string with control characters that `pattern` does not allow."""
    allowed = re.compile(pattern)

    def check(value: str) -> str:
        if allowed.fullmatch(value) is None:
            found = dict.fromkeys(c for c in CONTROL.findall(value) if allowed.fullmatch(c) is None)
            raise PydanticCustomError(
                "control_characters",
                "{kind} may not contain control characters (found {found})",
                {"kind": kind, "found": ", ".join(escape_controls(c) for c in found)},
            )
        return value

    return check


Name = Annotated[
    str, AfterValidator(_refuse_controls("a name", NAME_PATTERN)), Field(json_schema_extra={"pattern": NAME_PATTERN})
]
Text = Annotated[
    str, AfterValidator(_refuse_controls("text", TEXT_PATTERN)), Field(json_schema_extra={"pattern": TEXT_PATTERN})
]
