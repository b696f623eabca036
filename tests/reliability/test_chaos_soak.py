"""R6 chaos soak: the stack as `mlops up --detach` runs it, on a PostgreSQL cluster of the test's
own, under mixed clients (predictions, tracking reads, reloads with evaluation, monitoring
summaries) while a random service is killed with kill -9 every KILL_EVERY seconds and the
database is stopped for DOWN_SECONDS, OUTAGES times, between two kills.

Goals (issue #16): no 5xx answer other than 503; nothing lost (sets whole, model, runs); every
killed service answers again within 5 s without a command; prediction answers through the
database outages (>= 99.9 %); the tracking log grows by less than 100 KB per outage.
Short form in `make test` (about a minute); MLOPS_RELIABILITY_LONG=1 runs the 10-minute form.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import requests

from mlops.kernel.walkthrough import WINE_SAMPLE
from tests.support.clients import Clients, Probe, describe
from tests.support.processes import free_port
from tests.support.reliability import ALL_SERVICES, pick
from tests.support.stack import bring_to_walkthrough_state, call, stored_state, tracking_runs

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

MLOPS = [sys.executable, "-m", "mlops.cli"]
DURATION = pick(50.0, 600.0)
KILL_EVERY = pick(12.0, 30.0)
OUTAGES = pick(1, 2)
DOWN_SECONDS = pick(6.0, 10.0)
CLIENTS = 8
# Seconds from a kill -9 until the service answers again: the goal is 5 s, which the long form
# checks; the short form, run by `make test` on machines of any load, allows more.
BACK_WITHIN = pick(15.0, 5.0)
PREDICT_AVAILABILITY = 0.999
LOG_GROWTH_PER_OUTAGE = 100_000  # bytes of tracking.log


def lanes_for(urls: dict[str, str]) -> list[list[Probe]]:
    """Eight clients: three predict, two read tracking, one reloads and evaluates, one asks for
    monitoring summaries, one reads the services' status."""
    predict = [Probe("ml predict", "POST", urls["ml"] + "/root/ml/predict", [WINE_SAMPLE], needs_db=False)]
    tracking = [
        Probe("tracking experiments", "GET", urls["tracking"] + "/root/tracking/experiments"),
        Probe("tracking health", "GET", urls["tracking"] + "/health"),
    ]
    reload_and_evaluate = [
        Probe("simulator reload production", "POST", urls["simulator"] + "/root/simulator", {"set_name": "production"}),
        Probe("ml evaluate production", "POST", urls["ml"] + "/root/ml", {"dataset": "production"}),
    ]
    summaries = [Probe("monitoring summary", "POST", urls["monitoring"] + "/root/monitoring", {"metric": "summary"})]
    status = [
        Probe("simulator status", "GET", urls["simulator"] + "/root/simulator", needs_db=False),
        Probe("ml status", "GET", urls["ml"] + "/root/ml"),
    ]
    return [predict, predict, predict, tracking, tracking, reload_and_evaluate, summaries, status][:CLIENTS]


