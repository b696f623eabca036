"""R2 crashes: kill -9 services at chosen points, on PostgreSQL, and start them again.

Mid-load of a big production set, mid-evaluation, right after a deploy and after training,
mid-optimization, mid-report: afterwards every set is the old one or the new one in full, stored
predictions are whole, no MLflow run stays RUNNING, and the deployed model answers the same
predictions as before the crash.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from sqlalchemy import func, select, text

from mlops.kernel.db import datasets, make_engine, predictions, samples
from mlops.kernel.walkthrough import WINE_SAMPLE
from tests.support.processes import ServiceProcess, free_port, settings_on_free_ports
from tests.support.reliability import ALL_SERVICES, LONG, pick
from tests.support.stack import (
    MODEL,
    bring_to_walkthrough_state,
    call,
    run_walkthrough,
    start_stack,
    stop_stack,
)

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

BIG_PRODUCTION = {"set_name": "production", "size": 200_000}
# Long enough (a few seconds on two cores) to be killed in the middle.
SLOW_OPTIMIZATION = {
    "request_information": "optimization",
    "experiment_name": "r2-killed",
    "experiment_description": "killed mid-way",
    "experiment_owner": "r2",
    "models": ["RandomForest"],
    "hyperparameters": {"RandomForest": {"n_estimators": [50, 100], "max_depth": [None, 3, 5]}},
    "scoring": "accuracy",
    "cv": 4,
}
KILLS = pick(1, 3)  # kills per scenario


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_database):
    """Every landed service on PostgreSQL (dataset DB and MLflow), in the walkthrough's state."""
    data_dir = tmp_path_factory.mktemp("r2")
    settings = settings_on_free_ports(
        data_dir=data_dir,
        dataset_db_url=postgres_database(),
        mlflow_tracking_uri=postgres_database(),
    )
    processes = {s: ServiceProcess(s, settings, data_dir / f"{s}.log") for s in ALL_SERVICES}
    try:
        start_stack(lambda service, _settings: processes[service].start(), settings, list(processes))
        bring_to_walkthrough_state(processes)
        engine = make_engine(settings.dataset_db)
        yield {"processes": processes, "settings": settings, "engine": engine, "data_dir": data_dir}
        engine.dispose()
    finally:
        stop_stack(processes.values())


def restart(process: ServiceProcess) -> float:
    """kill -9 the service (master and workers) and start it again; return the seconds it took."""
    started = time.monotonic()
    process.kill()
    process.start()
    return time.monotonic() - started


def wait_for_statement(engine, pattern: str, *, timeout: float = 60) -> str | None:
    """Wait until some session runs a statement matching the regular expression; return it."""
    deadline = time.monotonic() + timeout
    query = text(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
        "AND pid <> pg_backend_pid() AND query ~* :pattern LIMIT 1"
    )
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            found = connection.execute(query, {"pattern": pattern}).scalar()
            if found:
                return found
            connection.rollback()
            time.sleep(0.01)
    return None


def in_background(method: str, url: str, **kwargs) -> threading.Thread:
    """Send a request from a thread whose answer nobody waits for (its server is about to die)."""

    def send():
        try:
            requests.request(method, url, timeout=600, **kwargs)
        except requests.RequestException:
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def set_state(engine, name: str) -> dict | None:
    """A set as stored: its id, n_samples, rows of samples / predictions, and a checksum."""
    with engine.connect() as connection:
        row = connection.execute(select(datasets).where(datasets.c.name == name)).first()
        if row is None:
            return None
        count = {
            table.name: connection.execute(select(func.count()).where(table.c.dataset_id == row.id)).scalar_one()
            for table in (samples, predictions)
        }
        checksum = connection.execute(
            select(func.coalesce(func.sum(predictions.c.prediction * (predictions.c.sample_index % 97 + 1)), 0)).where(
                predictions.c.dataset_id == row.id
            )
        ).scalar_one()
    return {"id": row.id, "n_samples": row.n_samples, **count, "checksum": int(checksum)}


def assert_whole(state: dict, name: str) -> None:
    assert state is not None, f"the {name} set vanished"
    assert state["samples"] == state["n_samples"], f"{name} set half-written: {state}"
    assert state["predictions"] in (0, state["n_samples"]), f"{name} predictions half-written: {state}"


