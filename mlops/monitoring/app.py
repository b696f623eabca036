"""The monitoring service's HTTP API (port 5003): Evidently checks of production against testing."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from mlops.kernel.config import Settings
from mlops.kernel.web.factory import create_service_app
from mlops.kernel.web.operations import HTML, Answer, ApiBlueprint
from mlops.kernel.web.state import current_settings, dataset_engine, service_resources, service_state
from mlops.monitoring.checks import summary_of
from mlops.monitoring.examples import MONITORING_EXAMPLES, REPORT_PAGE_EXAMPLES, STATUS_EXAMPLES, TESTS_PAGE_EXAMPLES
from mlops.monitoring.metrics import record_verdict
from mlops.monitoring.monitor import (
    CheckResult,
    Kind,
    MonitoringCache,
    VerdictReference,
    VerdictResult,
    run_check,
    run_verdict,
)
from mlops.monitoring.page import with_verdict_section
from mlops.monitoring.schemas import MonitoringAnswer, MonitoringRequest, MonitoringStatus, TestsQuery

CACHE_HEADER = "X-Monitoring-Cache"
REPORT_MESSAGE = "Report of the production set (current) against the testing set (reference)"
# The pages carry Evidently's script, font and data inline; the browser may fetch nothing else.
HTML_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)

bp = ApiBlueprint("monitoring", __name__)


@bp.operation(
    "/root/monitoring", "GET", responses={200: Answer("The component", MonitoringStatus)}, examples=STATUS_EXAMPLES
)
def status():
    """Name the component."""
    return {"name": "monitoring", "message": "Monitoring"}


@bp.operation(
    "/root/monitoring",
    "POST",
    body=MonitoringRequest,
    responses={
        200: Answer("The report, the test suite, its summary or the re-training verdict, as JSON", MonitoringAnswer),
        409: "The testing/production sets are not loaded or not evaluated by the ML service yet",
    },
    examples=MONITORING_EXAMPLES,
)
def monitor(body: MonitoringRequest):
    """Compute Evidently's report, test suite or test summary, or the re-training verdict, of the production set
    against the testing set."""
    if body.metric == "verdict":
        verdict, cached = _verdict(body.reference or "testing")
        answer = {
            "message": verdict.verdict.message(),
            "data": verdict.verdict.to_json(),
            "reference": verdict.key.reference,
            "datasets": verdict.datasets(),
            "notes": verdict.notes(),
        }
        return answer, 200, {CACHE_HEADER: "hit" if cached else "miss"}
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
    responses={
        200: Answer("The report as a self-contained HTML page", media_types=(HTML,)),
        409: "Data not loaded or not evaluated yet",
    },
    examples=REPORT_PAGE_EXAMPLES,
)
def report_page():
    """Show Evidently's report of the production set against the testing set as an HTML page."""
    result, cached = _run("report", ())
    return _page(result, cached)


@bp.operation(
    "/root/monitoring/tests.html",
    "GET",
    query=TestsQuery,
    responses={
        200: Answer("The test suite as a self-contained HTML page", media_types=(HTML,)),
        409: "Data not loaded or not evaluated yet",
    },
    examples=TESTS_PAGE_EXAMPLES,
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
    cache = service_resources(MonitoringCache)
    return run_check(dataset_engine(), cache, current_settings().monitoring_max_rows, kind, presets)


def _verdict(reference: VerdictReference) -> tuple[VerdictResult, bool]:
    cache = service_resources(MonitoringCache)
    result, cached = run_verdict(dataset_engine(), cache, current_settings().monitoring_max_rows, reference)
    record_verdict(service_state().metrics, result.verdict, reference)
    return result, cached


def _page(result: CheckResult, cached: bool) -> Response:
    verdict, _cached = _verdict("testing")
    response = Response(with_verdict_section(result.html(), verdict.verdict), mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_POLICY
    response.headers[CACHE_HEADER] = "hit" if cached else "miss"
    return response


def create_app(settings: Settings | None = None) -> Flask:
    """Build the monitoring service's app; Evidently is imported by the first check, not here."""
    return create_service_app(
        "monitoring", "Monitoring", settings or Settings.from_env(), [bp], resources=lambda state: MonitoringCache()
    )
