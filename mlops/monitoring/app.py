"""The monitoring service's HTTP API (port 5003): Evidently checks of production against testing."""

from __future__ import annotations

from typing import Any, Literal

from flask import Flask, Response, current_app
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mlops.kernel.config import Settings
from mlops.kernel.errors import BadRequest
from mlops.kernel.web import ApiBlueprint, create_service_app, current_settings, dataset_engine
from mlops.monitoring.checks import TEST_PRESETS, summary_of
from mlops.monitoring.monitor import CheckResult, Kind, MonitoringCache, run_check

CACHE_HEADER = "X-Monitoring-Cache"
REPORT_MESSAGE = "Report of the production set (current) against the testing set (reference)"
TEST_NAMES = ", ".join(f"'{name}'" for name in TEST_PRESETS)
# The pages carry Evidently's script, font and data inline; the browser may fetch nothing else.
HTML_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)

bp = ApiBlueprint("monitoring", __name__)


class TestFlags(BaseModel):
    """Which test presets to run: those set to true (a preset left out is not run)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    data_drift: bool = False
    data_quality: bool = False
    data_stability: bool = False
    no_target_performance: bool = False
    multi_class_classification: bool = False


class MonitoringRequest(BaseModel):
    """Which check to compute; `tests` picks the test presets of `tests` and `summary` (all five when absent)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    metric: Literal["report", "tests", "summary"] = Field(
        description="report: data drift, data quality, target drift and classification metrics; "
        "tests: the test suites with every test; summary: only the suites' pass/fail counts"
    )
    tests: TestFlags | None = Field(
        None, description="for tests and summary: the test presets to run (all five when absent)"
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
        if self.tests is None:
            return self
        if self.metric == "report":
            raise _invalid_tests("`tests` chooses test presets: give it with the metric 'tests' or 'summary'")
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

    tests: str | None = Field(
        None, description="comma-separated test presets, e.g. data_drift,data_quality (all five when absent)"
    )

    def presets(self) -> tuple[str, ...]:
        """The named test presets, in TEST_PRESETS order; an unknown name is a 400 listing the five."""
        if self.tests is None:
            return TEST_PRESETS
        names = {name.strip() for name in self.tests.split(",") if name.strip()}
        unknown = sorted(names - set(TEST_PRESETS))
        if unknown or not names:
            problem = f"unknown tests {', '.join(map(repr, unknown))}" if unknown else "no test named"
            raise BadRequest(
                f"tests: {problem}; give a comma-separated list of some of {TEST_NAMES}", error="Invalid request"
            )
        return tuple(name for name in TEST_PRESETS if name in names)


@bp.operation("/root/monitoring", "GET")
def status():
    """Name the component."""
    return {"name": "monitoring", "message": "Monitoring"}


@bp.operation(
    "/root/monitoring",
    "POST",
    body=MonitoringRequest,
    responses={
        200: "The report, the test suite or its summary, as JSON",
        409: "The testing/production sets are not loaded or not evaluated by the ML service yet",
    },
)
def monitor(body: MonitoringRequest):
    """Compute Evidently's report, test suite or test summary of the production set against the testing set."""
    kind: Kind = "report" if body.metric == "report" else "tests"
    presets = body.presets() if kind == "tests" else ()
    result, cached = _run(kind, presets)
    data = result.json
    answer: dict[str, Any]
    if body.metric == "report":
        answer = {"message": REPORT_MESSAGE, "data": data}
    else:
        summary = summary_of(data)
        answer = {
            "message": summary_message(summary),
            "data": summary if body.metric == "summary" else data,
            "tests": list(presets),
        }
    answer |= {
        "datasets": {"reference": result.reference_set.to_json(), "current": result.current_set.to_json()},
        "notes": result.notes(),
    }
    return answer, 200, {CACHE_HEADER: "hit" if cached else "miss"}


@bp.operation(
    "/root/monitoring/report.html",
    "GET",
    responses={200: "The report as a self-contained HTML page", 409: "Data not loaded or not evaluated yet"},
)
def report_page():
    """Show Evidently's report of the production set against the testing set as an HTML page."""
    result, cached = _run("report", ())
    return _page(result, cached)


@bp.operation(
    "/root/monitoring/tests.html",
    "GET",
    query=TestsQuery,
    responses={200: "The test suite as a self-contained HTML page", 409: "Data not loaded or not evaluated yet"},
)
def tests_page(query: TestsQuery):
    """Show Evidently's test suite (the presets in `tests`, all five when absent) as an HTML page."""
    result, cached = _run("tests", query.presets())
    return _page(result, cached)


def summary_message(summary: dict[str, Any]) -> str:
    """Say in one sentence what the summary means for the model."""
    total, passed = summary["total_tests"], summary["success_tests"]
    if summary["all_passed"]:
        return f"All {total} tests passed: production data behaves like testing data"
    return (
        f"{total - passed} of {total} tests did not pass: production data differs from testing data, "
        "consider re-training"
    )


def _run(kind: Kind, presets: tuple[str, ...]) -> tuple[CheckResult, bool]:
    cache: MonitoringCache = current_app.extensions["monitoring"]
    return run_check(dataset_engine(), cache, current_settings().monitoring_max_rows, kind, presets)


def _page(result: CheckResult, cached: bool) -> Response:
    response = Response(result.html(), mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_POLICY
    response.headers[CACHE_HEADER] = "hit" if cached else "miss"
    return response


def create_app(settings: Settings | None = None) -> Flask:
    """Build the monitoring service's app; Evidently is imported by the first check, not here."""
    app = create_service_app("monitoring", "Monitoring", settings or Settings.from_env(), [bp])
    app.extensions["monitoring"] = MonitoringCache()
    return app
