"""The loop's moves: retraining through the gate, promotion, rollback, adoption of a model trained
through the ML service, the history, lineage; the tracking app against a real ML service process
on the same dataset database (both backends)."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from mlops.kernel.db import predictions
from mlops.kernel.walkthrough import WINE_SAMPLE
from mlops.kernel.web.state import state_of
from mlops.tracking.app import create_app
from mlops.tracking.champion.loop import REGISTERED_MODEL
from mlops.tracking.champion.moves import rollback_target
from mlops.tracking.mlflow import registry
from mlops.tracking.retrain import _logged_grid
from tests.support.sets import load_sets
from tests.support.tracking import LR_RETRAINING, MANAGE, WEAK_MODEL, backend_of, tracking_settings_for


def run_lineage(client, experiment_id: str, run_id: str) -> dict:
    """POST /root/tracking/runs {"request_information": "lineage"}: the run's lineage."""
    body = {"experiment_id": experiment_id, "run_id": run_id, "request_information": "lineage"}
    return client.post("/root/tracking/runs", json=body).get_json()["data"]


def test_rollback_follows_the_moves_as_a_stack():
    def event(action, champion, previous):
        return {"action": action, "champion": champion, "previous": previous}

    assert rollback_target([]) is None
    assert rollback_target([event("adopted", "1", None)]) is None
    moves = [
        event("adopted", "1", None),
        event("promoted", "2", "1"),
        event("kept", "2", "2"),
        event("requested", "3", "2"),
    ]
    assert rollback_target(moves) == "2"
    assert rollback_target([*moves, event("rolled_back", "2", "3")]) == "1"
    assert rollback_target([*moves, event("rolled_back", "2", "3"), event("rolled_back", "1", "2")]) is None
    # promoting the champion again is no move
    assert rollback_target([event("adopted", "1", None), event("requested", "1", "1")]) is None


def test_a_logged_grid_reads_back_as_it_was_searched():
    params = {
        "grid_search_C": "[0.1, 1]",
        "grid_search_max_depth": "[None, 3]",
        "grid_search_solver": "['liblinear']",
        "grid_search_scoring": "accuracy",
        "grid_search_cv_folds": "5",
        "model_C": "0.1",
    }
    assert _logged_grid(params) == {"C": [0.1, 1], "max_depth": [None, 3], "solver": ["liblinear"]}


@pytest.fixture
def loop_stack(service_settings, start_service, mlflow_store_uri):
    """A real ML service process and a tracking app on the same dataset DB; MLflow on the session's store.

    The session's MLflow store is shared by the tests of one backend, so the registered model's
    name is made unique... by the store: each test gets its own store here instead.
    """
    settings = service_settings.model_copy(update={"champion_sync_seconds": 0})
    ml = start_service("ml", settings)
    kind = backend_of(settings)
    mlflow_uri = f"sqlite:///{settings.data_dir / 'mlflow.db'}" if kind == "sqlite" else mlflow_store_uri("fresh-pg")
    tracking_settings = tracking_settings_for(settings, mlflow_uri).model_copy(update={"ml_service_url": ml.url})
    app = create_app(tracking_settings)
    yield app.test_client(), ml, app
    state_of(app).dispose()
    state_of(app).resources.mlflow.dispose()


