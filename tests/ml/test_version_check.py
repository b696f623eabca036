"""Prediction without a query per request: two apps on one data dir and database stand for two
workers. A change made through either is served by the other's very next prediction (the shared
change signal); while nothing changes, predictions do not read the deployed model's row; a change
made behind the service's back is served within VERSION_CHECK_SECONDS."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event, update

from mlops.kernel.db import deployed_model
from mlops.kernel.walkthrough import WINE_SAMPLE
from mlops.kernel.web.state import state_of
from mlops.ml import pipeline_cache
from mlops.ml.app import create_app
from mlops.ml.change_signal import ChangeSignal
from mlops.ml.pipeline_cache import VERSION_CHECK_SECONDS
from tests.support.ml import set_model, use


@pytest.fixture
def worker(settings):
    """A second app on the same settings: another worker of the same service."""
    app = create_app(settings)
    yield app.test_client()
    state_of(app).dispose()


def served(client) -> dict:
    response = client.post("/root/ml/predict", json=WINE_SAMPLE)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["model"]


def test_a_model_deployed_through_one_worker_is_served_by_the_next_prediction_of_another(client, worker, loaded):
    assert set_model(client).status_code == 200 and use(client, "training").status_code == 200
    first = served(worker)
    assert first["model_name"] == "RandomForest"
    assert set_model(client, "LogisticRegression", {}).status_code == 200
    untrained = worker.post("/root/ml/predict", json=WINE_SAMPLE)  # at once, not after a while
    assert untrained.status_code == 409 and untrained.get_json()["error"] == "Model not trained"
    assert use(client, "training").status_code == 200
    now = served(worker)
    assert (now["model_name"], now["version"]) == ("LogisticRegression", first["version"] + 2)


def test_predictions_do_not_read_the_deployed_model_while_nothing_changes(client, loaded, app, monkeypatch):
    # a longer interval than the service's, so that a slow machine still makes several predictions in it
    interval = 2.0
    monkeypatch.setattr(pipeline_cache, "VERSION_CHECK_SECONDS", interval)
    assert set_model(client).status_code == 200 and use(client, "training").status_code == 200
    served(client)  # read once after the training
    statements: list[str] = []
    event.listen(state_of(app).engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    started = time.monotonic()
    count = 0
    while time.monotonic() - started < interval * 0.8:
        served(client)
        count += 1
    assert count >= 5 and statements == []
    # ... and read it again once the last read is that old
    time.sleep(interval)
    served(client)
    assert any("deployed_model" in statement for statement in statements)


def test_a_change_made_behind_the_services_back_is_served_within_the_check_interval(client, worker, loaded):
    assert set_model(client).status_code == 200 and use(client, "training").status_code == 200
    version = served(worker)["version"]
    with loaded.begin() as connection:  # as another host's ML service on the same database would
        connection.execute(update(deployed_model).values(version=deployed_model.c.version + 1))
    time.sleep(VERSION_CHECK_SECONDS)
    assert served(worker)["version"] == version + 1


def test_without_a_writable_data_dir_each_worker_still_sees_its_own_changes_at_once(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    signal = ChangeSignal.beside(blocked, "sqlite:///x.db")
    assert signal.mapped is None
    before = signal.read()
    signal.announce()
    assert signal.read() != before


def test_workers_of_one_database_share_a_signal_and_other_databases_do_not(tmp_path):
    one, same = (ChangeSignal.beside(tmp_path, "postgresql://db/one") for _ in range(2))
    other = ChangeSignal.beside(tmp_path, "postgresql://db/other")
    before = other.read()
    one.announce()
    assert same.read() == one.read() and other.read() == before
