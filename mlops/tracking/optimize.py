"""Grid search + cross-validation of several models on the training set, each logged as one MLflow run.

For each model: GridSearchCV(estimator, grid, scoring, cv) picks the best hyperparameters, and
the best estimator's cross-validated predictions (cross_val_predict(best estimator, cv)) give
accuracy and the weighted F1 / precision / recall. Everything the request asks is checked
before anything is logged, so a bad request leaves MLflow untouched.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from mlops.kernel.catalogue import build_estimator
from mlops.kernel.config import Settings
from mlops.kernel.errors import BadRequest
from mlops.kernel.metrics import ServiceMetrics
from mlops.tracking.fold_predictions import FoldPredictions
from mlops.tracking.metrics import record_search
from mlops.tracking.mlflow import MlflowBackend, store, writes
from mlops.tracking.mlflow.naming import (
    DATA_PREFIX,
    EXPERIMENT_TYPE,
    EXPERIMENT_TYPE_TAG,
    GRID_PREFIX,
    MODEL_PREFIX,
    SYSTEM_PREFIX,
    run_name,
    run_tags,
)
from mlops.tracking.plan import ModelSearch, check_against_data, plan_searches
from mlops.tracking.schemas import OptimizationRequest

if TYPE_CHECKING:  # pandas (behind LoadedSet) is imported when a request needs it, not at start-up
    from distributed import Client

    from mlops.kernel.datasets import LoadedSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    """What the grid search and cross-validation of one model found, and what it cost."""

    best_estimator: Any
    best_params: dict[str, Any]
    best_score: float  # the grid search's mean cross-validated score (the request's scoring)
    metrics: dict[str, float]
    execution_time: float
    cpu_usage: float


@dataclass(frozen=True)
class Optimization:
    experiment_id: str
    run_ids: dict[str, str]
    results: dict[str, SearchResult] = field(default_factory=dict)


class SearchFailed(BadRequest):
    """A model's grid search produced nothing usable (every fit failed or could not be scored)."""

    error = "Grid search failed"


