"""Prometheus metrics of a service: every request by endpoint rule and status, and the metrics a
service declares for its own domain; exposed at GET /metrics.

Under gunicorn, a service runs in several worker processes and a scrape reaches one of them, so
the values live in prometheus_client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, made and
emptied by mlops.kernel.gunicorn_config before any worker starts) and each scrape adds up every
worker's. Without that variable (an app in a test, `flask run`) each app keeps its own registry.

The request metrics carry the names and labels of MLServer's REST server (starlette_exporter),
so dashboards made for a serving peer read ours too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest, values
from prometheus_client import multiprocess as prometheus_multiprocess

# Seconds; the top buckets are for grid searches, evaluations and reports of big sets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram, "summary": Summary}
# The path label of a request that matched no route (the raw path would let anyone add series).
UNMATCHED = "<unmatched>"
# The Content-Type of an exposition in Prometheus' text format.
EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Metric:
    """A metric's declaration: a plain value any module can hold; each app makes its own instance."""

    kind: Literal["counter", "gauge", "histogram", "summary"]
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = DURATION_BUCKETS  # histograms only
    # How the workers' values of a gauge add up in multiprocess mode.
    gauge_mode: Literal["livesum", "mostrecent", "max", "min", "sum"] = "mostrecent"


REQUESTS = Metric(
    "counter",
    "rest_server_requests",
    "REST requests answered, by method, endpoint rule, status code and service",
    ("method", "path", "status_code", "app_name"),
)
REQUEST_DURATION = Metric(
    "histogram",
    "rest_server_request_duration_seconds",
    "Time to answer a REST request, by method, endpoint rule, status code and service",
    ("method", "path", "status_code", "app_name"),
)
REQUESTS_IN_PROGRESS = Metric(
    "gauge",
    "rest_server_requests_in_progress",
    "REST requests being answered right now, by method and service",
    ("method", "app_name"),
    gauge_mode="livesum",
)
REQUEST_METRICS = (REQUESTS, REQUEST_DURATION, REQUESTS_IN_PROGRESS)


def multiprocess_mode() -> bool:
    """Whether prometheus_client keeps values in PROMETHEUS_MULTIPROC_DIR (decided at its import)."""
    return values.ValueClass is not values.MutexValue


class ServiceMetrics:
    """One app's metric instances, made from their declarations on first use."""

    def __init__(self, declared: Iterable[Metric] = ()):
        self.multiprocess = multiprocess_mode()
        # In multiprocess mode the values go to files whatever the registry; a scrape reads them all.
        self.registry = None if self.multiprocess else CollectorRegistry()
        self._instances: dict[Metric, Any] = {}
        self._lock = threading.Lock()
        for metric in (*REQUEST_METRICS, *declared):
            self.get(metric)

    def get(self, metric: Metric) -> Any:
        """The app's Counter / Gauge / Histogram / Summary for this declaration."""
        instance = self._instances.get(metric)
        if instance is None:
            with self._lock:
                instance = self._instances.get(metric)
                if instance is None:
                    instance = self._instances[metric] = _make(metric, self.registry)
        return instance

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format (all workers' values in multiprocess mode)."""
        if self.multiprocess:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def _make(metric: Metric, registry: CollectorRegistry | None) -> Any:
    options: dict[str, Any] = {"registry": registry}
    if metric.kind == "histogram":
        options["buckets"] = metric.buckets
    if metric.kind == "gauge":
        options["multiprocess_mode"] = metric.gauge_mode
    return KINDS[metric.kind](metric.name, metric.documentation, metric.labels, **options)


def record_requests(app: Flask, metrics: ServiceMetrics, service: str) -> None:
    """Count every request the app answers, time it, and track those in progress."""
    requests_total, duration, in_progress = (metrics.get(metric) for metric in REQUEST_METRICS)

    @app.before_request
    def request_started() -> None:
        g.metrics_started = time.perf_counter()
        in_progress.labels(request.method, service).inc()

    @app.after_request
    def request_answered(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            labels = (request.method, rule, str(response.status_code), service)
            requests_total.labels(*labels).inc()
            duration.labels(*labels).observe(time.perf_counter() - started)
        return response

    @app.teardown_request
    def request_done(_error: BaseException | None) -> None:
        if g.pop("metrics_started", None) is not None:
            in_progress.labels(request.method, service).dec()
