"""Monitoring as a real process, fed by the real simulator and ML service, spoken to over HTTP."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from mlops.kernel.db import FEATURES
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL
from mlops.monitoring.checks import TEST_PRESETS
from tests.support.monitoring import assert_self_contained, metric_results
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e

SCORE = re.compile(r"Score on (?:testing|production) set: (\d+\.\d{2})%")


def post(url: str, body: dict, timeout: float = 120) -> requests.Response:
    return requests.post(url, json=body, timeout=timeout)


def prepare(simulator, ml, *, production_size: int | None = None) -> dict[str, float]:
    """Load the three sets, deploy and train the walkthrough's forest, evaluate testing and
    production; return the ML service's accuracy (in %) on each."""
    for name in ("training", "testing", "production"):
        body = {"set_name": name} | ({"size": production_size} if name == "production" and production_size else {})
        assert post(simulator.url + "/root/simulator", body).status_code == 200
    model = RANDOM_FOREST_MODEL
    assert post(ml.url + "/root/ml/set_model", model).status_code == 200
    assert post(ml.url + "/root/ml", {"dataset": "training"}).status_code == 200
    scores = {}
    for name in ("testing", "production"):
        response = post(ml.url + "/root/ml", {"dataset": name})
        assert response.status_code == 200, response.text
        scores[name] = float(SCORE.fullmatch(response.json()["message"]).group(1))
    return scores


def test_walkthrough_monitoring_over_http(start_service, service_settings):
    simulator = start_service("simulator", service_settings)
    ml = start_service("ml", service_settings)
    monitoring = start_service("monitoring", service_settings)
    url = monitoring.url + "/root/monitoring"

    assert requests.get(url, timeout=5).json() == {"name": "monitoring", "message": "Monitoring"}
    health = requests.get(monitoring.url + "/health", timeout=5)
    assert health.status_code == 200 and health.json()["database"] == "ok"
    assert "post" in requests.get(monitoring.url + "/openapi.json", timeout=5).json()["paths"]["/root/monitoring"]

    early = post(url, {"metric": "report"})
    assert early.status_code == 409
    assert 'POST /root/simulator {"set_name": "testing"}' in early.json()["message"]

    scores = prepare(simulator, ml)

    report = post(url, {"metric": "report"})
    assert report.status_code == 200, report.text
    assert report.headers["X-Monitoring-Cache"] == "miss"
    (drift_table,) = metric_results(report.json()["data"], "DataDriftTable")
    assert set(FEATURES) <= set(drift_table["drift_by_columns"])
    # Evidently's accuracy on the stored predictions is the score the ML service answered
    (quality,) = metric_results(report.json()["data"], "ClassificationQualityMetric")
    assert round(quality["reference"]["accuracy"] * 100, 2) == scores["testing"]
    assert round(quality["current"]["accuracy"] * 100, 2) == scores["production"]
    repeat = post(url, {"metric": "report"})
    assert repeat.headers["X-Monitoring-Cache"] == "hit"
    assert repeat.json() == report.json()

    tests = post(url, {"metric": "tests"})
    assert tests.status_code == 200
    suite = tests.json()["data"]
    summary = post(url, {"metric": "summary", "tests": dict.fromkeys(TEST_PRESETS, True)})
    assert summary.status_code == 200
    assert summary.json()["data"] == suite["summary"]
    assert summary.json()["data"]["total_tests"] == len(suite["tests"])
    assert summary.json()["data"]["all_passed"] is False  # production is fouled: re-training is due
    fewer = post(url, {"metric": "summary", "tests": {"data_drift": True, "data_quality": False}})
    assert 0 < fewer.json()["data"]["total_tests"] < len(suite["tests"])

    page = requests.get(monitoring.url + "/root/monitoring/report.html", timeout=120)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert_self_contained(page.text)

    bad = post(url, {"metric": "summary", "tests": {"concept_drift": True}})
    assert bad.status_code == 400 and set(bad.json()) == {"error", "message"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_health_answers_while_reports_are_computed(start_service, service_settings):
    simulator = start_service("simulator", service_settings)
    ml = start_service("ml", service_settings)
    # Evidently's first import alone takes seconds; 20,000 production rows make the runs longer still.
    prepare(simulator, ml, production_size=20_000)
    monitoring = start_service("monitoring", service_settings)

    # The first two requests of a fresh process import Evidently in two threads at once.
    answers: dict[str, requests.Response] = {}

    def ask(metric: str) -> None:
        answers[metric] = post(monitoring.url + "/root/monitoring", {"metric": metric}, timeout=300)

    workers = [threading.Thread(target=ask, args=(metric,)) for metric in ("report", "tests")]
    for worker in workers:
        worker.start()
    answered_during_reports = []
    while any(worker.is_alive() for worker in workers):
        health = requests.get(monitoring.url + "/health", timeout=30)
        status = requests.get(monitoring.url + "/root/monitoring", timeout=30)
        if all(worker.is_alive() for worker in workers):
            answered_during_reports.append((health.status_code, status.status_code))
    for worker in workers:
        worker.join()
    for metric, answer in answers.items():
        assert answer.status_code == 200, (metric, answer.text)
        assert answer.json()["datasets"]["current"]["rows"] == 20_000
    assert answered_during_reports, "the reports finished before /health could be asked"
    assert set(answered_during_reports) == {(200, 200)}


# The browser's own traffic (updates, sign-in, spelling dictionaries...) kept down; what is left
# goes to a proxy port nobody listens on, so nothing leaves the machine either way.
CHROMIUM_QUIET = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-pings",
)


def render_in_chromium(url: str, work_dir: Path) -> tuple[str, list[str]]:
    """Open url in headless Chromium; return the rendered DOM and every URL outside url's origin
    that the page asked for (read from Chromium's NetLog, where the page's requests carry its origin)."""
    origin = "/".join(url.split("/")[:3])
    net_log = work_dir / "netlog.json"
    completed = subprocess.run(
        [
            shutil.which("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            *CHROMIUM_QUIET,
            f"--user-data-dir={work_dir / 'profile'}",
            f"--proxy-server=http://127.0.0.1:{free_port()}",
            f"--log-net-log={net_log}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    started = [e["params"] for e in log["events"] if e["type"] == start_job and "url" in e.get("params", {})]
    assert url in [request["url"] for request in started]  # the log did record the page's own load
    fetched = [
        request["url"]
        for request in started
        if request.get("initiator") == origin and not request["url"].startswith(origin + "/")
    ]
    return completed.stdout, fetched


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (make tools installs it)"
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_html_pages_render_in_chromium_without_fetching_anything(start_service, service_settings, tmp_path):
    simulator = start_service("simulator", service_settings)
    ml = start_service("ml", service_settings)
    prepare(simulator, ml)
    monitoring = start_service("monitoring", service_settings)

    pages = {
        "report.html": ["Dataset Drift", "Drifted Columns", "Model Quality"],
        "tests.html": ["Tests", "Share of Drifted Columns", "Fail"],
    }
    for page, texts in pages.items():
        work_dir = tmp_path / f"chromium-{page}"
        work_dir.mkdir()
        dom, fetched = render_in_chromium(f"{monitoring.url}/root/monitoring/{page}", work_dir)
        assert fetched == [], f"{page} fetched {fetched}"
        rendered = re.search(r'<div id="root_evidently_dashboard_\w+">(.*)', dom, re.S)
        assert rendered, dom[:2000]
        # Evidently's script ran (under the page's Content-Security-Policy) and drew the dashboard
        text = re.sub(r"<[^>]+>", " ", rendered.group(1))
        for expected in texts:
            assert expected in text, (page, expected)
