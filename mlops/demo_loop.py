"""`mlops demo --loop`: after the walkthrough, close the loop once and print each step's figures.

Load the fouled production set, evaluate the champion on it, ask monitoring for its verdict,
retrain (training plus the labelled production rows) through the gate, which promotes the
challenger or keeps the champion, then evaluate again and ask for the verdict again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import IO, Any

from mlops.demo import Services, report_run, score_of, send
from mlops.terminal import step

MANAGE = "/root/tracking/model_management"
RETRAINING_BODY = {"request_information": "retraining", "include_production_labels": True}


@dataclass
class LoopResult:
    """What the loop found, for its summary."""

    before: dict[str, Any] = field(default_factory=dict)  # the served model before
    scores_before: dict[str, str] = field(default_factory=dict)
    verdict_before: dict[str, Any] = field(default_factory=dict)
    retraining: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    scores_after: dict[str, str] = field(default_factory=dict)
    verdict_after: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def close_the_loop(services: Services, progress: IO[str], *, timeout: float, token: str = "") -> LoopResult:
    """Send the loop's requests in order and collect what its summary needs."""
    result = LoopResult()
    started = time.monotonic()

    def call(service: str, method: str, path: str, body: Any = None) -> Any:
        return send(service, method, getattr(services, service) + path, body, timeout=timeout, token=token)

    with step("Loading the fouled production set", progress):
        call("simulator", "POST", "/root/simulator", {"set_name": "production"})
    with step("Evaluating the served model on testing and production", progress):
        result.before = evaluate(call, result.scores_before)
    with step("Asking monitoring for its verdict", progress):
        result.verdict_before = verdict(call)
    title = "Retraining on training + labelled production, gated against the champion"
    with step(title, progress):
        body = RETRAINING_BODY | {"verdict": result.verdict_before}
        result.retraining = call("tracking", "POST", MANAGE, body)["data"]
    with step("Evaluating the champion again on testing and production", progress):
        result.after = evaluate(call, result.scores_after)
    with step("Asking monitoring for its verdict again", progress):
        result.verdict_after = verdict(call)
    result.seconds = time.monotonic() - started
    return result


def evaluate(call, scores: dict[str, str]) -> dict[str, Any]:
    """Evaluate the served model on testing and production (scores filled in); return the model."""
    for set_name in ("testing", "production"):
        scores[set_name] = score_of(call("ml", "POST", "/root/ml", {"dataset": set_name}))
    return call("ml", "GET", "/root/ml")["model"]


def verdict(call) -> dict[str, Any]:
    """Monitoring's verdict: whether retraining is advised, why (its message), and every check."""
    answer = call("monitoring", "POST", "/root/monitoring", {"metric": "verdict"})
    data = answer["data"]
    return {"retraining_advised": data["retraining_advised"], "message": answer["message"], "reasons": data["reasons"]}


def loop_summary(result: LoopResult) -> str:
    """The loop's figures, a line per step."""
    retraining = result.retraining
    challenger, champion = retraining.get("challenger") or {}, retraining.get("champion") or {}
    gate = ", ".join(
        f"{metric} {check['challenger']:.4f} vs {_score(check['champion'])} (margin {check['margin']:g}, "
        f"{'passed' if check['passed'] else 'failed'})"
        for metric, check in (retraining.get("gate") or {}).items()
    )
    rows = [
        ("served", _model(result.before)),
        ("scores", _scores(result.scores_before)),
        ("verdict", _verdict(result.verdict_before)),
        (
            "challenger",
            f"version {challenger.get('version')}: {challenger.get('model_name')} {challenger.get('hyperparameters')}"
            f" (run {challenger.get('run_id')})",
        ),
        ("champion", f"version {champion.get('version')}: {champion.get('model_name')}" if champion else "none yet"),
        ("held out", ", ".join(f"{name} ({s['rows']} rows)" for name, s in (retraining.get("held_out") or {}).items())),
        ("gate", gate),
        ("decision", f"{retraining.get('decision')}: champion is version {retraining.get('champion_now')}"),
        ("served", _model(result.after)),
        ("scores", _scores(result.scores_after)),
        ("verdict", _verdict(result.verdict_after)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"Loop done in {result.seconds:.1f} s"] + [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _model(model: dict[str, Any] | None) -> str:
    if not model:
        return "no model"
    registered = model.get("registered_version")
    where = f"registered version {registered}" if registered else "not registered"
    return f"{model.get('model_name')} (ML service version {model.get('version')}, {where})"


def _scores(scores: dict[str, str]) -> str:
    return ", ".join(f"{name} {score}" for name, score in scores.items())


def _verdict(verdict: dict[str, Any]) -> str:
    return str(verdict.get("message") or ("retraining advised" if verdict.get("retraining_advised") else "not advised"))


def run_loop(services: Services, *, timeout: float, token: str, out: IO[str], progress: IO[str]) -> int:
    """Close the loop once against the running services; print its summary."""
    return report_run(
        "mlops demo --loop", lambda: close_the_loop(services, progress, timeout=timeout, token=token), loop_summary, out
    )
