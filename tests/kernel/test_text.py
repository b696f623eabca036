"""Names and free text that are stored refuse control characters, and say which."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError

from mlops.kernel.text import NAME_PATTERN, TEXT_PATTERN, Name, Text, escape_controls


class Stored(BaseModel):
    name: Name
    text: Text = ""


CONTROLS = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9f", "\n", "\r", "\t"]
PRINTABLE = ["wine_test_1", "ñandú 😀", "\u202egnp.exe", "a b", "", "x" * 1000, "\xa0", "Ā"]


@pytest.mark.parametrize("control", CONTROLS)
def test_a_name_with_any_control_character_is_refused_and_the_character_named(control):
    with pytest.raises(ValidationError) as refused:
        Stored(name=f"wine{control}test")
    assert "control characters" in str(refused.value)
    assert f"found {escape_controls(control)}" in str(refused.value)


def test_free_text_may_hold_tabs_and_line_breaks_but_no_other_control():
    assert Stored(name="n", text="first line\nsecond\tline\r\n").text.endswith("\r\n")
    for control in ("\x00", "\x1b", "\x7f", "\x85"):
        with pytest.raises(ValidationError, match="control characters"):
            Stored(name="n", text=f"text{control}")


@pytest.mark.parametrize("value", PRINTABLE)
def test_printable_names_are_kept_as_given(value):
    assert Stored(name=value).name == value


@pytest.mark.parametrize("value", PRINTABLE + [f"a{c}b" for c in CONTROLS] + ["trailing\n", "\n"])
def test_the_json_schema_pattern_says_what_the_validator_does(value):
    # ECMA 262 and Python's re read these patterns alike; the schema must not promise otherwise.
    for pattern, field in ((NAME_PATTERN, "name"), (TEXT_PATTERN, "text")):
        body = {"name": "n", field: value}
        try:
            Stored(**body)
            accepted = True
        except ValidationError:
            accepted = False
        assert (re.fullmatch(pattern, value) is not None) is accepted, (field, value)


def test_escape_controls_writes_escapes_and_keeps_the_rest():
    assert escape_controls("a\x00b\nc é 😀") == "a\\x00b\\nc é 😀"
