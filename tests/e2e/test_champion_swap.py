"""The champion on live processes, on PostgreSQL: hot swap under 8 concurrent predict clients while
the champion is promoted and rolled back (0 errors, every answer from exactly one version), and a
kill -9 of tracking or of the ML service in the middle of a promotion (afterwards the alias, the
history and the served model agree)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import text

from mlops.kernel.db import make_engine
from mlops.kernel.walkthrough import WINE_SAMPLE
from tests.support.processes import ServiceProcess, settings_on_free_ports
from tests.support.sets import load_sets
from tests.support.tracking import LR_RETRAINING, MANAGE, WEAK_MODEL

pytestmark = pytest.mark.e2e

ROWS = [
    WINE_SAMPLE,
    {"alcohol": 12.37, "malic_acid": 0.94, "ash": 1.36, "alcalinity_of_ash": 10.6, "magnesium": 88.0,
     "total_phenols": 1.98, "flavanoids": 0.57, "nonflavanoid_phenols": 0.28, "proanthocyanins": 0.42,
     "color_intensity": 1.95, "hue": 1.05, "od280/od315_of_diluted_wines": 1.82, "proline": 520.0},
]  # fmt: skip  # a wine row in three lines, not thirteen
CLIENTS = 8
TIMEOUT = 120


def post(url, body, timeout=TIMEOUT):
    return requests.post(url, json=body, timeout=timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_database):
    """ML service (2 workers) and tracking (sync every second) on PostgreSQL, with two registered
    versions: 1 (a weak forest trained through the ML service, adopted) and 2 (a retrained
    LogisticRegression, promoted by the gate)."""
    data_dir = tmp_path_factory.mktemp("champion")
    settings = settings_on_free_ports(
        data_dir=data_dir,
        dataset_db_url=postgres_database(),
        mlflow_tracking_uri=postgres_database(),
        champion_sync_seconds=1,
        n_jobs=2,
    )
    processes = {
        "ml": ServiceProcess("ml", settings, data_dir / "ml.log", workers=2),
        "tracking": ServiceProcess("tracking", settings, data_dir / "tracking.log"),
    }
    engine = make_engine(settings.dataset_db)
    mlflow_engine = make_engine(settings.mlflow_uri)
    try:
        for process in processes.values():
            process.start()
        ml, tracking = processes["ml"].url, processes["tracking"].url
        load_sets(engine)
        assert post(ml + "/root/ml/set_model", WEAK_MODEL).status_code == 200
        assert post(ml + "/root/ml", {"dataset": "training"}).status_code == 200
        answer = post(tracking + MANAGE, LR_RETRAINING)
        assert answer.status_code == 200 and answer.json()["data"]["champion_now"] == "2", answer.text
        yield {"processes": processes, "engine": engine, "mlflow_engine": mlflow_engine, "ml": ml, "tracking": tracking}
    finally:
        for process in processes.values():
            process.stop()
        engine.dispose()
        mlflow_engine.dispose()


def served_version(ml: str) -> str | None:
    return requests.get(ml + "/root/ml", timeout=10).json()["model"]["registered_version"]


def move(tracking: str, body: dict) -> str:
    answer = post(tracking + MANAGE, body)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["champion"]


def test_every_worker_swaps_to_each_new_champion_under_load_without_an_error(stack):
    ml, tracking = stack["ml"], stack["tracking"]
    # Each version's own answer, asked while it is the champion.
    reference = {}
    for version in ("1", "2"):
        move(tracking, {"request_information": "promotion", "version": version})
        answer = post(ml + "/root/ml/predict", ROWS).json()
        reference[version] = (answer["model"]["model_name"], answer["predictions"], answer["probabilities"])
    assert reference["1"][0] == "RandomForest" and reference["2"][0] == "LogisticRegression"
    assert reference["1"][2] != reference["2"][2]

    stop = threading.Event()
    errors: list[str] = []
    seen: Counter = Counter()
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    response = session.post(ml + "/root/ml/predict", json=ROWS, timeout=30)
                    answer = response.json()
                except (requests.RequestException, ValueError) as error:
                    with lock:
                        errors.append(repr(error))
                    continue
                version = answer.get("model", {}).get("registered_version")
                if response.status_code != 200 or version not in reference:
                    with lock:
                        errors.append(f"{response.status_code} {answer}")
                    continue
                # one version, whole: its name, classes and probabilities are that version's own
                if (answer["model"]["model_name"], answer["predictions"], answer["probabilities"]) != reference[
                    version
                ]:
                    with lock:
                        errors.append(f"mixed answer: {answer}")
                with lock:
                    seen[version] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    moves = []
    try:
        time.sleep(0.5)
        for body in [{"request_information": "rollback"}, {"request_information": "promotion", "version": "2"}] * 3:
            champion = move(tracking, body)
            # the very next answer after a move comes from the new champion: no restart, no delay
            assert post(ml + "/root/ml/predict", ROWS).json()["model"]["registered_version"] == champion
            moves.append(champion)
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert moves == ["1", "2"] * 3
    assert errors == []
    assert seen["1"] > 0 and seen["2"] > 0, seen


def consistent(stack, *, timeout: float = 60) -> dict:
    """Wait until tracking says the ML service serves the champion; return tracking's report."""
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        try:
            report = requests.get(stack["tracking"] + MANAGE, timeout=10).json()["data"]
            if report["in_step"]:
                return report
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.2)
    pytest.fail(f"the champion and the served model never agreed: {report}")


