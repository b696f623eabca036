"""The simulator as a real gunicorn process, spoken to over HTTP."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest
import requests

from mlops.kernel.launch import KEEP_ALIVE_SECONDS

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


def test_a_keep_alive_connection_idle_for_seconds_is_still_open(start_service, service_settings):
    # gunicorn's default closed it after 2 s: a client reusing it at that moment got a reset
    simulator = start_service("simulator", service_settings)
    address = urlsplit(simulator.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    connection.request("GET", "/health")
    first = connection.getresponse()
    first.read()
    assert first.status == 200 and first.getheader("Connection", "").lower() != "close"
    socket_before = connection.sock
    time.sleep(3.5)
    connection.request("GET", "/health")  # http.client does not reconnect: a closed socket raises here
    second = connection.getresponse()
    second.read()
    assert second.status == 200 and connection.sock is socket_before
    assert KEEP_ALIVE_SECONDS > 3.5
    connection.close()
