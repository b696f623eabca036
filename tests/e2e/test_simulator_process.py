"""The simulator as a real gunicorn process, spoken to over HTTP."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_simulator_serves_health_openapi_and_loads_over_http(start_service, service_settings):
    simulator = start_service("simulator", service_settings, workers=2)
    health = requests.get(simulator.url + "/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["database"] == "ok"
    document = requests.get(simulator.url + "/openapi.json", timeout=5).json()
    assert document["openapi"].startswith("3.")
    assert "post" in document["paths"]["/root/simulator"]
    schema = document["components"]["schemas"]["LoadSet"]
    assert schema["properties"]["set_name"]["enum"] == ["training", "testing", "production"]
    response = requests.post(simulator.url + "/root/simulator", json={"set_name": "testing"}, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"message": "Load testing set"}
    missing = requests.get(simulator.url + "/no/such/path", timeout=5)
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "message"}
