"""/metrics under gunicorn with several workers: whichever worker answers a scrape, it counts every
worker's requests and the domain metrics (prometheus_client's multiprocess mode), the directory of
a previous run is emptied at start, and a worker that dies keeps its counts but not its live gauges."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mlops.kernel.db import ensure_schema, make_engine
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL, WINE_SAMPLE
from tests.support.metrics import Samples, parse_samples, sample
from tests.support.processes import ServiceProcess, settings_on_free_ports
from tests.support.sets import load_sets

pytestmark = pytest.mark.e2e

WORKERS = 3
REQUESTS = 60


# A new connection per request, several at once: gunicorn's workers share them (one after the
# other, a single idle worker may accept them all).
CLOSE = {"Connection": "close"}
CLIENTS = 6


def concurrently(send) -> list[requests.Response]:
    """REQUESTS answers of send(), from CLIENTS threads at once."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda _: send(), range(REQUESTS)))


def scrape(url: str) -> Samples:
    """The samples of one scrape, on a new connection (so any worker may answer it)."""
    return parse_samples(requests.get(url + "/metrics", timeout=10, headers=CLOSE).text)


def status_requests(samples, status: str = "200") -> float:
    labels = {"method": "GET", "path": "/root/simulator", "status_code": status, "app_name": "simulator"}
    return samples.get(("rest_server_requests_total", frozenset(labels.items())), 0.0)


def worker_pids(master: int) -> set[int]:
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == master:
                children.add(int(entry))
    return children


def test_every_worker_counts_in_every_scrape(tmp_path, monkeypatch):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_4242.db").write_bytes(b"left by a previous run")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    settings = settings_on_free_ports(data_dir=tmp_path)
    service = ServiceProcess("simulator", settings, tmp_path / "simulator.log", workers=WORKERS).start()
    try:
        assert not (metrics_dir / "counter_4242.db").exists(), "the directory of a previous run was not emptied"
        baseline = status_requests(scrape(service.url))
        answers = concurrently(lambda: requests.get(service.url + "/root/simulator", timeout=10, headers=CLOSE))
        assert all(answer.ok for answer in answers)
        writers = {path.name.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}
        assert len(writers) > 1, f"one worker answered all {REQUESTS} requests: nothing was spread"
        counts = {status_requests(scrape(service.url)) - baseline for _ in range(2 * WORKERS)}
        assert counts == {REQUESTS}, f"scrapes disagree or miss requests: {counts}"

        # a worker killed (as the OOM killer would): gunicorn replaces it, its counts stay
        victim = min(worker_pids(service.process.pid))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (len(worker_pids(service.process.pid)) < WORKERS or victim in worker_pids(service.process.pid)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert victim not in worker_pids(service.process.pid)
        assert status_requests(scrape(service.url)) - baseline == REQUESTS
        # its live gauge (requests in progress) is gone with it
        assert not list(metrics_dir.glob(f"gauge_livesum_{victim}.db"))
    finally:
        service.stop()


def test_the_domain_metrics_add_up_over_the_workers(tmp_path, monkeypatch, postgres_database):
    """Predictions by model version, counted by whichever of three ML workers answered them."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    settings = settings_on_free_ports(data_dir=tmp_path, dataset_db_url=postgres_database())
    engine = make_engine(settings.dataset_db)
    ensure_schema(engine)
    load_sets(engine)
    engine.dispose()
    ml = ServiceProcess("ml", settings, tmp_path / "ml.log", workers=WORKERS).start()
    try:
        assert requests.post(ml.url + "/root/ml/set_model", json=RANDOM_FOREST_MODEL, timeout=30).ok
        trained = requests.post(ml.url + "/root/ml", json={"dataset": "training"}, timeout=60)
        assert trained.ok, trained.text
        version = str(requests.get(ml.url + "/root/ml", timeout=10).json()["model"]["version"])
        predict = ml.url + "/root/ml/predict"
        answers = concurrently(lambda: requests.post(predict, json=[WINE_SAMPLE] * 2, timeout=30, headers=CLOSE))
        assert all(answer.ok for answer in answers), [answer.text for answer in answers if not answer.ok]
        refused = requests.post(predict, json={**WINE_SAMPLE, "proline": 1e308}, timeout=30, headers=CLOSE)
        assert refused.status_code == 400
        writers = {path.name.rsplit("_", 1)[1] for path in (tmp_path / "prometheus").glob("counter_*.db")}
        assert len(writers) > 1, f"one worker answered all {REQUESTS} requests: nothing was spread"

        labels = {"model": "wine", "version": version}
        for _ in range(2 * WORKERS):
            samples = scrape(ml.url)
            assert sample(samples, "model_infer_request_success_total", **labels) == REQUESTS
            assert sample(samples, "model_infer_request_failure_total", **labels) == 1
            assert sample(samples, "model_infer_request_duration_count", **labels) == REQUESTS + 1
            assert sample(samples, "model_predicted_rows_total", **labels, source="online") == 2 * REQUESTS
            training_rows = sample(samples, "model_predicted_rows_total", **labels, source="training")
            assert training_rows > 0
            assert 1 <= sample(samples, "model_loaded", **labels) <= WORKERS

        # model_loaded is a sum over the live workers: it reaches WORKERS once each has predicted
        deadline = time.monotonic() + 60
        while sample(scrape(ml.url), "model_loaded", **labels) < WORKERS:
            assert time.monotonic() < deadline, "not every worker loaded the model"
            concurrently(lambda: requests.post(predict, json=WINE_SAMPLE, timeout=30, headers=CLOSE))
        assert sample(scrape(ml.url), "model_loaded", **labels) == WORKERS
    finally:
        ml.stop()
