"""The ML service as real gunicorn processes: it survives kill -9, and its workers agree."""

from __future__ import annotations

import math

import pytest
import requests

from mlops.kernel.datasets import read_set
from mlops.kernel.db import make_engine
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL

pytestmark = pytest.mark.e2e

FOREST = RANDOM_FOREST_MODEL["hyperparameters"]


def post(url: str, body, timeout: float = 60) -> dict:
    """POST JSON and return the answer, failing on any status but 200."""
    response = requests.post(url, json=body, timeout=timeout)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response.json()


def load_sets(simulator_url: str) -> None:
    for name in ("training", "testing", "production"):
        post(simulator_url + "/root/simulator", {"set_name": name})


def production_records(settings) -> list[dict]:
    """The stored production rows as JSON records (the fouled values, NULLs as null)."""
    engine = make_engine(settings.dataset_db)
    try:
        with engine.connect() as connection:
            features = read_set(connection, "production").features
    finally:
        engine.dispose()
    return [{k: (None if math.isnan(v) else v) for k, v in row.items()} for row in features.to_dict(orient="records")]


def deploy_and_train(ml_url: str, model_name: str, hyperparameters: dict) -> None:
    post(ml_url + "/root/ml/set_model", {"model_name": model_name, "hyperparameters": hyperparameters})
    assert post(ml_url + "/root/ml", {"dataset": "training"})["message"].startswith("Score on training set: ")


def test_a_killed_ml_service_comes_back_with_the_same_model_and_predictions(start_service, service_settings):
    simulator = start_service("simulator", service_settings)
    ml = start_service("ml", service_settings)
    load_sets(simulator.url)
    deploy_and_train(ml.url, "RandomForest", FOREST)
    testing_score = post(ml.url + "/root/ml", {"dataset": "testing"})
    records = production_records(service_settings)
    predicted = post(ml.url + "/root/ml/predict", records)
    status = requests.get(ml.url + "/root/ml", timeout=5).json()
    assert status["model"]["model_name"] == "RandomForest" and status["model"]["trained_at"]

    ml.kill()
    with pytest.raises(requests.ConnectionError):
        requests.get(ml.url + "/root/ml", timeout=5)
    restarted = start_service("ml", service_settings)

    assert requests.get(restarted.url + "/root/ml", timeout=5).json() == status
    assert post(restarted.url + "/root/ml/predict", records) == predicted
    assert post(restarted.url + "/root/ml", {"dataset": "testing"}) == testing_score


def test_two_workers_serve_identical_predictions_and_follow_a_new_model(start_service, service_settings):
    simulator = start_service("simulator", service_settings)
    ml = start_service("ml", service_settings, workers=2)
    load_sets(simulator.url)
    records = production_records(service_settings)

    deploy_and_train(ml.url, "RandomForest", FOREST)
    # requests.post opens a new connection each time, so the requests spread over both workers.
    answers = [post(ml.url + "/root/ml/predict", records) for _ in range(30)]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["model"] == {"model_name": "RandomForest", "version": 2, "registered_version": None}

    # Whichever worker trains the new model, every worker serves it from its next request on.
    deploy_and_train(ml.url, "LogisticRegression", {"solver": "liblinear", "C": 0.1})
    answers = [post(ml.url + "/root/ml/predict", records) for _ in range(30)]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["model"] == {"model_name": "LogisticRegression", "version": 4, "registered_version": None}
    assert len(answers[0]["probabilities"]) == len(records)


def test_the_ml_service_answers_health_and_describes_its_api(start_service, service_settings):
    ml = start_service("ml", service_settings)
    health = requests.get(ml.url + "/health", timeout=5)
    assert health.status_code == 200 and health.json()["database"] == "ok"
    document = requests.get(ml.url + "/openapi.json", timeout=5).json()
    assert set(document["paths"]) >= {"/root/ml", "/root/ml/set_model", "/root/ml/predict"}
    assert set(document["paths"]["/root/ml"]) == {"get", "post"}
    response = requests.post(ml.url + "/root/ml", data="{", headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400 and set(response.json()) == {"error", "message"}