def search_model(
    search: ModelSearch,
    X,
    y,
    *,
    scoring: str,
    cv: int,
    n_jobs: int,
    cluster: Client | None = None,
    on_fits_done=None,
    metrics: ServiceMetrics | None = None,
) -> SearchResult:
    """Grid-search one model, then cross-validate its best estimator; time and CPU measured.

    The search runs on the features as a numpy array: scikit-learn's per-fold checks of a
    DataFrame (column names, dtypes, pandas indexing) cost more than these small fits. The best
    candidate is then fitted once on the DataFrame, so the logged model knows its feature names.

    The best estimator's cross-validated predictions are the ones its own grid-search folds made
    (same stratified folds, same parameters, same seed, so the same fits as cross_val_predict's);
    only if they are missing are the folds fitted again.

    The folds run on joblib's threading backend: the fits on this small data take milliseconds,
    where a process pool would spend more on shipping data than on fitting. With a Dask client
    they run on its cluster instead, one task per fit (mlops.tracking.cluster); the predictions
    made there are not seen here, so the best estimator's folds are predicted again in one more
    task, with the same folds and seed, hence the same predictions. on_fits_done(n) is called as
    fits complete; `metrics` counts them by outcome once the search ends. cpu_usage is the CPU
    time of this process over the search, in percent of the machine's capacity over the same
    wall time (100 = every core busy; it includes whatever else the process did meanwhile).
    """
    import numpy as np
    import sklearn
    from joblib import parallel_config
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score, get_scorer, precision_recall_fscore_support
    from sklearn.model_selection import GridSearchCV, check_cv, cross_val_predict

    from mlops.tracking import cluster as cluster_module

    started, started_cpu = time.perf_counter(), time.process_time()
    features, target = X.to_numpy(), y.to_numpy()
    # GridSearchCV's own folds for a classifier (stratified, not shuffled), made once and shared.
    folds = list(check_cv(cv, target, classifier=True).split(features, target))
    # On a cluster the scorer runs on the workers: what it keeps never comes back here.
    fold_predictions = FoldPredictions(get_scorer(scoring), list(search.grid)) if cluster is None else None
    # plan_searches checked every candidate value and check_against_data that the features are
    # finite: scikit-learn need not check them again in each of the hundreds of fits.
    fits_backend = cluster_module.fits_backend(
        cluster, on_fits_done, fits=search.candidates * len(folds), data=(features, target)
    )
    with (
        parallel_config(backend=fits_backend),
        sklearn.config_context(assume_finite=True, skip_parameter_validation=True),
    ):
        grid_search = GridSearchCV(
            build_estimator(search.model_name),
            search.grid,
            scoring=fold_predictions or scoring,
            cv=folds,
            n_jobs=n_jobs,
            # on a cluster every fit is handed over at once, in the backend's batches (joblib would
            # otherwise dispatch a few at a time and split the search's end into one-fit tasks)
            pre_dispatch="all" if cluster is not None else "2*n_jobs",
            error_score=np.nan,
            refit=False,
        )
        failed = True
        try:
            grid_search.fit(features, target)
            if not np.isfinite(grid_search.cv_results_["mean_test_score"]).any():
                raise SearchFailed(
                    f"{search.model_name}: no candidate could be scored with {scoring!r} "
                    "(the scorer failed on every fold)"
                )
            best_estimator = clone(grid_search.estimator).set_params(**grid_search.best_params_)
            predicted = fold_predictions.of(grid_search.best_params_, features, folds) if fold_predictions else None
            if predicted is None:
                # On a cluster the scorer ran on the workers and kept nothing here: the best
                # candidate's fold predictions are made again, here on local threads like the
                # final fit below. A task on the cluster would cost a round trip at the end of
                # every model's search, longer than these five fits of the search's kind.
                with parallel_config(backend="threading"):
                    predicted = cross_val_predict(best_estimator, features, target, cv=folds, n_jobs=n_jobs)
            # here, and sequential as on local threads: not a task per tree on the cluster
            with parallel_config(backend="sequential"):
                best_estimator.fit(X, y)
            failed = False
        except (ValueError, TypeError, ArithmeticError) as error:
            raise SearchFailed(f"{search.model_name}: {_last_line(error)}") from error
        finally:
            fits = search.candidates * len(folds)
            record_search(metrics, search.model_name, grid_search, fits, time.perf_counter() - started, failed)
        precision, recall, f1, _ = precision_recall_fscore_support(
            target, predicted, average="weighted", zero_division=0
        )
        accuracy = accuracy_score(target, predicted)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    return SearchResult(
        best_estimator=best_estimator,
        best_params=dict(grid_search.best_params_),
        best_score=float(grid_search.best_score_),
        metrics={
            "accuracy": float(accuracy),
            "f1_score": float(f1),
            "precision": float(precision),
            "recall": float(recall),
        },
        execution_time=elapsed,
        cpu_usage=round(100 * cpu / (max(elapsed, 1e-9) * _cores()), 1),
    )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _last_line(error: Exception) -> str:
    """The informative end of scikit-learn's multi-line "All the N fits failed" message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    first = lines[0]
    return first if len(lines) == 1 else f"{first} Last error: {lines[-1]}"


def run_params(search: ModelSearch, result: SearchResult, training: LoadedSet, scoring: str, cv: int) -> dict[str, str]:
    """The params a run logs: the best hyperparameters, the data's shape and the grid searched."""
    params = {f"{MODEL_PREFIX}{key}": str(value) for key, value in result.best_params.items()}
    params |= {
        f"{DATA_PREFIX}samples": str(len(training.target)),
        f"{DATA_PREFIX}features": str(training.features.shape[1]),
        f"{DATA_PREFIX}classes": str(training.target.nunique()),
    }
    params |= {f"{GRID_PREFIX}{key}": str(values) for key, values in search.grid.items()}
    params |= {f"{GRID_PREFIX}scoring": scoring, f"{GRID_PREFIX}cv_folds": str(cv)}
    return params


