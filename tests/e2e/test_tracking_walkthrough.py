"""The walkthrough's tracking sequence against live processes (simulator, ML service, tracking),
over HTTP, with the dataset DB and MLflow on SQLite, then both on PostgreSQL."""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests

from tests.support.tracking import WALKTHROUGH_LR_ACCURACY, WALKTHROUGH_OPTIMIZATION

pytestmark = pytest.mark.e2e

TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
TIMEOUT = 120


@pytest.fixture
def stack_settings(service_settings, postgres_database):
    """Free ports; on the PostgreSQL run, MLflow gets a fresh PostgreSQL database of its own."""
    changes: dict = {"n_jobs": 2}
    if service_settings.dataset_db.startswith("postgresql"):
        changes["mlflow_tracking_uri"] = postgres_database()
    return service_settings.model_copy(update=changes)


def post(url, body):
    return requests.post(url, json=body, timeout=TIMEOUT)


def test_walkthrough_tracking_sequence(start_service, stack_settings):
    simulator = start_service("simulator", stack_settings)
    ml = start_service("ml", stack_settings)
    tracking = start_service("tracking", stack_settings)
    assert requests.get(tracking.url + "/health", timeout=10).json()["mlflow"] == "ok"
    manage = tracking.url + "/root/tracking/model_management"
    experiments_url, runs_url = tracking.url + "/root/tracking/experiments", tracking.url + "/root/tracking/runs"

    # MLflow Logging: the training set must be loaded first
    refused = post(manage, WALKTHROUGH_OPTIMIZATION)
    assert refused.status_code == 409 and refused.json()["error"] == "Set not loaded"
    assert post(simulator.url + "/root/simulator", {"set_name": "training"}).status_code == 200
    assert post(simulator.url + "/root/simulator", {"set_name": "testing"}).status_code == 200

    response = post(manage, WALKTHROUGH_OPTIMIZATION)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["message"] == "Experiments retrieved successfully"
    assert answer["data"]["experiment_id"] == "1"  # nothing was logged by the refused request
    run_ids = answer["data"]["run_ids"]
    assert list(run_ids) == ["LogisticRegression", "RandomForest", "SVC"]
    lr = run_ids["LogisticRegression"]

    # MLflow Data Recovery
    listed = requests.get(experiments_url, timeout=10).json()
    assert listed == {
        "message": "Experiments retrieved successfully",
        "data": [{"experiment_id": "1", "name": "wine_test_1", "lifecycle_stage": "active", "run_count": 3}],
    }
    listed_runs = requests.get(runs_url, params={"experiment_id": "1"}, timeout=10).json()
    assert listed_runs["message"] == "Experiment Runs Retrieved"
    assert [r["run_id"] for r in listed_runs["data"]] == [run_ids["SVC"], run_ids["RandomForest"], lr]
    assert [r["run_name"] for r in listed_runs["data"]] == [
        f"{m} Grid_Search_Opt and CV_Performance" for m in ("SVC", "RandomForest", "LogisticRegression")
    ]
    assert all(
        r["status"] == "FINISHED" and TIME.match(r["start_time"]) and TIME.match(r["end_time"])
        for r in listed_runs["data"]
    )
    assert listed_runs["data"][2]["tags"] == {
        "model_type": "LogisticRegression",
        "experiment_type": "GridSearch_CrossValidation",
    }

    general = post(experiments_url, {"experiment_id": "1", "request_information": "general"}).json()
    assert general["message"] == "Information Retrieved"
    assert general["data"]["experiment_info"]["experiment_name"] == "wine_test_1"
    assert general["data"]["experiment_info"]["tags"] == {
        "description": "Grid Search Optimization - Cross Validation Performance",
        "owner": "Ale",
    }
    assert (
        general["data"]["experiment_runs"]["number_of_runs"]
        == general["data"]["experiment_runs"]["completed_runs"]
        == 3
    )

    best = post(
        experiments_url, {"experiment_id": "1", "request_information": "best_model", "filter": ["model_accuracy"]}
    )
    assert best.json() == {
        "message": "Best model and run retrieved successfully.",
        "data": {
            "run_id": lr,
            "run_name": "LogisticRegression Grid_Search_Opt and CV_Performance",
            "model": "LogisticRegression",
            "metrics": {"model_accuracy": pytest.approx(WALKTHROUGH_LR_ACCURACY)},
        },
    }
    statistics = post(
        experiments_url, {"experiment_id": "1", "request_information": "statistics", "filter": ["all"]}
    ).json()
    assert statistics["message"] == "Statistics Retrieved"
    assert list(statistics["data"]) == ["duration", "accuracy", "f1_score", "precision", "recall"]
    assert statistics["data"]["accuracy"]["max"] == pytest.approx(WALKTHROUGH_LR_ACCURACY)

    def ask(information, kind):
        reply = post(runs_url, {"experiment_id": "1", "run_id": lr, "request_information": information, "type": kind})
        assert reply.status_code == 200 and reply.json()["message"] == "Parameters Retrieved"
        return reply.json()["data"]

    assert ask("parameters", "data") == {"classes": "3", "features": "13", "samples": "106"}
    assert ask("parameters", "grid_search") == {
        "C": "[0.1, 1]",
        "cv_folds": "5",
        "scoring": "accuracy",
        "solver": "['liblinear']",
    }
    assert ask("parameters", "model") == {"C": "0.1", "solver": "liblinear"}
    assert set(ask("metrics", "system")) == {"cpu_usage", "execution_time"}
    assert ask("metrics", "model")["accuracy"] == pytest.approx(WALKTHROUGH_LR_ACCURACY)

    # Model Deployment: the run's model goes to the ML service, which can then train it
    setting = post(manage, {"request_information": "setting", "run_id": lr})
    assert setting.status_code == 200 and setting.json() == {"message": "Model successfully uploaded"}
    deployed = requests.get(ml.url + "/root/ml", timeout=10).json()["model"]
    assert deployed["model_name"] == "LogisticRegression"
    assert deployed["hyperparameters"] == {"C": 0.1, "solver": "liblinear"}
    trained = post(ml.url + "/root/ml", {"dataset": "training"})
    assert trained.status_code == 200 and trained.json()["message"].startswith("Score on training set: ")
    assert post(ml.url + "/root/ml", {"dataset": "testing"}).status_code == 200

    # Deleting MLflow Experiments and Runs
    deleted = requests.delete(runs_url, params={"experiment_id": "1", "run_id": lr}, timeout=10)
    assert deleted.status_code == 200
    gone = post(runs_url, {"experiment_id": "1", "run_id": lr, "request_information": "parameters", "type": "data"})
    assert gone.status_code == 404 and set(gone.json()) == {"error", "message"}
    assert len(requests.get(runs_url, params={"experiment_id": "1"}, timeout=10).json()["data"]) == 2
    assert requests.delete(experiments_url, params={"experiment_id": "1"}, timeout=10).status_code == 200
    assert requests.get(experiments_url, timeout=10).json()["data"] == []
    assert post(experiments_url, {"experiment_id": "1", "request_information": "general"}).status_code == 404


