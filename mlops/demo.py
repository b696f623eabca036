"""`mlops demo`: the walkthrough end to end against running services, then a short summary.

The requests and their bodies are the walkthrough's (docs: shared spec walkthrough.md), in its
order: load training and testing, optimize, list experiments, pick the best run by
model_accuracy, deploy it, train, evaluate testing, load and evaluate production, and ask
monitoring for its test summary, then for its re-training verdict (beside the summary).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from mlops.kernel.config import SERVICE_NAMES, Settings
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST, SUMMARY_REQUEST, optimization_request
from mlops.terminal import StepLine, progress_bar, step, write

JOB_POLL_S = 0.25
BEST_BY = "model_accuracy"


class DemoFailed(Exception):
    """A step of the walkthrough could not be done; the message says which and why."""


@dataclass
class DemoResult:
    """What the walkthrough found, for the summary."""

    experiment_id: str = ""
    experiment_name: str = ""
    run_count: int | None = None
    best_run_id: str = ""
    best_model: str = ""
    best_metric: float | None = None
    deployed: str = ""
    scores: dict[str, str] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Services:
    """The base URL of each service."""

    simulator: str
    ml: str
    tracking: str
    monitoring: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Where the services are: a running stack's state file says, else the settings' ports."""
        from mlops.stack import client_url
        from mlops.stack.state import running_state, state_path

        state = running_state(state_path(settings))
        recorded = {m.name: m.url for m in state.members} if state else {}
        return cls(
            **{name: recorded.get(name) or client_url(settings, settings.port_of(name)) for name in SERVICE_NAMES}
        )


def run_walkthrough(
    settings: Settings,
    *,
    experiment_name: str | None,
    default_name: str = "wine_test_1",
    out: IO[str] = sys.stdout,
    progress: IO[str] = sys.stderr,
) -> int:
    """Run the walkthrough against the services the settings point at; print its summary.

    Without an experiment name, the first of default_name, then its next numbers (wine_test_2,
    ...), that is neither a live experiment nor a deleted one (MLflow keeps deleted names).
    """
    services = Services.from_settings(settings)
    return report_run(
        "mlops demo",
        lambda: walkthrough(
            services,
            experiment_name,
            progress,
            timeout=max(settings.request_timeout, 600),
            token=settings.api_token,
            default_name=default_name,
        ),
        summary,
        out,
    )


