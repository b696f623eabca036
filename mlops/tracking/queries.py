"""Answers about experiments and runs, shaped from MLflow's records: overviews, the best run,
statistics over runs, a run's params and metrics without their prefixes."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from mlops.kernel.errors import NotFound
from mlops.tracking.mlflow import ExperimentCount, ExperimentRecord, RunRecord
from mlops.tracking.mlflow.naming import (
    METRIC_PREFIXES,
    MODEL_TYPE_TAG,
    PARAMETER_PREFIXES,
    SYSTEM_TAG_PREFIXES,
    MetricKind,
    ParameterKind,
    unprefixed,
)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# statistics' names -> the metric each describes
STATISTIC_METRICS = {
    "duration": "system_execution_time",
    "accuracy": "model_accuracy",
    "f1_score": "model_f1_score",
    "precision": "model_precision",
    "recall": "model_recall",
}


def format_time(epoch_ms: int | None) -> str | None:
    """An MLflow timestamp as "YYYY-MM-DD HH:MM:SS" (UTC)."""
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime(TIME_FORMAT)


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags without MLflow's system tags."""
    return {key: value for key, value in tags.items() if not key.startswith(SYSTEM_TAG_PREFIXES)}


def experiments_overview(counts: Iterable[ExperimentCount]) -> list[dict[str, Any]]:
    """Each experiment's id, name, lifecycle stage and number of (active) runs."""
    return [
        {
            "experiment_id": c.experiment_id,
            "name": c.name,
            "lifecycle_stage": c.lifecycle_stage,
            "run_count": c.run_count,
        }
        for c in counts
    ]


def run_summary(run: RunRecord) -> dict[str, Any]:
    """A run as GET /root/tracking/runs lists it."""
    return {
        "run_id": run.run_id,
        "status": run.status,
        "start_time": format_time(run.start_time),
        "end_time": format_time(run.end_time),
        "run_name": run.run_name,
        "tags": user_tags(run.tags),
    }


def experiment_general(experiment: ExperimentRecord, runs: Sequence[RunRecord]) -> dict[str, Any]:
    """The experiment's details and its runs counted by status, with the first start and last end."""
    starts = [run.start_time for run in runs if run.start_time is not None]
    ends = [run.end_time for run in runs if run.end_time is not None]
    statuses = [run.status for run in runs]
    return {
        "experiment_info": {
            "experiment_id": experiment.experiment_id,
            "experiment_name": experiment.name,
            "artifact_location": experiment.artifact_location,
            "lifecycle_stage": experiment.lifecycle_stage,
            "tags": user_tags(experiment.tags),
            "data_creation": format_time(experiment.creation_time),
            "last_updated": format_time(experiment.last_update_time),
        },
        "experiment_runs": {
            "number_of_runs": len(runs),
            "completed_runs": statuses.count("FINISHED"),
            "failed_runs": statuses.count("FAILED"),
            "active_runs": statuses.count("RUNNING") + statuses.count("SCHEDULED"),
            "stopped_runs": statuses.count("KILLED"),
            "first_run_completed": format_time(min(starts)) if starts else None,
            "last_run_completed": format_time(max(ends)) if ends else None,
        },
    }


def best_run(experiment_id: str, runs: Iterable[RunRecord], metric_names: Sequence[str]) -> dict[str, Any]:
    """The run with the highest value of the metrics (the first decides, the next break ties)."""
    candidates = [run for run in runs if all(name in run.metrics for name in metric_names)]
    if not candidates:
        raise NotFound(
            f"No run of experiment {experiment_id} has the metrics {', '.join(metric_names)} "
            "(runs get them when their optimization finishes)",
            error="No runs found",
        )
    best = max(candidates, key=lambda run: tuple(run.metrics[name] for name in metric_names))
    return {
        "run_id": best.run_id,
        "run_name": best.run_name,
        "model": best.tags.get(MODEL_TYPE_TAG),
        "metrics": {name: best.metrics[name] for name in metric_names},
    }


def describe(values: Sequence[float]) -> dict[str, float]:
    """mean, median, population std_dev and variance, min, max, mode and iqr of values.

    As the original service computed them: numpy's mean, median and std (population), variance
    as std squared, the first most common value as the mode, and iqr = sorted[3n//4] -
    sorted[n//4]. Values are taken in the runs' order (newest first), which decides the mode
    when no value repeats.
    """
    import numpy as np

    if not values:
        raise ValueError("describe() needs at least one value")
    ordered = sorted(values)
    n = len(ordered)
    std_dev = float(np.std(values))
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "std_dev": std_dev,
        "variance": std_dev**2,
        "min": float(ordered[0]),
        "max": float(ordered[-1]),
        "mode": float(statistics.mode(values)),
        "iqr": float(ordered[3 * n // 4] - ordered[n // 4]),
    }


def experiment_statistics(experiment_id: str, runs: Sequence[RunRecord], names: Sequence[str]) -> dict[str, Any]:
    """Statistics of each named metric (STATISTIC_METRICS' keys) over the runs that logged it."""
    answer = {}
    for name in names:
        metric = STATISTIC_METRICS[name]
        values = [run.metrics[metric] for run in runs if metric in run.metrics]
        if values:
            answer[name] = describe(values)
    if not answer:
        raise NotFound(
            f"No run of experiment {experiment_id} has metrics yet (runs get them when their optimization finishes)",
            error="No runs found",
        )
    return answer


def statistic_names(filter_: Sequence[str] | None) -> list[str]:
    """Which statistics a filter asks for: all when absent or ["all"]; metric names map to theirs."""
    if not filter_ or "all" in filter_:
        return list(STATISTIC_METRICS)
    by_metric = {metric: name for name, metric in STATISTIC_METRICS.items()}
    wanted = {by_metric.get(item, item) for item in filter_}
    return [name for name in STATISTIC_METRICS if name in wanted]


def run_parameters(run: RunRecord, kind: ParameterKind) -> dict[str, str]:
    """The run's params of one kind, prefix stripped, sorted by name."""
    return unprefixed(run.params, PARAMETER_PREFIXES[kind])


def run_metrics(run: RunRecord, kind: MetricKind) -> dict[str, float]:
    """The run's metrics of one kind, prefix stripped, sorted by name."""
    return unprefixed(run.metrics, METRIC_PREFIXES[kind])