def schedule(duration: float, kill_every: float, outages: int, down: float) -> tuple[list[float], list[float]]:
    """When to kill (every kill_every seconds) and when to stop the database (between two kills,
    spread over the run, ending well before the next kill)."""
    kills = [kill_every * k for k in range(1, int(duration // kill_every) + 1) if kill_every * k < duration - 3]
    intervals = len(kills)
    starts = [kill_every * round(intervals * (i + 1) / (outages + 1)) + 0.35 * kill_every for i in range(outages)]
    assert all(0.35 * kill_every + down < kill_every for _ in starts), "an outage must end before the next kill"
    return kills, starts


def test_the_stack_stays_up_through_kills_and_database_outages(throwaway_postgres, tmp_path, record_figures):
    dataset_url = throwaway_postgres.create_database("dataset")
    mlflow_url = throwaway_postgres.create_database("mlflow")
    data_dir = tmp_path / "var"
    ports = {service: free_port() for service in ALL_SERVICES}
    flags = [arg for service, port in ports.items() for arg in (f"--{service}-port", str(port))]
    flags += ["--data-dir", str(data_dir)]
    env = {**os.environ, "MLOPS_REQUEST_TIMEOUT": "10"}
    up = subprocess.run(
        [
            *MLOPS,
            "up",
            "--detach",
            *flags,
            "--dataset-db-url",
            dataset_url,
            "--mlflow-tracking-uri",
            mlflow_url,
            "--timeout",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    try:
        assert up.returncode == 0, up.stderr
        run_soak(data_dir, ports, flags, dataset_url, throwaway_postgres, record_figures)
    finally:
        down = subprocess.run([*MLOPS, "down", *flags], capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr


def run_soak(data_dir, ports, flags, dataset_url, postgres, record_figures) -> None:
    urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    service_of = {f"127.0.0.1:{port}": service for service, port in ports.items()}
    stack = {service: SimpleNamespace(url=url) for service, url in urls.items()}
    made = bring_to_walkthrough_state(stack, optimize=True)
    for _ in range(20):  # every worker of the ML service has loaded the model
        call("POST", urls["ml"] + "/root/ml/predict", json=[WINE_SAMPLE])
    before = stored_state(dataset_url)
    runs_before = tracking_runs(stack)
    tracking_log = data_dir / "logs" / "tracking.log"
    rng = random.Random(16)
    kills_at, outages_at = schedule(DURATION, KILL_EVERY, OUTAGES, DOWN_SECONDS)
    events = sorted([(t, "kill") for t in kills_at] + [(t, "outage") for t in outages_at])
    kills, outages = [], []
    load_before = os.getloadavg()

    with Clients(lanes_for(urls), timeout=30, pause=0.05) as clients:
        started = time.monotonic()
        for at, kind in events:
            time.sleep(max(0.0, started + at - time.monotonic()))
            if kind == "kill":
                kills.append(kill_and_time(data_dir, urls, rng.choice(ALL_SERVICES)))
            else:
                outages.append(stop_database(postgres, tracking_log, urls))
        time.sleep(max(0.0, started + DURATION - time.monotonic()))
        answers = clients.stop()
    load_after = os.getloadavg()

    by_status = Counter(str(a.status) if a.status is not None else "no answer" for a in answers)
    # prediction during the database outages (no kill happens then)
    during = [
        a for a in answers if a.probe.name == "ml predict" and any(o["down"] <= a.started < o["up"] for o in outages)
    ]
    predicted = sum(a.status == 200 for a in during)
    state = json.loads((data_dir / "mlops-stack.json").read_text())
    restarts = {m["name"]: m["restarts"] for m in state["members"]}
    after = stored_state(dataset_url)
    goals = check_goals(answers, kills, outages, during, restarts, before, after, made, runs_before, urls, stack)
    status = subprocess.run([*MLOPS, "status", *flags], capture_output=True, text=True, timeout=60)
    goals["mlops status says the stack is up"] = [] if status.returncode == 0 else [status.stdout[-2000:]]
    record_figures(
        "R6 chaos soak",
        duration_s=DURATION,
        clients=CLIENTS,
        kills=len(kills),
        outages=len(outages),
        down_seconds=DOWN_SECONDS,
        requests_sent=len(answers),
        answers_by_status=dict(sorted(by_status.items())),
        no_answer_by_service=dict(Counter(service_of[a.probe.url.split("/")[2]] for a in answers if a.status is None)),
        back_after_kill_s={f"{k['service']}@{k['at'] - started:.0f}s": k["back_s"] for k in kills},
        slowest_back_s=max((k["back_s"] or float("inf") for k in kills), default=None),
        ml_predicting_again_after_kill_s=[predicting_again(answers, k) for k in kills if k["service"] == "ml"],
        predict_while_db_down=f"{predicted}/{len(during)}",
        tracking_log_growth_per_outage_bytes=[o["log_growth_bytes"] for o in outages],
        waited_for_the_stack_before_outage_s=[o["waited_for_the_stack_s"] for o in outages],
        restarts=restarts,
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in load_after],
        goals={goal: "met" if not failures else "MISSED" for goal, failures in goals.items()},
    )
    # every goal is checked, then all are asserted together: a missed one does not hide the others
    missed = {goal: failures[:10] for goal, failures in goals.items() if failures}
    assert not missed, "goals missed:\n" + "\n".join(f"- {goal}: {failures}" for goal, failures in missed.items())


def check_goals(answers, kills, outages, during, restarts, before, after, made, runs_before, urls, stack) -> dict:
    """Each goal of issue #16 with what contradicts it (an empty list: met)."""
    goals: dict[str, list] = {}
    goals["no 5xx answer other than 503"] = [
        describe(a) for a in answers if a.status is not None and a.status >= 500 and a.status != 503
    ]
    goals["no 4xx answer other than 409"] = [
        describe(a) for a in answers if a.status is not None and 400 <= a.status < 500 and a.status != 409
    ]
    goals[f"every killed service back within {BACK_WITHIN:g} s"] = [
        k for k in kills if k["back_s"] is None or k["back_s"] > BACK_WITHIN
    ]
    goals[f"prediction through the outages >= {PREDICT_AVAILABILITY:.1%}"] = (
        [describe(a) for a in during if a.status != 200]
        if during and sum(a.status == 200 for a in during) / len(during) < PREDICT_AVAILABILITY
        else ([] if during else ["no prediction was sent while the database was down"])
    )
    surely_down = [a for a in during if any(o["down"] + 1.5 < a.started and a.ended < o["starting"] for o in outages)]
    goals["predictions while the database is down say degraded"] = (
        [describe(a) for a in surely_down if "degraded" not in a.body] if surely_down else ["none sent"]
    )
    goals[f"tracking.log grows < {LOG_GROWTH_PER_OUTAGE} bytes per outage"] = [
        o["log_growth_bytes"] for o in outages if o["log_growth_bytes"] >= LOG_GROWTH_PER_OUTAGE
    ]
    # nothing lost: the sets whole, the same model, the same runs; the supervisor counted the kills
    lost = []
    if after["model"] != before["model"]:
        lost.append(f"deployed model {before['model']} -> {after['model']}")
    lost += [
        f"{name} set {before['sets'].get(name)} -> {after['sets'].get(name)}"
        for name in ("training", "testing")
        if after["sets"].get(name) != before["sets"].get(name)
    ]
    lost += [
        f"{name} set not whole: {counts}"
        for name, counts in after["sets"].items()
        if not (counts[1] == counts[0] and counts[2] in (0, counts[0]))  # samples, predictions
    ]
    served = call("GET", urls["ml"] + "/root/ml")["model"]
    if served != made["model"]:
        lost.append(f"the ML service serves {served}, not {made['model']}")
    if tracking_runs(stack) != runs_before:
        lost.append("the MLflow runs changed")
    goals["nothing lost (sets, model, runs)"] = lost
    expected = dict(Counter(k["service"] for k in kills)) | {
        s: 0 for s in ALL_SERVICES if s not in {k["service"] for k in kills}
    }
    goals["one restart counted per kill"] = [] if restarts == expected else [f"{restarts} != {expected}"]
    return goals


def predicting_again(answers, kill: dict) -> float | None:
    """Seconds from a kill of the ML service to the clients' first prediction answered after it."""
    answered = [a.ended for a in answers if a.probe.name == "ml predict" and a.status == 200 and a.started > kill["at"]]
    return round(min(answered) - kill["at"], 2) if answered else None


def kill_and_time(data_dir, urls: dict[str, str], service: str) -> dict:
    """kill -9 the service's process group; how long until it answers /health again."""
    state = json.loads((data_dir / "mlops-stack.json").read_text())
    pid = next(m["pid"] for m in state["members"] if m["name"] == service)
    killed = time.monotonic()
    os.killpg(pid, signal.SIGKILL)
    back = None
    while time.monotonic() - killed < 60:
        try:
            if requests.get(urls[service] + "/health", timeout=5).status_code == 200:
                back = round(time.monotonic() - killed, 2)
                break
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return {"service": service, "at": killed, "back_s": back}


def stop_database(postgres, tracking_log, urls: dict[str, str]) -> dict:
    """Stop the cluster for DOWN_SECONDS once every service is up with its model loaded (a kill
    may have restarted one just before: on a busy machine a restart can take tens of seconds);
    wait until the services see it back."""
    waited = time.monotonic()
    deadline = waited + 120
    while time.monotonic() < deadline:
        try:
            healthy = all(requests.get(url + "/health", timeout=5).status_code == 200 for url in urls.values())
            warm = healthy and all(
                requests.post(urls["ml"] + "/root/ml/predict", json=[WINE_SAMPLE], timeout=10).status_code == 200
                for _ in range(10)
            )
            if warm:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    size = tracking_log.stat().st_size
    outage = {"stopping": time.monotonic(), "waited_for_the_stack_s": round(time.monotonic() - waited, 2)}
    postgres.stop("fast")
    outage["down"] = time.monotonic()
    time.sleep(DOWN_SECONDS)
    outage["starting"] = time.monotonic()  # it may answer before pg_ctl start returns
    postgres.start()
    outage["up"] = time.monotonic()
    deadline = outage["up"] + 30
    while time.monotonic() < deadline:  # back once every service's /health says so
        try:
            if all(requests.get(url + "/health", timeout=5).status_code == 200 for url in urls.values()):
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    outage["recovered"] = time.monotonic()
    outage["log_growth_bytes"] = tracking_log.stat().st_size - size
    return outage
