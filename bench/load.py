"""A small closed-loop load generator: N threads, each with its own keep-alive HTTP connection on
loopback, sending the same request back to back for a bounded time (and at most a bounded count),
recording every latency. Both servers of a comparison get the same client and payloads.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    requests: int
    errors: int
    seconds: float
    latencies: np.ndarray  # seconds, successful requests only

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if len(self.latencies) else float("nan")


def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int = 1_000_000,
    warm_up: int = 20,
) -> LoadResult:
    """POST body to url from `concurrency` keep-alive connections for `seconds` (at most
    `max_requests` in all) after `warm_up` requests per connection that are not counted."""
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load generator only targets loopback")
    parts = urlsplit(url)
    path = parts.path or "/"
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    lock = threading.Lock()
    latencies: list[list[float]] = []
    errors = [0]
    budget = [max_requests]
    start_line = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        mine: list[float] = []
        failed = 0

        def send() -> bool:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status == 200

        try:
            for _ in range(warm_up):
                send()
        finally:
            start_line.wait()
        try:
            while time.perf_counter() < stop_at[0]:
                with lock:
                    if budget[0] <= 0:
                        break
                    budget[0] -= 1
                started = time.perf_counter()
                try:
                    ok = send()
                except (OSError, http.client.HTTPException):
                    ok = False
                    connection.close()
                if ok:
                    mine.append(time.perf_counter() - started)
                else:
                    failed += 1
        finally:
            connection.close()
            with lock:
                latencies.append(mine)
                errors[0] += failed

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    stop_at[0] = float("inf")
    start_line.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    all_latencies = np.array([x for mine in latencies for x in mine])
    return LoadResult(len(all_latencies) + errors[0], errors[0], elapsed, all_latencies)
