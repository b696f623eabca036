"""A worker loads the served model as it boots (warm_up, started by gunicorn_config), so no request
has to; a request that needs the model meanwhile waits for that load, unless other requests queue
for the worker (its listening socket has connections no worker accepted): then it answers 503 at
once, so that a sync worker does not hold the queue, the health probe among it, for the load."""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlops.kernel import accept_queue
from mlops.kernel.walkthrough import WINE_SAMPLE
from mlops.kernel.web.state import state_of
from mlops.ml.app import create_app, warm_up
from mlops.ml.readiness import model_readiness

LOADED = "loaded the RandomForest pipeline"


@pytest.fixture
def worker(settings, trained):
    """Another worker of the service (a new app on the same database, nothing loaded)."""
    app = create_app(settings)
    yield app
    state_of(app).dispose()


@pytest.fixture
def queued():
    """A listening socket with a connection nobody accepted, watched as a worker's would be."""
    listener = socket.create_server(("127.0.0.1", 0))
    waiting = socket.create_connection(listener.getsockname())
    accept_queue.watch([listener])
    yield listener
    accept_queue.watch([])
    waiting.close()
    listener.close()


def held_warm_up(app) -> threading.Event:
    """Start the worker's warm-up (the real load), held until the returned event is set."""
    go = threading.Event()
    state = state_of(app)
    state.resources.warm_up(lambda: go.wait(30) and model_readiness(state.engine, state.resources))
    return go


def test_a_booting_worker_loads_the_served_model_before_any_request(worker, caplog):
    caplog.set_level(logging.INFO, "mlops.ml.pipeline_cache")
    cache = state_of(worker).resources
    assert cache.compiled is None
    warm_up(worker)
    cache._warming.join(30)
    assert cache.compiled is not None and cache.model.model_name == "RandomForest"
    answer = worker.test_client().post("/root/ml/predict", json=[WINE_SAMPLE])
    assert answer.status_code == 200, answer.get_json()
    assert caplog.text.count(LOADED) == 1  # the request did not load it again


def test_a_request_during_the_warm_up_waits_for_it_when_no_other_request_queues(worker, caplog):
    caplog.set_level(logging.INFO, "mlops.ml.pipeline_cache")
    go = held_warm_up(worker)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(worker.test_client().post, "/root/ml/predict", json=[WINE_SAMPLE])
        time.sleep(0.5)
        assert not pending.done(), pending.result().get_json()  # it waits: nothing is loaded yet
        go.set()
        answer = pending.result(timeout=60)
    assert answer.status_code == 200, answer.get_json()
    assert caplog.text.count(LOADED) == 1  # loaded once, by the warm-up


def test_a_request_during_the_warm_up_gives_way_with_503_while_others_queue(worker, queued):
    assert accept_queue.requests_queued()
    go = held_warm_up(worker)
    client = worker.test_client()
    for path, body in (("/root/ml/predict", [WINE_SAMPLE]), ("/root/ml", {"dataset": "testing"})):
        answer = client.post(path, json=body)
        assert answer.status_code == 503, answer.get_json()
        assert answer.get_json()["error"] == "Model loading" and "retry" in answer.get_json()["message"]
    go.set()
    state_of(worker).resources._warming.join(30)
    answer = client.post("/root/ml/predict", json=[WINE_SAMPLE])
    assert answer.status_code == 200, answer.get_json()  # loaded: the queue no longer matters


def test_a_connection_queues_while_its_client_waits_for_a_worker_to_accept_it():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        accept_queue.watch([listener])
        assert not accept_queue.requests_queued()
        gave_up = socket.create_connection(listener.getsockname())
        gave_up.close()  # a probe that timed out: its connection is queued, but no one waits
        time.sleep(0.1)
        assert not accept_queue.requests_queued()
        waiting = socket.create_connection(listener.getsockname())
        time.sleep(0.1)
        assert accept_queue.requests_queued()
        ends = [waiting] + [listener.accept()[0] for _ in range(2)]
        assert not accept_queue.requests_queued()
        for end in ends:
            end.close()
    finally:
        accept_queue.watch([])
        listener.close()
    assert not accept_queue.requests_queued()  # nothing watched (not under gunicorn): never
