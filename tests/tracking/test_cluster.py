"""The grid search on a Dask cluster of real processes (MLOPS_DASK_SCHEDULER): the same results as
on local threads, one task per fit, and a 503 naming the scheduler when it is gone."""

from __future__ import annotations

import threading
import time

import pytest

from mlops.kernel.web.state import state_of
from mlops.tracking.cluster import BATCHES_PER_THREAD, connected
from mlops.tracking.mlflow import reads
from mlops.tracking.optimize import search_model
from mlops.tracking.plan import fit_count, plan_searches
from mlops.tracking.schemas import OptimizationRequest
from tests.support.dask_processes import DaskProcesses
from tests.support.processes import free_port
from tests.support.tracking import WALKTHROUGH_OPTIMIZATION, optimization

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers, as processes, for the module."""
    with DaskProcesses(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def training():
    from mlops.kernel.datasets import LoadedSet
    from mlops.simulator.splits import load_split

    split = load_split("training")
    return LoadedSet("training", 1, None, split.features, split.target)


def test_the_walkthrough_grid_on_the_cluster_finds_what_local_threads_find_with_one_task_per_fit(
    dask_cluster, training
):
    from distributed import get_task_stream

    from mlops.kernel.config import Settings

    request = OptimizationRequest.model_validate(WALKTHROUGH_OPTIMIZATION)
    searches = plan_searches(request, Settings())
    local = [search_model(s, training.features, training.target, scoring="accuracy", cv=5, n_jobs=2) for s in searches]
    fits_done: list[int] = []
    with connected(dask_cluster.address) as client, get_task_stream(client) as stream:
        on_cluster = [
            search_model(
                s,
                training.features,
                training.target,
                scoring="accuracy",
                cv=5,
                n_jobs=-1,
                cluster=client,
                on_fits_done=fits_done.append,
            )
            for s in searches
        ]
    for here, there, search in zip(local, on_cluster, searches, strict=True):
        assert there.best_params == here.best_params, search.model_name
        assert there.metrics == here.metrics, search.model_name
        assert type(there.best_estimator) is type(here.best_estimator)
        assert list(there.best_estimator.feature_names_in_) == list(training.features.columns)
    fits = fit_count(request)
    assert fits == 90 and sum(fits_done) == fits
    # at most one task per fit, plus one per model for its best estimator's folds; never a task
    # per tree of a forest (RandomForest alone would make hundreds)
    assert 0 < len(stream.data) <= fits + len(searches), [t["key"] for t in stream.data][:20]
    assert all("_fit_and_score" in t["key"] or "cross_val_predict" in t["key"] for t in stream.data)
    # and far fewer: each model's fits go in BATCHES_PER_THREAD batches per worker thread (one
    # more for a remainder); its best candidate's fold predictions are made in tracking
    per_model = 2 * BATCHES_PER_THREAD + 1
    assert len(stream.data) <= per_model * len(searches), len(stream.data)
    # both workers computed: the training data was sent to each, so no worker's copy drew every task
    assert len({t["worker"] for t in stream.data}) == 2


def test_an_optimization_on_the_cluster_logs_the_same_best_run_and_metrics(
    dask_cluster, tracking_settings, training_loaded, app
):
    from mlops.tracking.app import create_app

    on_dask = create_app(tracking_settings.model_copy(update={"dask_scheduler": dask_cluster.address}))
    try:
        answers = {}
        for name, client in (("local", app.test_client()), ("dask", on_dask.test_client())):
            response = client.post("/root/tracking/model_management", json=optimization())
            assert response.status_code == 201, response.get_json()
            data = response.get_json()["data"]
            best = client.post(
                "/root/tracking/experiments",
                json={
                    "experiment_id": data["experiment_id"],
                    "request_information": "best_model",
                    "filter": ["model_accuracy"],
                },
            ).get_json()["data"]
            runs = {
                model: reads.get_run(state_of(app).resources.mlflow, run_id)
                for model, run_id in data["run_ids"].items()
            }
            answers[name] = (best, runs)
        (local_best, local_runs), (dask_best, dask_runs) = answers["local"], answers["dask"]
        assert (dask_best["model"], dask_best["run_name"], dask_best["metrics"]) == (
            local_best["model"],
            local_best["run_name"],
            local_best["metrics"],
        )
        for model, run in local_runs.items():
            other = dask_runs[model]
            assert other.status == run.status == "FINISHED"
            assert other.params == run.params
            assert {k: v for k, v in other.metrics.items() if k.startswith("model_")} == {
                k: v for k, v in run.metrics.items() if k.startswith("model_")
            }
    finally:
        state_of(on_dask).dispose()


def test_an_unreachable_scheduler_is_a_503_naming_it_and_nothing_is_logged(tracking_settings, training_loaded, app):
    from mlops.tracking.app import create_app

    address = f"tcp://127.0.0.1:{free_port()}"
    unreachable = create_app(tracking_settings.model_copy(update={"dask_scheduler": address}))
    try:
        body = optimization()
        response = unreachable.test_client().post("/root/tracking/model_management", json=body)
        assert response.status_code == 503, response.get_json()
        answer = response.get_json()
        assert answer["error"] == "Dask cluster unavailable"
        assert address in answer["message"] and "MLOPS_DASK_SCHEDULER" in answer["message"]
        names = [e.name for e in reads.list_experiments(state_of(app).resources.mlflow)]
        assert body["experiment_name"] not in names
    finally:
        state_of(unreachable).dispose()


# a search of some seconds: 60 candidates x 5 folds of forests of 30-60 trees
LONG_SEARCH = {
    "models": ["RandomForest"],
    "hyperparameters": {
        "RandomForest": {
            "n_estimators": [30, 40, 50, 60],
            "max_depth": [None, 2, 3, 4, 5],
            "min_samples_split": [2, 3, 4],
        }
    },
}


def search_while(tmp_path, tracking_settings, app, break_cluster) -> tuple[DaskProcesses, dict, list]:
    """Start a long optimization on a cluster of its own, break the cluster once the fits run;
    return the cluster, the answer (status, body) and the experiment's runs."""
    from mlops.tracking.app import create_app

    cluster = DaskProcesses(tmp_path / "breaking").start()
    on_cluster = create_app(tracking_settings.model_copy(update={"dask_scheduler": cluster.address}))
    body = optimization(**LONG_SEARCH)
    answer: dict = {}

    def post():
        response = on_cluster.test_client().post("/root/tracking/model_management", json=body)
        answer.update(status=response.status_code, body=response.get_json())

    try:
        request = threading.Thread(target=post)
        started = time.monotonic()
        request.start()
        _wait_for_running_run(state_of(app).resources.mlflow, body["experiment_name"])
        break_cluster(cluster)
        request.join(timeout=120)
        assert not request.is_alive(), "the request waits for the cluster forever"
        assert time.monotonic() - started < 90
        experiment = next(
            e for e in reads.list_experiments(state_of(app).resources.mlflow) if e.name == body["experiment_name"]
        )
        return cluster, answer, reads.list_runs(state_of(app).resources.mlflow, [experiment.experiment_id])
    finally:
        cluster.stop()
        state_of(on_cluster).dispose()


