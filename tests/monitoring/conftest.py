"""Fixtures for the monitoring service's tests: its app on each backend, the simulator's sets in
its database and predictions of a real scikit-learn model stored as the ML service stores them."""

from __future__ import annotations

import pytest

from mlops.kernel.web.state import state_of
from mlops.monitoring.app import create_app
from mlops.simulator.splits import load_split
from tests.support.monitoring import evaluate
from tests.support.sets import load_sets


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    state_of(app).dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def engine_of_app(app):
    """The dataset database engine of the app under test (on the test's backend)."""
    return state_of(app).engine


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


@pytest.fixture
def evaluated(engine_of_app, wine_model):
    """Testing and production loaded and both evaluated by the model (version 1)."""
    return loaded_and_evaluated(engine_of_app, wine_model, "testing", "production")


@pytest.fixture
def reference_ready(engine_of_app, wine_model):
    """Training and testing loaded and evaluated by the model, as after the walkthrough's ML steps."""
    return loaded_and_evaluated(engine_of_app, wine_model, "training", "testing")


def loaded_and_evaluated(engine, model, *names: str):
    """Load these sets as the simulator does and store the model's predictions on each (version 1)."""
    load_sets(engine, *names)
    for name in names:
        evaluate(engine, model, name)
    return engine