def run_metrics(result: SearchResult) -> dict[str, float]:
    """The metrics a run logs: cross-validated scores and what the search cost."""
    return {f"{MODEL_PREFIX}{name}": value for name, value in result.metrics.items()} | {
        f"{SYSTEM_PREFIX}cpu_usage": result.cpu_usage,
        f"{SYSTEM_PREFIX}execution_time": result.execution_time,
    }


def optimize(
    backend: MlflowBackend,
    engine: Engine,
    settings: Settings,
    request: OptimizationRequest,
    on_fits_done: Callable[[int], None] | None = None,
    *,
    training: LoadedSet | None = None,
    experiment_type: str = EXPERIMENT_TYPE,
    metrics: ServiceMetrics | None = None,
) -> Optimization:
    """Check the request, then grid-search and log each model in turn, one MLflow run per model.

    Every run is ended before the answer: FINISHED, or FAILED if its search or its logging
    failed. A search that fails stops the request with a 400 naming the runs; a Dask cluster
    (MLOPS_DASK_SCHEDULER) that cannot be reached stops it with a 503 before anything is logged,
    one lost during a search with a 503 after its run is ended FAILED. on_fits_done(n) is called
    as fits of the grid searches complete (fit_count(request) in all). `training` replaces the
    stored training set (retraining passes training plus labelled production); the runs are
    tagged experiment_type; `metrics` counts the fits (mlops.tracking.metrics).

    Logging a model while the next one is searched gains nothing: both hold the GIL most of the
    time, and on two cores the search slowed by as much as the logging it hid (docs/performance.md).
    """
    store.import_libraries()  # first, before any lazy import of this request
    from mlops.kernel.datasets import read_set
    from mlops.tracking.cluster import connected

    searches = plan_searches(request, settings)
    if training is None:
        with engine.connect() as connection:
            training = read_set(connection, "training")
    check_against_data(request, training)
    with connected(settings.dask_scheduler) as cluster:
        tags = {"description": request.experiment_description, "owner": request.experiment_owner}
        experiment_id = writes.find_or_create_experiment(
            backend, request.experiment_name, {key: value for key, value in tags.items() if value}
        )
        run_ids: dict[str, str] = {}
        results: dict[str, SearchResult] = {}
        for search in searches:
            tags = run_tags(search.model_name) | {EXPERIMENT_TYPE_TAG: experiment_type}
            run_id = writes.start_run(backend, experiment_id, run_name(search.model_name), tags)
            try:
                result = search_model(
                    search,
                    training.features,
                    training.target,
                    scoring=request.scoring,
                    cv=request.cv,
                    n_jobs=settings.n_jobs,
                    cluster=cluster,
                    on_fits_done=on_fits_done,
                    metrics=metrics,
                )
            except BaseException as error:
                writes.end_run(backend, run_id, error)
                if isinstance(error, SearchFailed):
                    logged = ", ".join(f"{name} {rid}" for name, rid in run_ids.items()) or "none"
                    raise SearchFailed(
                        f"{error.message.rstrip('.')}. Its run {run_id} in experiment {experiment_id} is marked "
                        f"FAILED; runs logged before it: {logged}"
                    ) from error
                raise
            params = run_params(search, result, training, request.scoring, request.cv)
            log_run(backend, experiment_id, run_id, search.model_name, params, result, features=training.features)
            results[search.model_name] = result
            run_ids[search.model_name] = run_id
    return Optimization(experiment_id, run_ids, results)


def log_run(
    backend: MlflowBackend,
    experiment_id: str,
    run_id: str,
    model_name: str,
    params: dict[str, str],
    result: SearchResult,
    *,
    features=None,
) -> None:
    """Log a searched model's params, metrics and best estimator (its signature from `features`),
    then end its run FINISHED (FAILED, logged, if logging fails)."""
    try:
        writes.log_params_and_metrics(backend, run_id, params, run_metrics(result))
        writes.log_model(backend, experiment_id, run_id, result.best_estimator, model_name, features=features)
    except BaseException as error:
        log.exception("logging run %s (%s) failed", run_id, model_name)
        writes.end_run(backend, run_id, error)
        raise
    writes.end_run(backend, run_id)