def test_a_scheduler_that_dies_mid_search_is_a_503_and_no_run_is_left_running(
    tmp_path, tracking_settings, training_loaded, app
):
    cluster, answer, runs = search_while(tmp_path, tracking_settings, app, DaskProcesses.kill_scheduler)
    assert answer["status"] == 503, answer
    assert answer["body"]["error"] == "Dask cluster unavailable"
    assert cluster.address in answer["body"]["message"]
    assert runs and {run.status for run in runs} == {"FAILED"}


def test_workers_that_all_die_mid_search_are_a_503_not_a_wait_forever(
    tmp_path, tracking_settings, training_loaded, app
):
    def kill_workers(cluster):
        for worker in cluster.worker_processes:
            worker.kill()

    cluster, answer, runs = search_while(tmp_path, tracking_settings, app, kill_workers)
    assert answer["status"] == 503, answer
    # the scheduler drops the tasks of dead workers, or the watchdog gives up after
    # WORKERS_TIMEOUT_S without a worker: either way a 503 naming the cluster
    assert answer["body"]["error"] == "Dask cluster unavailable"
    assert cluster.address in answer["body"]["message"] and "no worker" in answer["body"]["message"]
    assert runs and {run.status for run in runs} == {"FAILED"}


def _wait_for_running_run(backend, experiment_name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        experiments = [e for e in reads.list_experiments(backend) if e.name == experiment_name]
        if experiments and any(r.status == "RUNNING" for r in reads.list_runs(backend, [experiments[0].experiment_id])):
            time.sleep(1.0)  # the fits are on the cluster by now
            return
        time.sleep(0.1)
    raise AssertionError("the optimization did not start a run")
