"""Fixtures for the monitoring service's tests: its app on each backend, the simulator's sets in
its database and predictions of a real scikit-learn model stored as the ML service stores them."""

from __future__ import annotations

import pytest

from mlops.kernel.datasets import read_set, replace_predictions
from mlops.monitoring.app import create_app
from mlops.simulator.splits import load_split
from mlops.simulator.store import replace_set


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["mlops"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def engine_of_app(app):
    """The dataset database engine of the app under test (on the test's backend)."""
    return app.extensions["mlops"].engine


@pytest.fixture(scope="session")
def wine_model():
    """A random forest behind a mean imputer and a scaler, fitted on the training split (as the ML service does)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    training = load_split("training")
    model = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), RandomForestClassifier(random_state=42))
    return model.fit(training.features, training.target)


def load_sets(engine, *names: str, production_size: int | None = None) -> None:
    """Load sets as the simulator's POST /root/simulator does."""
    for name in names:
        split = load_split(name, production_size if name == "production" else None)
        replace_set(engine, name, split.features, split.target)


def evaluate(engine, model, name: str, model_version: int = 1) -> None:
    """Predict a stored set with model and store the predictions, as the ML service's evaluation does."""
    with engine.begin() as connection:
        stored = read_set(connection, name)
        predicted = model.predict(stored.features)
        replace_predictions(connection, stored.dataset_id, stored.features.index, predicted, model_version)


@pytest.fixture
def evaluated(engine_of_app, wine_model):
    """Testing and production loaded and both evaluated by the model (version 1)."""
    load_sets(engine_of_app, "testing", "production")
    for name in ("testing", "production"):
        evaluate(engine_of_app, wine_model, name)
    return engine_of_app


def monitor(client, metric: str, **extra):
    """POST /root/monitoring {"metric": metric, ...} and return the response."""
    return client.post("/root/monitoring", json={"metric": metric, **extra})
