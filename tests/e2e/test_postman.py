"""The Postman collection (postman/) run by newman against a live stack, on SQLite and PostgreSQL;
and the collection checked against the walkthrough and the settings without a stack."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from mlops.kernel.config import SERVICE_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "postman" / "MLOps_Microservices.postman_collection.json"
ENVIRONMENT = ROOT / "postman" / "MLOps_Microservices.postman_environment.json"
NEWMAN = ROOT / "node_modules" / ".bin" / "newman"

# Every request of the walkthrough, in its order: base URL variable, method, path, body.
WALKTHROUGH = [
    ("simulator_url", "POST", "/root/simulator", {"set_name": "training"}),
    ("simulator_url", "POST", "/root/simulator", {"set_name": "testing"}),
    ("tracking_url", "POST", "/root/tracking/model_management", {"request_information": "optimization"}),
    ("tracking_url", "GET", "/root/tracking/experiments", None),
    ("tracking_url", "GET", "/root/tracking/runs", None),
    ("tracking_url", "POST", "/root/tracking/experiments", {"request_information": "general"}),
    (
        "tracking_url",
        "POST",
        "/root/tracking/experiments",
        {"request_information": "best_model", "filter": ["model_accuracy"]},
    ),
    ("tracking_url", "POST", "/root/tracking/experiments", {"request_information": "statistics", "filter": ["all"]}),
    ("tracking_url", "POST", "/root/tracking/runs", {"request_information": "parameters", "type": "data"}),
    ("tracking_url", "POST", "/root/tracking/runs", {"request_information": "parameters", "type": "grid_search"}),
    ("tracking_url", "POST", "/root/tracking/runs", {"request_information": "parameters", "type": "model"}),
    ("tracking_url", "POST", "/root/tracking/runs", {"request_information": "metrics", "type": "system"}),
    ("tracking_url", "POST", "/root/tracking/runs", {"request_information": "metrics", "type": "model"}),
    ("tracking_url", "POST", "/root/tracking/model_management", {"request_information": "setting"}),
    ("ml_url", "POST", "/root/ml/set_model", {"model_name": "RandomForest"}),
    ("ml_url", "POST", "/root/ml", {"dataset": "training"}),
    ("ml_url", "POST", "/root/ml", {"dataset": "testing"}),
    ("simulator_url", "POST", "/root/simulator", {"set_name": "production"}),
    ("ml_url", "POST", "/root/ml", {"dataset": "production"}),
    ("monitoring_url", "POST", "/root/monitoring", {"metric": "report"}),
    ("monitoring_url", "POST", "/root/monitoring", {"metric": "tests"}),
    ("monitoring_url", "POST", "/root/monitoring", {"metric": "summary"}),
    ("monitoring_url", "POST", "/root/monitoring", {"metric": "verdict"}),  # beside the summary (issue 11)
    # The experiment, then one of its runs (which went with it: the delete answers 200).
    ("tracking_url", "DELETE", "/root/tracking/experiments", None),
    ("tracking_url", "DELETE", "/root/tracking/runs", None),
]


def collection_requests() -> list[dict]:
    """The collection's requests in run order (folders flattened)."""

    def walk(items: list[dict]):
        for item in items:
            if "item" in item:
                yield from walk(item["item"])
            else:
                yield item["request"]

    return list(walk(json.loads(COLLECTION.read_text())["item"]))


def request_key(request: dict) -> tuple[str, str, str, dict | None]:
    """(base URL variable, method, path, body with {{variables}} left as text) of a request."""
    raw = request["url"]["raw"].split("?", 1)[0]
    base, path = re.fullmatch(r"\{\{(\w+)\}\}(/.*)", raw).groups()
    body = json.loads(request["body"]["raw"]) if "body" in request else None
    return base, request["method"], path, body


def test_collection_has_every_walkthrough_request_in_order():
    requests = [request_key(r) for r in collection_requests()]
    position = 0
    for base, method, path, fields in WALKTHROUGH:
        while position < len(requests):
            r_base, r_method, r_path, r_body = requests[position]
            position += 1
            if (r_base, r_method, r_path) == (base, method, path) and (
                fields is None or all(r_body.get(k) == v for k, v in fields.items())
            ):
                break
        else:
            pytest.fail(f"the collection lacks {method} {path} {fields or ''} or has it out of the walkthrough's order")


def test_collection_and_environment_use_the_four_base_urls_with_the_default_ports():
    defaults = Settings()
    expected = {f"{s}_url": f"http://127.0.0.1:{defaults.port_of(s)}" for s in SERVICE_NAMES}
    environment = {v["key"]: v["value"] for v in json.loads(ENVIRONMENT.read_text())["values"]}
    assert {k: environment[k] for k in expected} == expected
    collection = json.loads(COLLECTION.read_text())
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    fallbacks = {v["key"]: v["value"] for v in collection["variable"]}
    assert {k: fallbacks[k] for k in expected} == expected
    assert {request_key(r)[0] for r in collection_requests()} == set(expected)


def newman_command(stack, report: Path, iterations: int) -> list[str]:
    base_urls = [arg for service, url in stack.urls.items() for arg in ("--env-var", f"{service}_url={url}")]
    return [
        str(NEWMAN), "run", str(COLLECTION), "-e", str(ENVIRONMENT), *base_urls,
        "--iteration-count", str(iterations),
        "--timeout-request", "600000",
        "--color", "off", "--disable-unicode",
        "--reporters", "cli,json", "--reporter-json-export", str(report),
    ]  # fmt: skip  # each flag beside its value, as on a command line


@pytest.mark.e2e
@pytest.mark.slow
def test_postman_collection_passes_with_newman(live_stack, tmp_path):
    if not NEWMAN.exists():
        pytest.fail("newman is not installed: run `make node_modules/.installed` (npm ci) first")
    # Twice on SQLite: a rerun on a store that keeps the first run's (deleted) experiment must pass too.
    iterations = 2 if live_stack.backend == "sqlite" else 1
    report = tmp_path / "newman.json"
    result = subprocess.run(
        newman_command(live_stack, report, iterations), capture_output=True, text=True, timeout=1200, cwd=ROOT
    )
    assert result.returncode == 0, (
        f"newman failed on {live_stack.backend}:\n{result.stdout[-20000:]}\n{result.stderr}\n{live_stack.logs()}"
    )
    run = json.loads(report.read_text())["run"]
    assert run["stats"]["requests"] == {"total": len(collection_requests()) * iterations, "pending": 0, "failed": 0}
    assert run["stats"]["testScripts"]["failed"] == run["stats"]["assertions"]["failed"] == 0
    # every request checked its status and more, not only the collection-wide JSON check
    unchecked = [e["item"]["name"] for e in run["executions"] if len(e.get("assertions", [])) < 3]
    assert not unchecked, f"requests with fewer than 3 assertions: {unchecked}"