def wait_for_blocked(engine, table: str, timeout: float = 30) -> str:
    """Wait until some session waits for a lock while writing `table`; return its statement."""
    query = text(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND query ILIKE :pattern LIMIT 1"
    )
    deadline = time.monotonic() + timeout
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            found = connection.execute(query, {"pattern": f"%{table}%"}).scalar()
            if found:
                return found
            connection.rollback()
            time.sleep(0.02)
    pytest.fail(f"nobody waited on {table}")


def in_background(url: str, body: dict) -> threading.Thread:
    def send():
        try:
            requests.post(url, json=body, timeout=TIMEOUT)
        except requests.RequestException:
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def assert_one_champion(stack, report: dict) -> None:
    """The alias, the latest history event and the served model name the same version."""
    champion = report["champion"]["version"]
    assert report["history"][-1]["champion"] == champion
    assert served_version(stack["ml"]) == champion
    assert post(stack["ml"] + "/root/ml/predict", ROWS).json()["model"]["registered_version"] == champion


def test_tracking_killed_between_recording_a_promotion_and_moving_the_alias_completes_it_on_restart(stack):
    before = consistent(stack)["champion"]["version"]
    target = "1" if before == "2" else "2"
    tracking = stack["processes"]["tracking"]
    # Hold the alias table so the promotion stops right after its history event is written.
    with stack["mlflow_engine"].connect() as holder:
        holder.execute(text("LOCK TABLE registered_model_aliases IN EXCLUSIVE MODE"))
        in_background(stack["tracking"] + MANAGE, {"request_information": "promotion", "version": target})
        blocked = wait_for_blocked(stack["mlflow_engine"], "registered_model_aliases")
        assert blocked.startswith("UPDATE registered_model_aliases")
        tracking.kill()
        holder.rollback()
    assert served_version(stack["ml"]) == before  # nothing reached the ML service
    tracking.start()
    report = consistent(stack)
    assert report["champion"]["version"] == target  # the recorded move was completed, not lost
    assert_one_champion(stack, report)


def test_ml_service_killed_while_storing_the_new_champion_serves_it_after_restart(stack):
    before = consistent(stack)["champion"]["version"]
    target = "1" if before == "2" else "2"
    ml = stack["processes"]["ml"]
    with stack["engine"].connect() as holder:
        holder.execute(text("LOCK TABLE deployed_model IN EXCLUSIVE MODE"))
        in_background(stack["tracking"] + MANAGE, {"request_information": "promotion", "version": target})
        wait_for_blocked(stack["engine"], "deployed_model")
        ml.kill()
        holder.rollback()
    ml.start()
    report = consistent(stack)
    assert report["champion"]["version"] == target
    assert_one_champion(stack, report)
