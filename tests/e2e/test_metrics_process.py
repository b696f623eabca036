"""/metrics under gunicorn with several workers: whichever worker answers a scrape, it counts every
worker's requests (prometheus_client's multiprocess mode), the directory of a previous run is
emptied at start, and a worker that dies keeps its counts but not its live gauges."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ServiceProcess, settings_on_free_ports

pytestmark = pytest.mark.e2e

WORKERS = 3
REQUESTS = 60


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """The samples of one scrape, on a new connection (so any worker may answer it)."""
    text = requests.get(url + "/metrics", timeout=10, headers={"Connection": "close"}).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


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
        for _ in range(REQUESTS):  # a new connection each: gunicorn spreads them over its workers
            assert requests.get(service.url + "/root/simulator", timeout=10, headers={"Connection": "close"}).ok
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
