"""The walkthrough's ML steps through HTTP: set a model, train, evaluate, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime

import pytest
from sqlalchemy import func, select

from mlops.kernel.datasets import read_set
from mlops.kernel.db import FEATURES, predictions
from mlops.kernel.web.state import state_of
from mlops.ml.app import create_app
from tests.support.ml import WALKTHROUGH_FOREST, set_model, use
from tests.support.sets import load_sets

SCORE = re.compile(r"Score on (training|testing|production) set: (\d+\.\d{2})%")


def score_of(response) -> float:
    """The accuracy (in %) a POST /root/ml answered, checking the message's exact format."""
    assert response.status_code == 200, response.get_json()
    match = SCORE.fullmatch(response.get_json()["message"])
    assert match, response.get_json()
    return float(match.group(2))


def stored_accuracy(engine, set_name: str) -> float:
    """The accuracy (in %) of the predictions stored for a set, against its targets."""
    with engine.connect() as connection:
        stored = read_set(connection, set_name, with_predictions=True)
    return float((stored.prediction == stored.target).mean() * 100)


def test_status_says_no_model_is_deployed_at_start(client):
    response = client.get("/root/ml")
    assert response.status_code == 200
    assert response.get_json() == {"name": "ml_model", "message": "ML model", "model": None}


def test_walkthrough_set_train_evaluate_stores_predictions_matching_the_scores(client, loaded):
    response = set_model(client)
    assert response.status_code == 200
    assert response.get_json() == {"message": "Model successfully uploaded"}

    scores = {name: score_of(use(client, name)) for name in ("training", "testing", "production")}
    for name, score in scores.items():
        assert score == round(stored_accuracy(loaded, name), 2), name
    assert scores["testing"] >= 90.0
    assert scores["production"] < scores["testing"]

    model = client.get("/root/ml").get_json()["model"]
    assert model["model_name"] == "RandomForest"
    assert model["hyperparameters"] == WALKTHROUGH_FOREST
    assert model["version"] == 2  # set (1), trained (2)
    assert round(model["training_accuracy"] * 100, 2) == scores["training"]
    set_at, trained_at = (datetime.fromisoformat(model[k]) for k in ("set_at", "trained_at"))
    assert set_at.tzinfo is not None and set_at <= trained_at
    with loaded.connect() as connection:
        versions = connection.execute(select(predictions.c.model_version).distinct()).scalars().all()
    assert versions == [2]


@pytest.mark.parametrize(
    ("model_name", "hyperparameters"),
    [
        ("LogisticRegression", {"solver": "liblinear", "C": 0.1}),
        ("LogisticRegression", {}),
        ("SVC", {"C": 10, "kernel": "rbf", "gamma": "scale"}),
        ("SVC", {"C": 0.1, "kernel": "linear"}),
        ("RandomForest", {"n_estimators": 3, "max_depth": None, "min_samples_split": 5}),
    ],
)
def test_every_model_trains_and_evaluates(client, loaded, model_name, hyperparameters):
    assert set_model(client, model_name, hyperparameters).status_code == 200
    for name in ("training", "testing", "production"):
        score = score_of(use(client, name))
        assert score == round(stored_accuracy(loaded, name), 2)
    assert score_of(use(client, "testing")) >= 85.0
    assert client.get("/root/ml").get_json()["model"]["model_name"] == model_name


def test_evaluating_again_replaces_the_predictions_of_the_set(client, trained):
    use(client, "testing")
    use(client, "testing")
    with trained.connect() as connection:
        count = connection.execute(select(func.count()).select_from(predictions)).scalar()
    assert count == 106 + 36  # training (stored by the training) and testing, once each


def test_steps_out_of_order_are_409s_saying_what_to_run_first(client, ml_engine):
    response = use(client, "training")
    assert response.status_code == 409
    assert "/root/ml/set_model" in response.get_json()["message"]

    assert set_model(client).status_code == 200
    response = use(client, "training")
    assert response.status_code == 409
    assert '/root/simulator {"set_name": "training"}' in response.get_json()["message"]

    response = use(client, "testing")
    assert response.status_code == 409
    assert '{"dataset": "training"}' in response.get_json()["message"]

    load_sets(ml_engine, "training")
    assert use(client, "training").status_code == 200
    response = use(client, "production")
    assert response.status_code == 409
    assert '/root/simulator {"set_name": "production"}' in response.get_json()["message"]


def test_setting_a_new_model_requires_training_it(client, trained):
    assert set_model(client, "SVC", {"C": 1.0}).status_code == 200
    model = client.get("/root/ml").get_json()["model"]
    assert model["model_name"] == "SVC"
    assert model["version"] == 3
    assert model["trained_at"] is None and model["training_accuracy"] is None
    response = use(client, "testing")
    assert response.status_code == 409
    assert "not trained" in response.get_json()["message"]
    record = {name: 1.0 for name in FEATURES}
    response = client.post("/root/ml/predict", json=record)
    assert response.status_code == 409
    assert "not trained" in response.get_json()["message"]
    assert use(client, "training").status_code == 200
    assert client.get("/root/ml").get_json()["model"]["version"] == 4


def test_hyperparameters_may_be_omitted_for_the_defaults(client, loaded):
    response = client.post("/root/ml/set_model", json={"model_name": "SVC"})
    assert response.status_code == 200
    assert client.get("/root/ml").get_json()["model"]["hyperparameters"] == {}
    assert score_of(use(client, "training")) > 90.0


def test_hyperparameters_that_clash_in_fit_are_a_409_naming_them_and_change_nothing(client, loaded):
    # Each value is valid on its own; scikit-learn only refuses the combination inside fit().
    assert set_model(client, "RandomForest", {"bootstrap": False, "max_samples": 0.5}).status_code == 200
    before = client.get("/root/ml").get_json()["model"]
    response = use(client, "training")
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "Model cannot be trained"
    assert "max_sample" in body["message"] and "/root/ml/set_model" in body["message"]
    assert client.get("/root/ml").get_json()["model"] == before


def test_a_second_app_on_the_same_database_serves_the_same_model(client, settings, trained):
    """What a second gunicorn worker or a restarted service sees: the model comes from the DB."""
    with trained.connect() as connection:
        testing = read_set(connection, "testing")
    records = testing.features.to_dict(orient="records")
    first = client.post("/root/ml/predict", json=records).get_json()

    other = create_app(settings)
    try:
        other_client = other.test_client()
        assert other_client.get("/root/ml").get_json() == client.get("/root/ml").get_json()
        assert other_client.post("/root/ml/predict", json=records).get_json() == first

        # A new model trained through the first app reaches the second one at its next request.
        set_model(client, "LogisticRegression", {"solver": "liblinear", "C": 0.1})
        use(client, "training")
        after = other_client.post("/root/ml/predict", json=records).get_json()
        assert after["model"] == {"model_name": "LogisticRegression", "version": 4, "registered_version": None}
        assert after == client.post("/root/ml/predict", json=records).get_json()
    finally:
        state_of(other).dispose()


def test_the_service_starts_without_importing_scikit_learn(tmp_path):
    """scikit-learn and skops cost seconds to import: the first request that needs them pays."""
    script = (
        "import sys\n"
        "from mlops.kernel.config import Settings\n"
        "from mlops.ml.app import create_app\n"
        f"app = create_app(Settings(data_dir={str(tmp_path)!r}))\n"
        "assert app.test_client().get('/root/ml').status_code == 200\n"
        "print(sorted(m for m in ('sklearn', 'skops') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