def report_run(command: str, run: Callable[[], Any], summarize: Callable[[Any], str], out: IO[str]) -> int:
    """Run a demo; print its summary (exit 0), or why it failed (1) or that it was interrupted (130)."""
    try:
        result = run()
    except DemoFailed as error:
        print(f"{command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    out.write(summarize(result) + "\n")
    return 0


def walkthrough(
    services: Services,
    experiment_name: str | None,
    progress: IO[str],
    *,
    timeout: float,
    token: str = "",
    default_name: str = "wine_test_1",
) -> DemoResult:
    """Send the walkthrough's requests in order and collect what the summary needs.

    `token` is MLOPS_API_TOKEN, sent as a bearer token when the services require one.
    """
    result = DemoResult(experiment_name=default_name if experiment_name is None else experiment_name)
    started = time.monotonic()

    def call(service: str, method: str, path: str, body: Any = None) -> Any:
        return send(service, method, getattr(services, service) + path, body, timeout=timeout, token=token)

    with step("Checking that the four services answer", progress):
        for name in SERVICE_NAMES:
            check_running(name, getattr(services, name))
    with step("Loading the training and testing sets", progress):
        for set_name in ("training", "testing"):
            call("simulator", "POST", "/root/simulator", {"set_name": set_name})
    names_taken: set[str] = set()
    if experiment_name is None:
        with step("Choosing a fresh experiment name", progress):
            names_taken = {e.get("name") for e in call("tracking", "GET", "/root/tracking/experiments")["data"]}
            result.experiment_name = next_free_name(default_name, names_taken)
        why = "" if result.experiment_name == default_name else f" ({default_name} is taken)"
        write(progress, f"       experiment {result.experiment_name}{why}\n")
    with step(
        f"Optimizing {', '.join(OPTIMIZATION_REQUEST['models'])} (grid search, 5-fold CV, logged to MLflow)", progress
    ) as shown:
        while True:
            try:
                body = optimization_request(result.experiment_name)
                data = optimize_in_background(call, body, shown)
                break
            except DemoFailed as error:
                # a deleted experiment keeps its name in MLflow: take the next one, unless it was asked for
                if experiment_name is not None or "Experiment deleted" not in str(error):
                    raise
                names_taken.add(result.experiment_name)
                result.experiment_name = next_free_name(result.experiment_name, names_taken)
                write(progress, f"       {body['experiment_name']} was deleted; using {result.experiment_name}\n")
        result.experiment_id = str(data["experiment_id"])
    with step("Listing the experiments", progress):
        experiments = call("tracking", "GET", "/root/tracking/experiments")["data"]
        ours = next((e for e in experiments if str(e.get("experiment_id")) == result.experiment_id), {})
        result.run_count = ours.get("run_count")
    with step(f"Finding the best run by {BEST_BY}", progress):
        best = call(
            "tracking",
            "POST",
            "/root/tracking/experiments",
            {
                "experiment_id": result.experiment_id,
                "request_information": "best_model",
                "filter": [BEST_BY],
            },
        )["data"]
        result.best_run_id, result.best_model = best["run_id"], best["model"]
        result.best_metric = best.get("metrics", {}).get(BEST_BY)
    with step(f"Deploying the best model ({result.best_model}) to the ML service", progress):
        answer = call(
            "tracking",
            "POST",
            "/root/tracking/model_management",
            {"request_information": "setting", "run_id": result.best_run_id},
        )
        result.deployed = answer.get("message", "")
    with step("Training the model on the training set", progress):
        result.scores["training"] = score_of(call("ml", "POST", "/root/ml", {"dataset": "training"}))
    with step("Evaluating on the testing set", progress):
        result.scores["testing"] = score_of(call("ml", "POST", "/root/ml", {"dataset": "testing"}))
    with step("Loading the (fouled) production set", progress):
        call("simulator", "POST", "/root/simulator", {"set_name": "production"})
    with step("Evaluating on the production set", progress):
        result.scores["production"] = score_of(call("ml", "POST", "/root/ml", {"dataset": "production"}))
    with step("Checking production against testing with Evidently (5 test suites)", progress):
        result.monitoring = call("monitoring", "POST", "/root/monitoring", SUMMARY_REQUEST)["data"]
    with step("Asking monitoring for its re-training verdict", progress):
        result.verdict = call("monitoring", "POST", "/root/monitoring", {"metric": "verdict"})
    result.seconds = time.monotonic() - started
    return result


def optimize_in_background(call, body: dict[str, Any], shown: StepLine) -> dict[str, Any]:
    """Send the optimization with "wait": false and follow its job, showing fits done of total;
    return the answer's data (what the blocking request answers)."""
    job = call("tracking", "POST", "/root/tracking/model_management", body | {"wait": False})["data"]
    while job["state"] not in ("done", "failed"):
        shown.detail = progress_bar(job["fits_done"], job["fits_total"])
        time.sleep(JOB_POLL_S)
        job = call("tracking", "GET", f"/root/tracking/jobs/{job['job_id']}")["data"]
    shown.detail = progress_bar(job["fits_done"], job["fits_total"])
    answer = job["answer"] or {}
    if job["state"] == "failed":
        raise DemoFailed(
            f"the optimization (job {job['job_id']}) failed with {job['status_code']}: "
            f"{answer.get('error', 'error')}: {answer.get('message', answer)}"
        )
    return answer["data"]


def next_free_name(name: str, taken: set[str]) -> str:
    """name if it is not taken, else the same with the next free number at its end (wine_test_2)."""
    match = re.fullmatch(r"(.*?)(\d+)", name)
    stem, number = (match.group(1), int(match.group(2))) if match else (name + "_", 1)
    while name in taken:
        number += 1
        name = f"{stem}{number}"
    return name


def check_running(name: str, url: str) -> None:
    """Fail with advice if the service does not answer /health."""
    from mlops.stack import health

    status, detail = health(url)
    if status is None:
        raise DemoFailed(
            f"the {name} service does not answer at {url} ({detail}). "
            "Start the services first with `mlops up` (or `make up`) in another terminal."
        )
    if status != 200:
        raise DemoFailed(f"the {name} service at {url} is unhealthy ({status}): {detail}")


def send(service: str, method: str, url: str, body: Any, *, timeout: float, token: str = "") -> Any:
    """One request; an error answer or an unreachable service is a DemoFailed naming both."""
    from mlops.kernel.clients import call_service
    from mlops.kernel.errors import ApiError

    try:
        reply = call_service(f"{service} service", method, url, json=body, timeout=timeout, token=token)
    except ApiError as error:
        raise DemoFailed(f"{method} {url} failed: {error.message}") from None
    if reply.status >= 400:
        problem = reply.body if isinstance(reply.body, dict) else {}
        raise DemoFailed(
            f"{method} {url} answered {reply.status}: "
            f"{problem.get('error', 'error')}: {problem.get('message', reply.body)}"
        )
    return reply.body


def score_of(answer: dict[str, Any]) -> str:
    """The score in "Score on testing set: 97.22%" ("97.22%"), or the whole message."""
    message = str(answer.get("message", ""))
    match = re.search(r"(-?\d+(?:\.\d+)?)\s*%", message)
    return f"{match.group(1)} %" if match else message


def summary(result: DemoResult) -> str:
    """A few lines a person reads at a glance: best model, scores, tests, advice."""
    monitoring = result.monitoring
    total, passed = monitoring.get("total_tests"), monitoring.get("success_tests")
    failed = monitoring.get("failed_tests")
    all_passed = monitoring.get("all_passed")
    metric = f", CV {BEST_BY} {result.best_metric:.3f}" if isinstance(result.best_metric, (int, float)) else ""
    runs = f", {result.run_count} runs" if result.run_count is not None else ""
    if all_passed:
        advice = "not needed: every test passed on production data"
    else:
        advice = f"advised: {total - passed if total is not None and passed is not None else 'some'} of {total} tests did not pass on production data"
    # statuses other than the passed / failed counted already (warnings, errors, skipped)
    by_status = ", ".join(
        f"{count} {status.lower()}"
        for status, count in (monitoring.get("by_status") or {}).items()
        if status.upper() not in ("SUCCESS", "FAIL") and count
    )
    rows = [
        ("experiment", f"{result.experiment_name} (id {result.experiment_id}){runs}"),
        ("best model", f"{result.best_model} (run {result.best_run_id}{metric})"),
        ("deployed", result.deployed),
        ("scores", ", ".join(f"{name} {score}" for name, score in result.scores.items())),
        ("monitoring", f"{total} tests: {passed} passed, {failed} failed" + (f" ({by_status})" if by_status else "")),
        ("re-training", advice),
    ]
    if result.verdict:
        rows.append(("verdict", verdict_line(result.verdict)))
    width = max(len(name) for name, _ in rows)
    lines = [f"Walkthrough done in {result.seconds:.1f} s"] + [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def verdict_line(answer: dict[str, Any]) -> str:
    """The verdict in one line: advised or not, and the checks that fired (its message says which)."""
    checks = answer["data"]["reasons"]
    fired = sum(reason["fired"] for reason in checks)
    reference = answer.get("reference", "testing")
    return f"{answer['message']} [{fired} of {len(checks)} checks fired, reference {reference}]"
