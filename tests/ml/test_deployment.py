"""The persisted model: only trusted types are loaded, and concurrent changes never mix."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import update

import mlops.ml.pipeline as pipeline_module
from mlops.kernel.db import FEATURES, deployed_model
from mlops.kernel.pipelines import dump_pipeline
from mlops.ml.deployment import save_model
from mlops.ml.pipeline_cache import VERSION_CHECK_SECONDS
from mlops.simulator.splits import load_split
from tests.support.ml import set_model, stored_state, use
from tests.support.sets import load_sets

RECORD = {name: 1.0 for name in FEATURES}


def store_pipeline_bytes(engine, pipeline_bytes: bytes) -> None:
    """Put bytes in place of the trained pipeline, as a tampered or damaged database would hold.

    Written behind the service's back (no change announced): prediction sees it once its last
    read of the row is VERSION_CHECK_SECONDS old."""
    with engine.begin() as connection:
        connection.execute(update(deployed_model).values(version=deployed_model.c.version + 1, pipeline=pipeline_bytes))
    time.sleep(VERSION_CHECK_SECONDS)


def test_a_stored_pipeline_with_untrusted_types_is_refused(client, trained, caplog):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    calls_print = Pipeline([("scale", FunctionTransformer(print))])  # skops names builtins.print untrusted
    store_pipeline_bytes(trained, dump_pipeline(calls_print))
    with caplog.at_level(logging.ERROR, logger="mlops.ml.deployment"):
        for response in (client.post("/root/ml/predict", json=RECORD), use(client, "testing")):
            assert response.status_code == 409
            answer = response.get_json()
            assert answer["error"] == "Stored model unusable"
            assert "builtins.print" in answer["message"]
            assert "/root/ml/set_model" in answer["message"]
    assert "untrusted types" in caplog.text
    # Training again replaces the refused pipeline.
    assert use(client, "training").status_code == 200
    assert client.post("/root/ml/predict", json=RECORD).status_code == 200


def test_a_stored_pipeline_of_types_outside_the_catalogue_is_refused(client, trained):
    """skops itself trusts every scikit-learn estimator; the service serves only its own kinds."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler

    training = load_split("training")
    foreign = Pipeline([("scale", MinMaxScaler())]).fit(training.features)
    store_pipeline_bytes(trained, dump_pipeline(foreign))
    response = client.post("/root/ml/predict", json=RECORD)
    assert response.status_code == 409
    assert "sklearn.preprocessing._data.MinMaxScaler" in response.get_json()["message"]


def test_damaged_pipeline_bytes_are_refused(client, trained):
    store_pipeline_bytes(trained, b"this is not a skops file")
    response = client.post("/root/ml/predict", json=RECORD)
    assert response.status_code == 409
    assert response.get_json()["error"] == "Stored model unusable"


@pytest.fixture
def during_read(monkeypatch):
    """Run an action right after the ML service has read a set, before it writes its results."""

    def inject(action):
        real_read_set, real_read_set_blocks = pipeline_module.read_set, pipeline_module.read_set_blocks

        def read_then_act(connection, name, **kwargs):
            loaded = real_read_set(connection, name, **kwargs)
            action(name)
            return loaded

        def blocks_then_act(connection, name, *args, **kwargs):
            # evaluation streams the set: act once its version is known, before its rows come
            row, blocks = real_read_set_blocks(connection, name, *args, **kwargs)
            action(name)
            return row, blocks

        monkeypatch.setattr(pipeline_module, "read_set", read_then_act)
        monkeypatch.setattr(pipeline_module, "read_set_blocks", blocks_then_act)

    return inject


def test_a_set_reloaded_during_evaluation_is_a_409_and_nothing_is_stored(client, trained, during_read):
    before = stored_state(trained)
    during_read(lambda name: load_sets(trained, name))
    response = use(client, "testing")
    assert response.status_code == 409
    answer = response.get_json()
    assert answer["error"] == "Set reloaded"
    assert '{"dataset": "testing"}' in answer["message"]
    assert stored_state(trained) == before


def test_a_training_set_reloaded_during_training_is_a_409_and_nothing_is_stored(client, loaded, during_read):
    set_model(client)
    before = stored_state(loaded)
    during_read(lambda name: load_sets(loaded, name))
    response = use(client, "training")
    assert response.status_code == 409
    assert response.get_json()["error"] == "Set reloaded"
    assert stored_state(loaded) == before
    assert client.get("/root/ml").get_json()["model"]["trained_at"] is None


def test_a_model_set_during_training_wins_and_the_training_is_refused(client, loaded, during_read):
    set_model(client)
    during_read(lambda name: save_model(loaded, "SVC", {"C": 2.0}))
    response = use(client, "training")
    assert response.status_code == 409
    answer = response.get_json()
    assert answer["error"] == "Model changed while training"
    assert '{"dataset": "training"}' in answer["message"]
    model = client.get("/root/ml").get_json()["model"]
    assert (model["model_name"], model["version"], model["trained_at"]) == ("SVC", 2, None)
    assert stored_state(loaded)["predictions"] == []
