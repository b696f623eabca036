"""What the simulator counts for Prometheus (GET /metrics; docs/metrics.md): rows loaded by set."""

from __future__ import annotations

from mlops.kernel.metrics import Metric, ServiceMetrics

ROWS_LOADED = Metric(
    "counter", "simulator_rows_loaded", "Rows written to the dataset DB by set loads, by set", ("set_name",)
)
LOADS = Metric("counter", "simulator_loads", "Sets loaded (or reloaded, replacing them), by set", ("set_name",))


def record_load(metrics: ServiceMetrics, set_name: str, rows: int) -> None:
    """Count a set loaded with this many rows."""
    metrics.get(LOADS).labels(set_name).inc()
    metrics.get(ROWS_LOADED).labels(set_name).inc(rows)
