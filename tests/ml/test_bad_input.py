"""Bad input on every endpoint of the ML service: a 4xx JSON error, and the DB left exactly as it was."""

from __future__ import annotations

import json

import pytest

from mlops.kernel.db import FEATURES
from tests.support.ml import stored_state, use

JSON = "application/json"
SQL_LIKE = "training'; DROP TABLE deployed_model; --"
RECORD = {name: 1.0 for name in FEATURES}

# (method, path, raw body, content type, expected status)
CASES = [
    # malformed JSON and wrong content types, on every POST
    *(
        ("POST", path, b'{"dataset": "training"', JSON, 400)
        for path in ("/root/ml", "/root/ml/set_model", "/root/ml/predict")
    ),
    *(
        ("POST", path, b"\xff\xfe not utf-8", JSON, 400)
        for path in ("/root/ml", "/root/ml/set_model", "/root/ml/predict")
    ),
    *(
        ("POST", path, b'{"dataset": "training"}', "text/plain", 415)
        for path in ("/root/ml", "/root/ml/set_model", "/root/ml/predict")
    ),
    *(
        ("POST", path, b"dataset=training", "application/x-www-form-urlencoded", 415)
        for path in ("/root/ml", "/root/ml/set_model")
    ),
    *(("POST", path, b"", JSON, 400) for path in ("/root/ml", "/root/ml/set_model", "/root/ml/predict")),
    # POST /root/ml: missing / unknown fields, wrong types, unknown enum values, SQL-like strings
    ("POST", "/root/ml", {}, JSON, 400),
    ("POST", "/root/ml", {"dataset": "training", "model": "SVC"}, JSON, 400),
    ("POST", "/root/ml", {"set_name": "training"}, JSON, 400),
    ("POST", "/root/ml", {"dataset": 1}, JSON, 400),
    ("POST", "/root/ml", {"dataset": ["training"]}, JSON, 400),
    ("POST", "/root/ml", {"dataset": None}, JSON, 400),
    ("POST", "/root/ml", {"dataset": "validation"}, JSON, 400),
    ("POST", "/root/ml", {"dataset": "Training"}, JSON, 400),
    ("POST", "/root/ml", {"dataset": SQL_LIKE}, JSON, 400),
    ("POST", "/root/ml", ["training"], JSON, 400),
    ("POST", "/root/ml", "training", JSON, 400),
    ("POST", "/root/ml", None, JSON, 400),
    # POST /root/ml/set_model
    ("POST", "/root/ml/set_model", {}, JSON, 400),
    ("POST", "/root/ml/set_model", {"hyperparameters": {}}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "RandomForest", "extra": 1}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": 5}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": None}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "XGBoost"}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "randomforest"}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": SQL_LIKE}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "RandomForest", "hyperparameters": []}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "RandomForest", "hyperparameters": "n_estimators=5"}, JSON, 400),
    (
        "POST",
        "/root/ml/set_model",
        {"model_name": "RandomForest", "hyperparameters": {"n_estimators": {"a": 1}}},
        JSON,
        400,
    ),
    ("POST", "/root/ml/set_model", {"model_name": "RandomForest", "hyperparameters": {"n_estimators": -1}}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "RandomForest", "hyperparameters": {"n_estimators": 2.5}}, JSON, 400),
    (
        "POST",
        "/root/ml/set_model",
        {"model_name": "RandomForest", "hyperparameters": {"n_estimators": "100"}},
        JSON,
        400,
    ),
    (
        "POST",
        "/root/ml/set_model",
        {"model_name": "RandomForest", "hyperparameters": {"n_estimators": 2**70}},
        JSON,
        400,
    ),
    ("POST", "/root/ml/set_model", {"model_name": "RandomForest", "hyperparameters": {"max_depth": "deep"}}, JSON, 400),
    (
        "POST",
        "/root/ml/set_model",
        {"model_name": "RandomForest", "hyperparameters": {"max_features": ["sqrt"]}},
        JSON,
        400,
    ),
    ("POST", "/root/ml/set_model", {"model_name": "RandomForest", "hyperparameters": {"kernel": "rbf"}}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "SVC", "hyperparameters": {"C": -1}}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "SVC", "hyperparameters": {"kernel": SQL_LIKE}}, JSON, 400),
    ("POST", "/root/ml/set_model", {"model_name": "SVC", "hyperparameters": {SQL_LIKE: 1}}, JSON, 400),
    (
        "POST",
        "/root/ml/set_model",
        {"model_name": "LogisticRegression", "hyperparameters": {"solver": "newton"}},
        JSON,
        400,
    ),
    ("POST", "/root/ml/set_model", {"model_name": "LogisticRegression", "hyperparameters": {"C": "high"}}, JSON, 400),
    (
        "POST",
        "/root/ml/set_model",
        {"model_name": "LogisticRegression", "hyperparameters": {"__class__": "x"}},
        JSON,
        400,
    ),
    # POST /root/ml/predict
    ("POST", "/root/ml/predict", {**RECORD, "alcohol": "13.0"}, JSON, 400),
    ("POST", "/root/ml/predict", {**RECORD, "alcohol": SQL_LIKE}, JSON, 400),
    ("POST", "/root/ml/predict", {**RECORD, SQL_LIKE: 1.0}, JSON, 400),
    ("POST", "/root/ml/predict", {"dataframe_split": {"columns": [SQL_LIKE], "data": [[1.0]]}}, JSON, 400),
    ("POST", "/root/ml/predict", [], JSON, 400),
    # unknown routes and methods
    ("GET", "/root/ml/set_model", None, None, 405),
    ("DELETE", "/root/ml", None, None, 405),
    ("GET", "/root/ml/nothing", None, None, 404),
]


