"""Fixtures for the simulator's tests: its app on each backend."""

from __future__ import annotations

import pytest

from mlops.kernel.web.state import state_of
from mlops.simulator.app import create_app


@pytest.fixture
def client(settings):
    app = create_app(settings)
    with app.test_client() as client:
        yield client
    state_of(app).dispose()
