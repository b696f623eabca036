"""R3 database outage: a PostgreSQL cluster of the test's own (dataset DB and MLflow's store) is
stopped for ~10 s while clients keep calling every service. While it is down the answers that
need it are 503 JSON saying so, each within the request timeout, and prediction goes on with the
model it has loaded, saying it is degraded; once it is back everything answers again by itself
(no service restart, same processes), nothing stored is lost or half-written, and each outage is
logged in a few lines, not a traceback per request."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mlops.kernel.walkthrough import WINE_SAMPLE
from mlops.ml.pipeline_cache import VERSION_CHECK_SECONDS
from tests.support.clients import Clients, Probe, describe, is_json_error
from tests.support.processes import settings_on_free_ports
from tests.support.reliability import pick, process_tree
from tests.support.stack import (
    bring_to_walkthrough_state,
    call,
    start_stack,
    stored_state,
    tracking_runs,
)

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

DOWN_SECONDS = 10
OUTAGES = pick(1, 3)
CLIENTS = pick(4, 8)
REQUEST_TIMEOUT = 10.0  # the services' MLOPS_REQUEST_TIMEOUT: no answer may take longer
RECOVERY_LIMIT = 30.0  # everything must answer again within this after the database is back


def probes_for(stack: dict) -> list[Probe]:
    """Every kind of request the clients send, for the services that are running."""
    probes = []
    if "simulator" in stack:
        url = stack["simulator"].url
        probes += [
            Probe("simulator status", "GET", url + "/root/simulator", needs_db=False),
            Probe("simulator health", "GET", url + "/health"),
            Probe("simulator load training", "POST", url + "/root/simulator", {"set_name": "training"}),
        ]
    if "ml" in stack:
        url = stack["ml"].url
        probes += [
            Probe("ml status", "GET", url + "/root/ml"),
            Probe("ml predict", "POST", url + "/root/ml/predict", [WINE_SAMPLE], needs_db=False),
            Probe("ml evaluate testing", "POST", url + "/root/ml", {"dataset": "testing"}),
        ]
    if "monitoring" in stack and "ml" in stack:
        url = stack["monitoring"].url
        probes += [Probe("monitoring summary", "POST", url + "/root/monitoring", {"metric": "summary"})]
    if "tracking" in stack:
        url = stack["tracking"].url
        probes += [
            Probe("tracking experiments", "GET", url + "/root/tracking/experiments"),
            Probe("tracking health", "GET", url + "/health"),
        ]
    return probes


def test_services_answer_503_while_postgres_is_down_and_recover_by_themselves(
    throwaway_postgres, start_service, tmp_path, record_figures
):
    dataset_url = throwaway_postgres.create_database("dataset")
    mlflow_url = throwaway_postgres.create_database("mlflow")
    settings = settings_on_free_ports(
        data_dir=tmp_path,
        dataset_db_url=dataset_url,
        mlflow_tracking_uri=mlflow_url,
        request_timeout=REQUEST_TIMEOUT,
    )
    stack = start_stack(start_service, settings)
    made = bring_to_walkthrough_state(stack, optimize=True)
    for _ in range(10):  # every worker of the ML service has loaded the model
        call("POST", stack["ml"].url + "/root/ml/predict", json=[WINE_SAMPLE])
    log_sizes = {name: p.log_path.stat().st_size for name, p in stack.items()}
    before = stored_state(dataset_url)
    runs_before = tracking_runs(stack)
    processes_before = {name: sorted(process_tree(p.process.pid)) for name, p in stack.items()}
    probes = probes_for(stack)

    outages = []
    # One client writes (reloads training, stores testing's predictions); the others read.
    writes = [p for p in probes if p.method == "POST" and p.name.split()[1] in ("load", "evaluate")]
    reads = [p for p in probes if p not in writes]
    lanes = [writes] + [reads] * (CLIENTS - 1)
    with Clients(lanes, timeout=REQUEST_TIMEOUT + 20, pause=0.02) as clients:
        time.sleep(2)
        for _ in range(OUTAGES):
            outage = {"stopping": time.monotonic()}
            throwaway_postgres.stop("fast")
            outage["down"] = time.monotonic()
            time.sleep(DOWN_SECONDS)
            outage["starting"] = time.monotonic()  # it may answer before start() returns
            throwaway_postgres.start()
            outage["up"] = time.monotonic()
            outage["recovered"] = wait_until_every_probe_answers(clients, probes, outage["up"])
            outages.append(outage)
            time.sleep(2)
        answers = clients.stop()

    # Before the first outage everything answered.
    first = outages[0]["stopping"]
    early_failures = [describe(a) for a in answers if a.ended < first and not a.ok]
    assert not early_failures, early_failures

    # During each outage: an answer or a 503 JSON saying the database is unavailable — never a
    # 500, a dropped connection or a hang past the request timeout.
    wrong = [describe(a) for a in answers if not a.ok and not is_json_error(a, 503)]
    assert not wrong, f"{len(wrong)} answers were neither 2xx nor 503 JSON: {wrong[:10]}"
    slow = [describe(a) for a in answers if a.seconds > REQUEST_TIMEOUT]
    assert not slow, f"answers slower than the request timeout: {slow[:10]}"
    unclear = [describe(a) for a in answers if a.status == 503 and "unavailable" not in str(a.body).lower()]
    assert not unclear, unclear[:5]
    for outage in outages:
        seen = {a.probe.name for a in answers if outage["down"] <= a.started < outage["up"] and a.status == 503}
        not_seen = [p.name for p in probes if p.needs_db and p.name not in seen]
        assert not not_seen, f"these requests did not notice the database was down: {not_seen}"

    # Prediction went on with the model it had, and said so while the database was down.
    predicts = [a for a in answers if a.probe.name == "ml predict"]
    assert all(a.status == 200 for a in predicts), [describe(a) for a in predicts if a.status != 200][:5]
    for outage in outages:
        during = [a for a in predicts if outage["down"] + 0.5 <= a.started < outage["starting"]]
        undegraded = [
            f"{describe(a)} (sent {a.started - outage['down']:.2f}s after the database stopped)"
            for a in during
            if "degraded" not in a.body
        ]
        assert during, "no prediction was sent while the database was down"
        assert not undegraded, f"{len(undegraded)} of {len(during)} did not say degraded: {undegraded[:5]}"
    assert not any("degraded" in a.body for a in predicts if a.started > max(o["recovered"] for o in outages) + 2)

    # The outage is in each log a few times, never as a traceback per failed request.
    for name, process in stack.items():
        text = process.log_path.read_bytes()[log_sizes[name] :].decode(errors="replace")
        assert text.count("Traceback") == 0, f"{name} logged tracebacks:\n{text[text.find('Traceback') - 300 :][:3000]}"
        outage_lines = [line for line in text.splitlines() if "unavailable" in line and ".access" not in line]
        assert len(outage_lines) <= 10 * len(outages) * (1 + DOWN_SECONDS // 10), f"{name}: {outage_lines[:20]}"

    # After it is back, each kind of request answers again and keeps answering.
    for outage in outages:
        assert outage["recovered"] is not None, "not every request answered again within the limit"
    last_recovery = max(o["recovered"] for o in outages)
    late = [describe(a) for a in answers if a.started > last_recovery and not a.ok]
    assert not late, f"failures after recovery: {late[:10]}"

    # The same processes (no restart, no worker died), and nothing lost or half-written.
    assert {name: sorted(process_tree(p.process.pid)) for name, p in stack.items()} == processes_before
    after = stored_state(dataset_url)
    for name in ("testing", "production"):  # the clients only reload training
        assert after["sets"][name] == before["sets"][name], f"the {name} set changed"
    assert after["model"] == before["model"]
    for name, (n_samples, n_rows, n_predictions) in after["sets"].items():
        assert n_rows == n_samples, f"{name} set half-written: {after['sets'][name]}"
        assert n_predictions in (0, n_samples), f"{name} predictions half-written: {after['sets'][name]}"
    assert after["sets"]["testing"][2] == 36, "the testing predictions were lost"
    if "ml" in stack:
        assert call("GET", stack["ml"].url + "/root/ml")["model"] == made["model"]
    assert tracking_runs(stack) == runs_before

    sent = len(answers)
    record_figures(
        "R3 database outage",
        services=sorted(stack),
        clients=CLIENTS,
        outages=len(outages),
        down_seconds=DOWN_SECONDS,
        requests_sent=sent,
        answered_2xx=sum(a.ok for a in answers),
        answered_503=sum(a.status == 503 for a in answers),
        predict_availability_while_down=f"{sum(a.status == 200 for a in answers if a.probe.name == 'ml predict' and any(o['down'] <= a.started < o['up'] for o in outages))}/{sum(1 for a in answers if a.probe.name == 'ml predict' and any(o['down'] <= a.started < o['up'] for o in outages))}",
        log_growth_bytes={name: p.log_path.stat().st_size - log_sizes[name] for name, p in stack.items()},
        failures=len(wrong),
        recoveries=f"{len(outages)}/{len(outages)}",
        time_to_recover_s=round(max(o["recovered"] - o["up"] for o in outages), 2),
        slowest_answer_s=round(max(a.seconds for a in answers), 2),
        slowest_answer_while_down_s=round(
            max((a.seconds for o in outages for a in answers if o["stopping"] <= a.started < o["up"]), default=0), 2
        ),
    )


def wait_until_every_probe_answers(clients: Clients, probes: list[Probe], since: float) -> float | None:
    """The moment by which every kind of request sent after `since` has answered 2xx, or None."""
    deadline = since + RECOVERY_LIMIT
    while time.monotonic() < deadline:
        first_ok: dict[str, float] = {}
        for answer in clients.since(since):
            if answer.ok:
                first_ok.setdefault(answer.probe.name, answer.ended)
        if all(p.name in first_ok for p in probes):
            return max(first_ok.values())
        time.sleep(0.2)
    return None


def test_prediction_serves_its_loaded_model_while_the_database_is_down_and_a_new_one_once_back(
    throwaway_postgres, start_service, tmp_path
):
    settings = settings_on_free_ports(data_dir=tmp_path, dataset_db_url=throwaway_postgres.create_database("dataset"))
    stack = start_stack(start_service, settings, ["simulator", "ml"])
    ml = stack["ml"].url
    call("POST", stack["simulator"].url + "/root/simulator", json={"set_name": "training"})
    call("POST", ml + "/root/ml/set_model", json={"model_name": "RandomForest", "hyperparameters": {"n_estimators": 5}})
    call("POST", ml + "/root/ml", json={"dataset": "training"})
    before = call("POST", ml + "/root/ml/predict", json=[WINE_SAMPLE])
    assert "degraded" not in before

    throwaway_postgres.stop("fast")
    try:
        time.sleep(VERSION_CHECK_SECONDS)  # a worker asks the database at least this often: it knows by now
        during = [call("POST", ml + "/root/ml/predict", json=[WINE_SAMPLE]) for _ in range(20)]
        assert all(answer["predictions"] == before["predictions"] for answer in during)
        assert all(answer["model"] == before["model"] for answer in during)
        assert all("dataset database is unavailable" in answer["degraded"] for answer in during)
        # the Open Inference Protocol and MLflow's /invocations serve the same loaded model
        tensor = {"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": list(WINE_SAMPLE.values())}
        v2 = call("POST", ml + "/v2/models/wine/infer", json={"inputs": [tensor], "outputs": [{"name": "predict"}]})
        assert v2["outputs"][0]["data"] == before["predictions"]
        assert v2["model_version"] == str(before["model"]["version"])
        assert "dataset database is unavailable" in v2["parameters"]["degraded"]
        invocations = call("POST", ml + "/invocations", json={"dataframe_records": [WINE_SAMPLE]})
        assert invocations == {"predictions": before["predictions"]}
        assert_ready_and_degraded(ml, "dataset database is unavailable")
        # workers (re)started during the outage have loaded nothing: each loads the copy of the
        # served pipeline kept beside the data, and answers with it, degraded
        restart_workers(stack["ml"].process.pid)
        restarted = [call("POST", ml + "/root/ml/predict", json=[WINE_SAMPLE]) for _ in range(20)]
        assert all(answer["predictions"] == before["predictions"] for answer in restarted)
        assert all(answer["model"] == before["model"] for answer in restarted)
        assert all("from the copy kept in" in answer["degraded"] for answer in restarted), restarted[0]
        assert_ready_and_degraded(ml, "from the copy kept in")
        # what needs the database still says at once that it is unavailable
        started = time.monotonic()
        call("GET", ml + "/root/ml", expect=503)
        assert time.monotonic() - started < REQUEST_TIMEOUT
    finally:
        throwaway_postgres.start()

    call("POST", ml + "/root/ml/set_model", json={"model_name": "LogisticRegression", "hyperparameters": {}})
    deployed = call("POST", ml + "/root/ml", json={"dataset": "training"})
    assert deployed["message"].startswith("Score on training set")
    version = call("GET", ml + "/root/ml")["model"]["version"]
    deadline = time.monotonic() + 5
    while (answer := call("POST", ml + "/root/ml/predict", json=[WINE_SAMPLE]))["model"]["version"] != version:
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    assert answer["model"]["model_name"] == "LogisticRegression" and "degraded" not in answer
    for _ in range(10):  # every worker ready, none degraded
        assert "degraded" not in call("GET", ml + "/ready", headers={"Connection": "close"})
        assert call("GET", ml + "/v2/health/ready", headers={"Connection": "close"}) == {"ready": True}


def assert_ready_and_degraded(ml: str, reason: str) -> None:
    """While the database is down, /ready and the protocol's ready routes answer 200 and say why degraded."""
    for _ in range(6):  # new connections: several workers answer
        readiness = call("GET", ml + "/ready", headers={"Connection": "close"})
        assert readiness["status"] == "ready" and readiness["checks"]["database"] == "degraded", readiness
        assert reason in readiness["degraded"] and readiness["checks"]["model"].endswith("loaded"), readiness
        for path in ("/v2/health/ready", "/v2/models/wine/ready"):
            answer = call("GET", ml + path, headers={"Connection": "close"})
            assert answer["ready"] is True and reason in answer["degraded"], (path, answer)


def restart_workers(master: int, timeout: float = 60.0) -> None:
    """kill -9 every worker of a gunicorn master and wait until as many new ones run."""
    workers = set(process_tree(master)) - {master}
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while (now := set(process_tree(master)) - {master}) & workers or len(now) < len(workers):
        assert time.monotonic() < deadline, f"gunicorn did not replace its workers {workers}: {now}"
        time.sleep(0.1)
