"""The monitoring service's request models and the models of its answers."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mlops.kernel.errors import BadRequest
from mlops.monitoring.checks import TEST_PRESETS
from mlops.monitoring.monitor import VerdictReference

TEST_NAMES = ", ".join(f"'{name}'" for name in TEST_PRESETS)
_PRESET = "(?:" + "|".join(TEST_PRESETS) + ")"
TESTS_PATTERN = rf"^ *{_PRESET}(?: *, *{_PRESET})* *$"


# One flag per preset of TEST_PRESETS, so that the presets are named in one place.
TestFlags = create_model(
    "TestFlags",
    __config__=ConfigDict(extra="forbid", strict=True),
    __doc__="Which test presets to run: those set to true (a preset left out is not run).",
    **{name: (bool, False) for name in TEST_PRESETS},
)


def _one_of_metrics(metrics: list[str], field: str, then: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema for "`field` is given (not null) only with one of these metrics"."""
    rule: dict[str, Any] = {
        "if": {"properties": {"metric": {"enum": metrics}}, "required": ["metric"]},
        "else": {"properties": {field: {"type": "null"}}},
    }
    if then:
        rule["then"] = then
    return rule


# What the validators below check across fields, stated in the schema too.
MONITORING_RULES = {
    "allOf": [
        _one_of_metrics(["verdict"], "reference"),
        _one_of_metrics(
            ["tests", "summary"],
            "tests",
            {
                "properties": {
                    "tests": {  # at least one preset set to true
                        "anyOf": [
                            {"type": "null"},
                            *(
                                {"type": "object", "properties": {name: {"const": True}}, "required": [name]}
                                for name in TEST_PRESETS
                            ),
                        ]
                    }
                }
            },
        ),
    ]
}


class MonitoringRequest(BaseModel):
    """Which check to compute; `tests` picks the test presets of `tests` and `summary` (all five when absent)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=MONITORING_RULES)

    metric: Literal["report", "tests", "summary", "verdict"] = Field(
        description="report: data drift, data quality, target drift and classification metrics; "
        "tests: the test suites with every test; summary: only the suites' pass/fail counts; "
        "verdict: whether re-training is advised, with every check's statistic, effect size and threshold"
    )
    tests: TestFlags | None = Field(
        None, description="for tests and summary: the test presets to run (all five when absent)"
    )
    reference: VerdictReference | None = Field(
        None,
        description="for verdict: compare production with the testing set (default) or with training and "
        "testing together (more rows, more power)",
    )

    @field_validator("tests", mode="before")
    @classmethod
    def _known_test_flags(cls, value: Any) -> Any:
        """Name the five presets when the flags are not a mapping of them to true or false."""
        if value is None:
            return value
        if not isinstance(value, dict):
            raise _invalid_tests(f"give an object mapping some of {TEST_NAMES} to true or false")
        unknown = [name for name in value if name not in TEST_PRESETS]
        if unknown:
            raise _invalid_tests(f"unknown tests {', '.join(map(repr, unknown))}; the tests are {TEST_NAMES}")
        not_boolean = {name: flag for name, flag in value.items() if not isinstance(flag, bool)}
        if not_boolean:
            given = ", ".join(f"{name!r} is {flag!r}" for name, flag in not_boolean.items())
            raise _invalid_tests(f"set each test to true or false ({given}); the tests are {TEST_NAMES}")
        return value

    @model_validator(mode="after")
    def _tests_choose_something(self) -> MonitoringRequest:
        """Refuse flags for the report, and flags that choose no preset."""
        if self.reference is not None and self.metric != "verdict":
            raise PydanticCustomError(
                "reference_only_for_verdict",
                "`reference` chooses the verdict's reference: give it with the metric 'verdict'",
            )
        if self.tests is None:
            return self
        if self.metric in ("report", "verdict"):
            raise _invalid_tests(
                f"`tests` chooses test presets: give it with the metric 'tests' or 'summary', not {self.metric!r}"
            )
        if not any(self.tests.model_dump().values()):
            raise _invalid_tests(
                f"every test is false: set at least one of {TEST_NAMES} to true, or leave `tests` out to run all five"
            )
        return self

    def presets(self) -> tuple[str, ...]:
        """The chosen test presets, in TEST_PRESETS order."""
        if self.tests is None:
            return TEST_PRESETS
        flags = self.tests.model_dump()
        return tuple(name for name in TEST_PRESETS if flags[name])


def _invalid_tests(message: str) -> PydanticCustomError:
    # no context given, so braces in the client's own names are not taken for placeholders
    return PydanticCustomError("test_flags", message)


class TestsQuery(BaseModel):
    """The test presets of the HTML page, comma-separated (all five when absent)."""

    model_config = ConfigDict(extra="forbid")

    # the schema says what presets() accepts: known names, separated by commas (and spaces)
    tests: str | None = Field(
        None,
        description="comma-separated test presets, e.g. data_drift,data_quality (all five when absent)",
        json_schema_extra={"pattern": TESTS_PATTERN},
    )

    def presets(self) -> tuple[str, ...]:
        """The named test presets, in TEST_PRESETS order; an unknown name is a 400 listing the five."""
        if self.tests is None:
            return TEST_PRESETS
        names = {name.strip() for name in self.tests.split(",") if name.strip()}
        unknown = sorted(names - set(TEST_PRESETS))
        if unknown or not re.fullmatch(TESTS_PATTERN, self.tests):
            if unknown:
                problem = f"unknown tests {', '.join(map(repr, unknown))}"
            else:
                problem = "no test named" if not names else f"{self.tests!r} is not a list of names"
            raise BadRequest(
                f"tests: {problem}; give a comma-separated list of some of {TEST_NAMES}", error="Invalid request"
            )
        return tuple(name for name in TEST_PRESETS if name in names)


# --- answers ---------------------------------------------------------------------------------------


class MonitoringStatus(BaseModel):
    name: Literal["monitoring"]
    message: str


class ComparedSet(BaseModel):
    """One set compared: which version, whose predictions, how many rows stored and how many used."""

    set: str
    dataset_id: int
    model_version: int | None
    rows: int
    rows_used: int = Field(description="fewer than `rows` when the set was sampled (MLOPS_MONITORING_MAX_ROWS)")


class ComparedSets(BaseModel):
    reference: ComparedSet
    current: ComparedSet
    training: ComparedSet | None = Field(None, description="the verdict's training reference, when used")


class MonitoringAnswer(BaseModel):
    """report: Evidently's report; tests: its test suite; summary: the suite's summary (all_passed,
    counts); verdict: retraining_advised, the rule and the reasons. With the sets compared and notes."""

    message: str
    data: dict[str, Any]
    tests: list[str] | None = Field(None, description="tests and summary: the presets run")
    reference: VerdictReference | None = Field(None, description="verdict: the reference it compared against")
    datasets: ComparedSets
    notes: list[str]