def test_setting_while_the_ml_service_is_stopped_is_503_and_mlflow_stays_clean(start_service, stack_settings):
    simulator = start_service("simulator", stack_settings)
    tracking = start_service("tracking", stack_settings)
    ml = start_service("ml", stack_settings)
    assert post(simulator.url + "/root/simulator", {"set_name": "training"}).status_code == 200
    body = {**WALKTHROUGH_OPTIMIZATION, "models": ["SVC"], "hyperparameters": {"SVC": {"C": [0.1, 10]}}, "cv": 3}
    response = post(tracking.url + "/root/tracking/model_management", body)
    assert response.status_code == 201, response.text
    svc = response.json()["data"]["run_ids"]["SVC"]
    setting = {"request_information": "setting", "run_id": svc}
    assert post(tracking.url + "/root/tracking/model_management", setting).status_code == 200

    ml.stop()
    refused = post(tracking.url + "/root/tracking/model_management", setting)
    assert refused.status_code == 503
    assert refused.json()["error"] == "ML service unavailable"
    assert "ML service" in refused.json()["message"] and "/root/ml/set_model" in refused.json()["message"]
    runs = requests.get(tracking.url + "/root/tracking/runs", params={"experiment_id": "1"}, timeout=10).json()["data"]
    assert [(r["run_id"], r["status"]) for r in runs] == [(svc, "FINISHED")]

    # An all-failing grid over HTTP: a clear 400, its run FAILED, nothing left RUNNING.
    failing = {
        **body,
        "models": ["RandomForest"],
        "hyperparameters": {"RandomForest": {"bootstrap": [False], "max_samples": [0.5]}},
    }
    failed = post(tracking.url + "/root/tracking/model_management", failing)
    assert failed.status_code == 400 and failed.json()["error"] == "Grid search failed"
    runs = requests.get(tracking.url + "/root/tracking/runs", params={"experiment_id": "1"}, timeout=10).json()["data"]
    assert sorted(r["status"] for r in runs) == ["FAILED", "FINISHED"]