def send(client, method, path, body, content_type):
    """Send one request; dict/list/str/None bodies are JSON-encoded, bytes go as they are."""
    if content_type is None:
        return client.open(path, method=method)
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.open(path, method=method, data=data, content_type=content_type)


def test_bad_input_on_every_endpoint_is_a_4xx_json_error_and_changes_nothing(client, trained):
    for name in ("testing", "production"):
        assert use(client, name).status_code == 200
    before = stored_state(trained)
    status_before = client.get("/root/ml").get_json()
    assert len(before["predictions"]) == 106 + 36 + 36

    wrong = []
    for method, path, body, content_type, status in CASES:
        response = send(client, method, path, body, content_type)
        answer = response.get_json(silent=True)
        if response.status_code != status or not isinstance(answer, dict) or set(answer) != {"error", "message"}:
            wrong.append((method, path, body, response.status_code, response.get_data(as_text=True)[:200]))
    assert wrong == []
    assert stored_state(trained) == before
    assert client.get("/root/ml").get_json() == status_before


def test_bad_input_before_any_model_is_set_stores_nothing(client, loaded):
    before = stored_state(loaded)
    assert before == {"deployed_model": [], "predictions": []}
    for method, path, body, content_type, _status in CASES:
        response = send(client, method, path, body, content_type)
        assert 400 <= response.status_code < 500, (path, body)
    assert stored_state(loaded) == before


def test_unknown_model_answers_the_walkthrough_message(client):
    response = client.post("/root/ml/set_model", json={"model_name": "XGBoost", "hyperparameters": {}})
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "Model not Found",
        "message": "Please Specify 'RandomForest', 'SVC' or 'LogisticRegression'",
    }


def test_invalid_hyperparameters_are_named(client):
    response = client.post("/root/ml/set_model", json={"model_name": "SVC", "hyperparameters": {"Cx": 1, "C": 1}})
    assert response.status_code == 400
    assert "Cx" in response.get_json()["message"]
    response = client.post(
        "/root/ml/set_model", json={"model_name": "RandomForest", "hyperparameters": {"max_depth": -3}}
    )
    assert response.status_code == 400
    assert "max_depth" in response.get_json()["message"]


def test_an_oversized_body_is_a_413(client):
    body = json.dumps([RECORD] * 20_000)  # ~7 MB, over the default 2 MB cap
    response = client.post("/root/ml/predict", data=body, content_type=JSON)
    assert response.status_code == 413
    assert set(response.get_json()) == {"error", "message"}


def test_service_controlled_hyperparameters_are_refused():
    """n_jobs and verbose are the service's to set: a client's n_jobs=100000 would start 100,000 threads."""
    from mlops.kernel.catalogue import build_estimator
    from mlops.kernel.errors import BadRequest

    for name in ("n_jobs", "verbose"):
        with pytest.raises(BadRequest, match=name):
            build_estimator("RandomForest", {name: 2})


def test_control_characters_in_hyperparameters_are_a_400_and_change_nothing(client, trained):
    before = stored_state(trained)
    for hyperparameters in ({"criterion": "gini\x00"}, {"max_\x1bdepth": 3}):
        response = client.post(
            "/root/ml/set_model", json={"model_name": "RandomForest", "hyperparameters": hyperparameters}
        )
        assert response.status_code == 400
        assert "control characters" in response.get_json()["message"]
    assert stored_state(trained) == before
