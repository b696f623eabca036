"""Fixtures for the tracking service's tests: its app on each backend (dataset DB and MLflow),
the training set loaded, and the walkthrough's optimization request."""

from __future__ import annotations

import copy
import uuid

import pytest

from mlops.kernel.config import Settings
from mlops.simulator.splits import load_split
from mlops.simulator.store import replace_set
from mlops.tracking.app import create_app
from mlops.walkthrough import OPTIMIZATION_REQUEST as WALKTHROUGH_OPTIMIZATION
from tests.processes import free_port

# What the walkthrough's LogisticRegression grid scores, cross-validated on the 106 training rows.
WALKTHROUGH_LR_ACCURACY = 98 / 106


def optimization(name: str | None = None, **changes) -> dict:
    """The walkthrough's optimization body under a fresh experiment name, with changes."""
    body = copy.deepcopy(WALKTHROUGH_OPTIMIZATION)
    body["experiment_name"] = name or f"wine_{uuid.uuid4().hex[:10]}"
    body.update(changes)
    return body


def backend_of(settings: Settings) -> str:
    return "postgresql" if settings.dataset_db.startswith("postgresql") else "sqlite"


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


def tracking_settings_for(settings: Settings, mlflow_uri: str) -> Settings:
    """Settings for a tracking app: MLflow on the given store, two jobs, no ML service listening."""
    return settings.model_copy(
        update={"mlflow_tracking_uri": mlflow_uri, "n_jobs": 2, "ml_service_url": f"http://127.0.0.1:{free_port()}"}
    )


@pytest.fixture
def tracking_settings(settings, mlflow_store_uri) -> Settings:
    """The test's settings (fresh dataset DB) with MLflow on the session's store of the same kind."""
    return tracking_settings_for(settings, mlflow_store_uri(backend_of(settings)))


@pytest.fixture
def app(tracking_settings):
    app = create_app(tracking_settings)
    yield app
    app.extensions["mlops"].dispose()
    app.extensions["tracking"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def backend(app):
    """The app's MLflow backend, to look at what was logged."""
    return app.extensions["tracking"]


def load_training(engine) -> None:
    """Load the training set as POST /root/simulator {"set_name": "training"} does."""
    split = load_split("training")
    replace_set(engine, "training", split.features, split.target)


@pytest.fixture
def training_loaded(app):
    load_training(app.extensions["mlops"].engine)


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
    load_training(app.extensions["mlops"].engine)
    client = app.test_client()
    body = optimization()
    response = client.post("/root/tracking/model_management", json=body)
    assert response.status_code == 201, response.get_json()
    yield client, response.get_json()["data"], body["experiment_name"]
    app.extensions["mlops"].dispose()
    app.extensions["tracking"].dispose()