def test_kill_the_simulator_mid_load_leaves_the_old_set_or_the_new_one_in_full(stack, record_figures):
    processes, engine = stack["processes"], stack["engine"]
    simulator = processes["simulator"]
    recoveries = []
    outcomes = []
    for _ in range(KILLS):
        before = set_state(engine, "production")
        in_background("POST", simulator.url + "/root/simulator", json=BIG_PRODUCTION)
        # on PostgreSQL the rows go into the new version's own partition, samples_<id>
        statement = wait_for_statement(engine, r'^\s*(insert\s+into|copy)\s+"?samples(_[0-9]+)?\y')
        assert statement, "the load never started writing"
        recoveries.append(restart(simulator))
        after = set_state(engine, "production")
        assert_whole(after, "production")
        if after["id"] == before["id"]:
            outcomes.append("old")
            assert after == before, "the old set was touched by a load that did not finish"
        else:
            outcomes.append("new")
            assert after["n_samples"] == BIG_PRODUCTION["size"]
    # the restarted simulator loads as before
    call("POST", simulator.url + "/root/simulator", json=BIG_PRODUCTION)
    loaded = set_state(engine, "production")
    assert_whole(loaded, "production")
    assert loaded["n_samples"] == BIG_PRODUCTION["size"]
    # and no killed load left a version's partition behind: only the loaded versions have one
    with engine.connect() as connection:
        partitions = connection.execute(
            text("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^samples_[0-9]+$'")
        ).scalars()
        versions = connection.execute(select(datasets.c.id)).scalars()
        assert sorted(partitions) == sorted(f"samples_{version}" for version in versions)
    record_figures(
        "R2 kill simulator mid-load", kills=KILLS, outcomes=outcomes, failures=0, restart_s=round(max(recoveries), 2)
    )


def test_kill_the_ml_service_mid_evaluation_keeps_the_stored_predictions_whole(stack, record_figures):
    processes, engine = stack["processes"], stack["engine"]
    ml = processes["ml"]
    if set_state(engine, "production")["n_samples"] != BIG_PRODUCTION["size"]:
        call("POST", processes["simulator"].url + "/root/simulator", json=BIG_PRODUCTION)
    call("POST", ml.url + "/root/ml", json={"dataset": "production"})
    before = set_state(engine, "production")
    assert before["predictions"] == BIG_PRODUCTION["size"]
    recoveries = []
    for _ in range(KILLS):
        in_background("POST", ml.url + "/root/ml", json={"dataset": "production"})
        assert wait_for_statement(engine, r'^\s*(delete\s+from|insert\s+into|copy)\s+"?predictions\y'), (
            "the evaluation never started writing predictions"
        )
        recoveries.append(restart(ml))
        after = set_state(engine, "production")
        assert_whole(after, "production")
        # the same model on the same rows: whole predictions are the same predictions
        assert after == before
    answer = call("POST", ml.url + "/root/ml", json={"dataset": "production"})
    assert answer["message"].startswith("Score on production set: ")
    assert set_state(engine, "production") == before
    record_figures(
        "R2 kill ml mid-evaluation",
        kills=KILLS,
        predictions_rows=before["predictions"],
        failures=0,
        restart_s=round(max(recoveries), 2),
    )


def test_kill_the_ml_service_right_after_deploy_and_after_training_serves_the_same_model(stack, record_figures):
    processes = stack["processes"]
    ml = processes["ml"]
    if "tracking" in processes:
        # deploy as the walkthrough does: a run's model, through the tracking service
        created = call(
            "POST",
            processes["tracking"].url + "/root/tracking/model_management",
            expect=201,
            json={
                "request_information": "optimization",
                "experiment_name": "r2-deploy",
                "experiment_description": "d",
                "experiment_owner": "r2",
                "models": ["RandomForest"],
                "hyperparameters": {"RandomForest": {"n_estimators": [5, 10], "random_state": [42]}},
                "scoring": "accuracy",
                "cv": 3,
            },
        )
        run_id = created["data"]["run_ids"]["RandomForest"]
        call(
            "POST",
            processes["tracking"].url + "/root/tracking/model_management",
            json={"request_information": "setting", "run_id": run_id},
        )
    else:
        call("POST", ml.url + "/root/ml/set_model", json=MODEL)
    deployed = call("GET", ml.url + "/root/ml")["model"]
    restart(ml)
    assert call("GET", ml.url + "/root/ml")["model"] == deployed, "the deployed model changed with a crash"

    call("POST", ml.url + "/root/ml", json={"dataset": "training"})
    call("POST", ml.url + "/root/ml", json={"dataset": "testing"})
    trained = call("GET", ml.url + "/root/ml")["model"]
    rows = [WINE_SAMPLE, {**WINE_SAMPLE, "proline": 400.0, "flavanoids": 0.5}, {**WINE_SAMPLE, "alcohol": None}]
    predicted = call("POST", ml.url + "/root/ml/predict", json=rows)
    testing = set_state(stack["engine"], "testing")
    recoveries = [restart(ml) for _ in range(KILLS)]
    assert call("GET", ml.url + "/root/ml")["model"] == trained
    assert call("POST", ml.url + "/root/ml/predict", json=rows) == predicted
    assert set_state(stack["engine"], "testing") == testing
    record_figures(
        "R2 kill ml right after deploy/training", kills=KILLS + 1, failures=0, restart_s=round(max(recoveries), 2)
    )


