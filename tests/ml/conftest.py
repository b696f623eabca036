"""Fixtures for the ML service's tests: its app on each backend, with the simulator's sets loaded."""

from __future__ import annotations

import pytest

from mlops.kernel.web.state import state_of
from mlops.ml.app import create_app
from tests.support.ml import set_model, use
from tests.support.sets import load_sets


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    state_of(app).dispose()


@pytest.fixture
def client(app):
    # Not `with app.test_client()`: that keeps a request context pushed, which breaks tests that
    # talk to two apps in turn.
    return app.test_client()


@pytest.fixture
def ml_engine(app):
    """The engine of the app under test (on the test's backend)."""
    return state_of(app).engine


@pytest.fixture
def loaded(ml_engine):
    """The three sets loaded into the app's database."""
    load_sets(ml_engine)
    return ml_engine


@pytest.fixture
def trained(client, loaded):
    """The walkthrough's RandomForest deployed and trained on the loaded training set."""
    assert set_model(client).status_code == 200
    assert use(client, "training").status_code == 200
    return loaded