def test_the_loop_adopts_gates_promotes_rolls_back_and_keeps_its_history(loop_stack):
    client, ml, app = loop_stack
    engine = state_of(app).engine
    backend = state_of(app).resources.mlflow

    # Nothing to roll back or retrain from, no data: 409s that name the step to run first.
    refused = client.post(MANAGE, json={"request_information": "rollback"})
    assert refused.status_code == 409 and refused.get_json()["error"] == "No champion"
    refused = client.post(MANAGE, json={"request_information": "retraining"})
    assert refused.status_code == 409 and "give `models`" in refused.get_json()["message"]
    refused = client.post(MANAGE, json=LR_RETRAINING)
    assert (
        refused.status_code == 409 and 'POST /root/simulator {"set_name": "training"}' in refused.get_json()["message"]
    )
    too_big = LR_RETRAINING | {"hyperparameters": {"LogisticRegression": {"C": list(range(1, 500))}}, "cv": 5}
    refused = client.post(MANAGE, json=too_big)
    assert refused.status_code == 400 and refused.get_json()["error"] == "Grid too large"
    assert client.get(MANAGE).get_json()["data"]["champion"] is None

    # A model trained through the ML service, as the walkthrough does it.
    load_sets(engine)
    assert requests.post(ml.url + "/root/ml/set_model", json=WEAK_MODEL, timeout=30).status_code == 200
    assert requests.post(ml.url + "/root/ml", json={"dataset": "training"}, timeout=30).status_code == 200
    assert requests.post(ml.url + "/root/ml", json={"dataset": "testing"}, timeout=30).status_code == 200
    report = client.get(MANAGE).get_json()["data"]
    assert report["champion"] is None and report["served"]["registered_version"] is None and not report["in_step"]

    # Retraining adopts it (version 1, the champion), then its challenger (version 2) beats it.
    answer = client.post(MANAGE, json=LR_RETRAINING | {"verdict": {"retraining_advised": True, "reasons": ["drift"]}})
    assert answer.status_code == 200, answer.get_json()
    data = answer.get_json()["data"]
    assert answer.get_json()["message"] == "Challenger promoted"
    assert data["decision"] == "promoted" and data["champion_now"] == "2"
    assert data["challenger"]["version"] == "2" and data["champion"]["version"] == "1"
    assert data["champion"]["model_name"] == "RandomForest" and data["challenger"]["model_name"] == "LogisticRegression"
    assert set(data["held_out"]) == {"testing", "production"} and data["trained_on"] == {"training": 1}
    assert data["margins"] == {"accuracy": 0.01, "f1_score": 0.01}
    for metric, check in data["gate"].items():
        assert check["passed"] and check["challenger"] >= check["champion"] + check["margin"]
        assert check["challenger"] == data["challenger"]["scores"][metric]
    assert data["verdict"] == {"retraining_advised": True, "reasons": ["drift"]}
    served = requests.get(ml.url + "/root/ml", timeout=10).json()["model"]
    assert (served["registered_model"], served["registered_version"]) == (REGISTERED_MODEL, "2")
    predicted = requests.post(ml.url + "/root/ml/predict", json=[WINE_SAMPLE], timeout=10).json()
    assert predicted["model"]["registered_version"] == "2" and predicted["model"]["model_name"] == "LogisticRegression"

    # The gate's record is readable in MLflow: tags on the versions and metrics on the run.
    challenger = registry.get_version(backend, REGISTERED_MODEL, "2")
    assert challenger.tags["mlops.gate_decision"] == "promoted" and challenger.aliases == ["champion"]
    assert challenger.tags["mlops.promoted_by"] == "retraining"
    assert registry.get_version(backend, REGISTERED_MODEL, "1").tags["mlops.promoted_by"] == "ML service training"

    # Rollback moves the champion back in one call; the ML service serves version 1 again.
    rolled = client.post(MANAGE, json={"request_information": "rollback", "reason": "test"})
    assert rolled.status_code == 200, rolled.get_json()
    assert rolled.get_json()["data"]["champion"] == "1" and rolled.get_json()["data"]["previous"] == "2"
    assert requests.get(ml.url + "/root/ml", timeout=10).json()["model"]["registered_version"] == "1"
    refused = client.post(MANAGE, json={"request_information": "rollback"})
    assert refused.status_code == 409 and refused.get_json()["error"] == "No earlier champion"

    # A promotion by hand, then a retraining that does not beat the champion keeps it.
    promoted = client.post(MANAGE, json={"request_information": "promotion", "version": "2"})
    assert promoted.status_code == 200 and promoted.get_json()["data"]["champion"] == "2"
    kept = client.post(MANAGE, json=LR_RETRAINING)
    assert kept.status_code == 200, kept.get_json()
    assert kept.get_json()["message"] == "Champion kept" and kept.get_json()["data"]["champion_now"] == "2"
    assert kept.get_json()["data"]["challenger"]["version"] == "3"
    missing = client.post(MANAGE, json={"request_information": "promotion", "version": "99"})
    assert missing.status_code == 404

    report = client.get(MANAGE).get_json()["data"]
    assert report["champion"]["version"] == "2" and report["in_step"]
    assert [(e["action"], e["champion"], e["previous"]) for e in report["history"]] == [
        ("adopted", "1", None),
        ("promoted", "2", "1"),
        ("rolled_back", "1", "2"),
        ("requested", "2", "1"),
        ("kept", "2", "2"),
    ]
    assert report["history"][1]["by"] == "retraining" and report["history"][1]["verdict"]["retraining_advised"]
    assert report["rollback_to"] == "1"

    # Lineage: the challenger's run logged version 2; its deployments and prediction batches.
    run_id = data["challenger"]["run_id"]
    lineage = run_lineage(client, data["experiment_id"], run_id)
    assert [v["version"] for v in lineage["registered_versions"] if v["registered_model"] == REGISTERED_MODEL] == ["2"]
    assert [d["registered_version"] for d in lineage["deployments"]] == ["2", "2"]
    assert requests.post(ml.url + "/root/ml", json={"dataset": "testing"}, timeout=30).status_code == 200
    lineage = run_lineage(client, data["experiment_id"], run_id)
    assert [(b["set_name"], b["registered_version"]) for b in lineage["prediction_batches"]] == [("testing", "2")]
    # every stored prediction carries the model version (and its set's version) it was made with
    with engine.connect() as connection:
        versions = set(connection.execute(select(predictions.c.model_version).distinct()).scalars())
    served = requests.get(ml.url + "/root/ml", timeout=10).json()["model"]
    assert served["version"] in versions
