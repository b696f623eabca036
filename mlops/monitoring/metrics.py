"""What the monitoring service counts for Prometheus (GET /metrics; docs/metrics.md): the
re-training verdicts it gave, by outcome, and the checks that fired in them."""

from __future__ import annotations

from mlops.kernel.metrics import Metric, ServiceMetrics
from mlops.monitoring.verdict import Verdict

VERDICTS = Metric(
    "counter",
    "monitoring_verdicts",
    "Re-training verdicts given (as JSON or in a page, cached or computed), by outcome "
    "(retraining_advised, not_advised) and reference",
    ("outcome", "reference"),
)
CHECKS_FIRED = Metric(
    "counter",
    "monitoring_verdict_checks_fired",
    "Checks that fired in the verdicts given, by family (distribution shift counts each feature)",
    ("check", "reference"),
)
RETRAINING_ADVISED = Metric(
    "gauge",
    "monitoring_retraining_advised",
    "1 if the last verdict given (by any worker) advised re-training, 0 if not, by reference",
    ("reference",),
    gauge_mode="mostrecent",
)


def record_verdict(metrics: ServiceMetrics, verdict: Verdict, reference: str) -> None:
    """Count a verdict given, and remember its outcome as the latest."""
    outcome = "retraining_advised" if verdict.retraining_advised else "not_advised"
    metrics.get(VERDICTS).labels(outcome, reference).inc()
    for reason in verdict.fired():
        metrics.get(CHECKS_FIRED).labels(reason["check"], reference).inc()
    metrics.get(RETRAINING_ADVISED).labels(reference).set(int(verdict.retraining_advised))
