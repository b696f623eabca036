"""Fixtures for the tracking service's tests: its app on each backend (dataset DB and MLflow),
the training set loaded, and the walkthrough's optimization request."""

from __future__ import annotations

import pytest

from mlops.kernel.config import Settings
from mlops.kernel.web.state import state_of
from mlops.tracking.app import create_app
from tests.support.sets import load_sets
from tests.support.tracking import backend_of, optimization, tracking_settings_for


@pytest.fixture(scope="session")
def mlflow_store_uri(tmp_path_factory, postgres_database):
    """One MLflow backend store per database kind for the whole session, since creating MLflow's
    schema takes seconds; tests keep apart by using experiment names of their own."""
    uris: dict[str, str] = {}

    def get(kind: str) -> str:
        if kind not in uris:
            if kind == "sqlite":
                uris[kind] = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
            else:
                uris[kind] = postgres_database()
        return uris[kind]

    return get


@pytest.fixture
def tracking_settings(settings, mlflow_store_uri) -> Settings:
    """The test's settings (fresh dataset DB) with MLflow on the session's store of the same kind."""
    return tracking_settings_for(settings, mlflow_store_uri(backend_of(settings)))


@pytest.fixture
def app(tracking_settings):
    app = create_app(tracking_settings)
    yield app
    state_of(app).dispose()
    state_of(app).resources.mlflow.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def backend(app):
    """The app's MLflow backend, to look at what was logged."""
    return state_of(app).resources.mlflow


@pytest.fixture
def training_loaded(app):
    load_sets(state_of(app).engine, "training")


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def walkthrough(request, tmp_path_factory, postgres_database, mlflow_store_uri):
    """The walkthrough's optimization, run once per backend for a module's read-only tests.

    Yields (client, answer data, experiment name).
    """
    kind = request.param
    directory = tmp_path_factory.mktemp(f"walkthrough-{kind}")
    db_url = f"sqlite:///{directory / 'dataset.db'}" if kind == "sqlite" else postgres_database()
    settings = tracking_settings_for(Settings(data_dir=directory, dataset_db_url=db_url), mlflow_store_uri(kind))
    app = create_app(settings)
    load_sets(state_of(app).engine, "training")
    client = app.test_client()
    body = optimization()
    response = client.post("/root/tracking/model_management", json=body)
    assert response.status_code == 201, response.get_json()
    yield client, response.get_json()["data"], body["experiment_name"]
    state_of(app).dispose()
    state_of(app).resources.mlflow.dispose()