def test_a_tracking_service_killed_mid_optimization_leaves_no_run_running(start_service, stack_settings):
    simulator = start_service("simulator", stack_settings)
    tracking = start_service("tracking", stack_settings)
    assert post(simulator.url + "/root/simulator", {"set_name": "training"}).status_code == 200
    # Long enough to be caught running: 30 candidates x 5 folds of forests.
    slow = {
        **WALKTHROUGH_OPTIMIZATION,
        "models": ["RandomForest"],
        "hyperparameters": {"RandomForest": {"n_estimators": list(range(50, 550, 50)), "max_depth": [None, 3, 5]}},
    }
    threading.Thread(
        target=lambda: _post_quietly(tracking.url + "/root/tracking/model_management", slow), daemon=True
    ).start()
    runs_url = tracking.url + "/root/tracking/runs"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        listed = requests.get(runs_url, params={"experiment_id": "1"}, timeout=TIMEOUT)
        if listed.status_code == 200 and listed.json()["data"][0]["status"] == "RUNNING":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the optimization never showed a RUNNING run")
    tracking.kill()

    tracking = start_service("tracking", stack_settings)
    [run] = requests.get(runs_url, params={"experiment_id": "1"}, timeout=30).json()["data"]
    assert run["status"] == "FAILED"
    assert "stopped before it finished" in run["tags"]["error"]
    general = post(
        tracking.url + "/root/tracking/experiments", {"experiment_id": "1", "request_information": "general"}
    )
    assert general.json()["data"]["experiment_runs"]["failed_runs"] == 1


def _post_quietly(url, body):
    try:
        requests.post(url, json=body, timeout=TIMEOUT)
    except requests.RequestException:
        pass  # the service is killed under this request


def test_setting_sends_the_api_token_and_names_a_token_mismatch(start_service, stack_settings):
    protected = stack_settings.model_copy(update={"api_token": "s3cret"})
    simulator = start_service("simulator", protected)
    tracking = start_service("tracking", protected)
    ml = start_service("ml", protected.model_copy(update={"api_token": "another"}))
    auth = {"Authorization": "Bearer s3cret"}
    loaded = requests.post(
        simulator.url + "/root/simulator", json={"set_name": "training"}, headers=auth, timeout=TIMEOUT
    )
    assert loaded.status_code == 200
    manage = tracking.url + "/root/tracking/model_management"
    body = {**WALKTHROUGH_OPTIMIZATION, "models": ["SVC"], "hyperparameters": {}, "cv": 2}
    assert requests.post(manage, json=body, timeout=TIMEOUT).status_code == 401  # no token, no optimization
    created = requests.post(manage, json=body, headers=auth, timeout=TIMEOUT)
    assert created.status_code == 201, created.text
    setting = {"request_information": "setting", "run_id": created.json()["data"]["run_ids"]["SVC"]}

    refused = requests.post(manage, json=setting, headers=auth, timeout=TIMEOUT)
    assert refused.status_code == 502
    assert "MLOPS_API_TOKEN" in refused.json()["message"]

    ml.stop()
    start_service("ml", protected)
    deployed = requests.post(manage, json=setting, headers=auth, timeout=TIMEOUT)
    assert deployed.status_code == 200 and deployed.json() == {"message": "Model successfully uploaded"}
