"""The layout for several machines (docker-compose.yml), started here as processes: a Dask scheduler
and two workers, MLflow's tracking server with its artifact proxy on PostgreSQL, and the four
services on a PostgreSQL dataset DB. The whole walkthrough runs through it: the fits run on the
Dask workers and the models reach MLflow over HTTP only (no directory shared with tracking)."""

from __future__ import annotations

import pytest
import requests

from mlops.kernel.db import normalize_url
from tests.support.dask_processes import DaskProcesses
from tests.support.mlflow_server import MlflowServer
from tests.support.processes import settings_on_free_ports
from tests.support.stack import call, run_walkthrough, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_walkthrough_runs_through_dask_and_an_mlflow_tracking_server(tmp_path, postgres_database, start_service):
    from distributed import Client

    mlflow_artifacts = tmp_path / "mlflow-server-artifacts"
    with (
        DaskProcesses(tmp_path / "dask") as dask,
        MlflowServer(normalize_url(postgres_database()), mlflow_artifacts, tmp_path / "mlflow-server.log") as mlflow,
    ):
        settings = settings_on_free_ports(
            data_dir=tmp_path / "var",
            dataset_db_url=postgres_database(),
            mlflow_tracking_uri=mlflow.url,
            dask_scheduler=dask.address,
        )
        stack = start_stack(start_service, settings)
        assert requests.get(stack["tracking"].url + "/health", timeout=10).json()["mlflow"] == "ok"

        # the optimization also as a job, run on the cluster: its fits counted as they finish
        call("POST", stack["simulator"].url + "/root/simulator", json={"set_name": "training"})
        accepted = call(
            "POST",
            stack["tracking"].url + "/root/tracking/model_management",
            expect=202,
            json={**_small_optimization(), "wait": False},
        )["data"]
        job = _wait_for_job(stack["tracking"].url, accepted["job_id"])
        assert job["state"] == "done" and job["fits_done"] == job["fits_total"] == 12, job["answer"]

        seen = run_walkthrough(stack)

        # the fits ran on the workers: each worker ran tasks of joblib's batches
        with Client(dask.address, timeout=10, set_as_default=False) as client:
            # a lambda travels by value: the workers cannot import this test module
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert len(executed) == 2 and sum(executed.values()) >= 12, executed
        # the models went to MLflow's server, which keeps them; the tracking service's own data
        # directory holds no artifact
        assert any(path.name == "MLmodel" for path in mlflow_artifacts.rglob("MLmodel"))
        assert not list((tmp_path / "var").rglob("MLmodel"))
        assert seen["run_ids"]


def _small_optimization() -> dict:
    return {
        "request_information": "optimization",
        "experiment_name": "topology_job",
        "models": ["LogisticRegression", "RandomForest"],
        "hyperparameters": {
            "LogisticRegression": {"C": [0.1, 1], "solver": ["liblinear"]},
            "RandomForest": {"n_estimators": [3, 5]},
        },
        "cv": 3,
    }


def _wait_for_job(tracking_url: str, job_id: str, timeout: float = 120) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = call("GET", f"{tracking_url}/root/tracking/jobs/{job_id}")["data"]
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not done after {timeout} s: {job}")