def runs_of(tracking_url: str, experiment_name: str) -> list[dict]:
    experiments = call("GET", tracking_url + "/root/tracking/experiments")["data"]
    ids = [e["experiment_id"] for e in experiments if e["name"] == experiment_name]
    if not ids:
        return []
    answer = call("GET", tracking_url + "/root/tracking/runs", params={"experiment_id": ids[0]}, expect=(200, 404))
    return answer.get("data", [])


def wait_for_run(tracking_url: str, experiment_name: str, status: str, timeout: float = 120) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs_of(tracking_url, experiment_name):
            if run["status"] == status:
                return run
        time.sleep(0.1)
    return None


def test_kill_tracking_mid_optimization_leaves_no_run_running(stack, record_figures):
    tracking = stack["processes"]["tracking"]
    in_background("POST", tracking.url + "/root/tracking/model_management", json=SLOW_OPTIMIZATION)
    running = wait_for_run(tracking.url, SLOW_OPTIMIZATION["experiment_name"], "RUNNING")
    assert running, "the optimization never showed a RUNNING run"
    killed_at = time.monotonic()
    restart(tracking)
    # A run whose process died must not stay RUNNING: the restarted service ends it (KILLED).
    deadline = time.monotonic() + 30
    while True:
        status = {r["run_id"]: r["status"] for r in runs_of(tracking.url, SLOW_OPTIMIZATION["experiment_name"])}
        if status.get(running["run_id"]) != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    record_figures(
        "R2 kill tracking mid-optimization",
        kills=1,
        run_status_after_restart=status.get(running["run_id"]),
        time_to_settle_s=round(time.monotonic() - killed_at, 2),
    )
    assert status.get(running["run_id"]) in ("FAILED", "KILLED"), (
        f"run {running['run_id']} of the killed optimization is {status.get(running['run_id'])} after the restart"
    )
    # and the restarted service optimizes as before
    body = SLOW_OPTIMIZATION | {
        "experiment_name": "r2-after-kill",
        "hyperparameters": {"RandomForest": {"n_estimators": [5]}},
        "cv": 3,
    }
    call("POST", tracking.url + "/root/tracking/model_management", json=body, expect=201)


def test_starting_tracking_does_not_fail_the_runs_other_live_processes_are_running(stack, tmp_path):
    """Recovery on start must only settle runs of dead processes: another instance (or worker)
    sharing the MLflow store keeps its run and finishes it."""
    tracking = stack["processes"]["tracking"]
    name = "r2-live-run"
    busy = in_background(
        "POST", tracking.url + "/root/tracking/model_management", json=SLOW_OPTIMIZATION | {"experiment_name": name}
    )
    running = wait_for_run(tracking.url, name, "RUNNING")
    assert running, "the optimization never showed a RUNNING run"
    other_settings = stack["settings"].model_copy(update={"tracking_port": free_port()})
    other = ServiceProcess("tracking", other_settings, tmp_path / "tracking-2.log").start()
    try:
        busy.join(600)
        statuses = {r["run_id"]: r["status"] for r in runs_of(tracking.url, name)}
        assert statuses[running["run_id"]] == "FINISHED", f"a live run was settled by another start: {statuses}"
    finally:
        other.stop()


def test_kill_monitoring_mid_report_then_it_reports_as_before(stack, record_figures):
    processes = stack["processes"]
    monitoring = processes["monitoring"]
    call("POST", processes["simulator"].url + "/root/simulator", json={"set_name": "production"})
    for dataset in ("testing", "production"):
        call("POST", processes["ml"].url + "/root/ml", json={"dataset": dataset})
    in_background("POST", monitoring.url + "/root/monitoring", json={"metric": "report"})
    time.sleep(1.0)  # inside the report: reading the sets or computing with Evidently
    recoveries = [restart(monitoring) for _ in range(KILLS)]
    summary = call("POST", monitoring.url + "/root/monitoring", json={"metric": "summary"})
    assert summary
    record_figures("R2 kill monitoring mid-report", kills=KILLS, failures=0, restart_s=round(max(recoveries), 2))


def test_after_the_crashes_the_walkthrough_still_passes(stack):
    if not LONG:
        pytest.skip("long form only: each scenario above already checks the restarted service works")
    processes = stack["processes"]
    call("POST", processes["simulator"].url + "/root/simulator", json={"set_name": "production"})
    run_walkthrough(processes, experiment_name="r2-walkthrough")
    for name in ("training", "testing", "production"):
        assert_whole(set_state(stack["engine"], name), name)
