"""What the tracking service counts for Prometheus (GET /metrics; docs/metrics.md): the fits of
its grid searches by outcome, and how long each model's search took."""

from __future__ import annotations

from typing import Any

from mlops.kernel.metrics import Metric, ServiceMetrics

FITS = Metric(
    "counter",
    "optimization_fits",
    "Cross-validation fits of the grid searches (optimizations, jobs and retrainings), by model and "
    "outcome: done, or failed (the fit or its scoring raised)",
    ("model", "outcome"),
)
SEARCH_DURATION = Metric(
    "histogram",
    "optimization_search_duration_seconds",
    "Time to grid-search and cross-validate one model, by model and outcome (done, failed)",
    ("model", "outcome"),
)


def record_search(
    metrics: ServiceMetrics | None, model_name: str, grid_search: Any, fits: int, seconds: float, failed: bool
) -> None:
    """Count one model's fits by outcome, from the scores its grid search kept, and time the search.

    A failed fit (or scoring) leaves a NaN score (error_score); when every fit failed, scikit-learn
    raises instead and keeps no scores, as it does when the search is lost (a Dask cluster gone):
    then every fit counts as failed.
    """
    if metrics is None:
        return
    results = getattr(grid_search, "cv_results_", None)
    if results is None:
        done = 0
    else:
        import numpy as np

        splits = [values for key, values in results.items() if key.startswith("split") and key.endswith("_test_score")]
        done = int(sum(np.count_nonzero(np.isfinite(np.asarray(values, dtype=float))) for values in splits))
    metrics.get(FITS).labels(model_name, "done").inc(done)
    metrics.get(FITS).labels(model_name, "failed").inc(fits - done)
    metrics.get(SEARCH_DURATION).labels(model_name, "failed" if failed else "done").observe(seconds)
