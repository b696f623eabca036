"""The tracking service's HTTP API (port 5002): optimization runs logged to MLflow, queries about
them, deletion, and deployment of a run's model to the ML service."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask

from mlops.kernel.config import Settings
from mlops.kernel.db import ping
from mlops.kernel.errors import NotFound
from mlops.kernel.web.factory import create_service_app
from mlops.kernel.web.operations import Answer, ApiBlueprint
from mlops.kernel.web.state import (
    ServiceState,
    current_settings,
    dataset_engine,
    service_resources,
    service_state,
    state_of,
)
from mlops.tracking import examples, queries, query_examples
from mlops.tracking.champion.history import champion_report, run_lineage
from mlops.tracking.champion.loop import Loop
from mlops.tracking.champion.moves import promote, rollback
from mlops.tracking.champion.sync import start_sync
from mlops.tracking.deploy import deploy_run
from mlops.tracking.jobs import JobRunner, Runner
from mlops.tracking.mlflow import ExperimentRecord, MlflowBackend, RunRecord, reads, writes
from mlops.tracking.optimize import Optimization, optimize
from mlops.tracking.plan import fit_count, plan_searches
from mlops.tracking.retrain import retrain
from mlops.tracking.schemas import (
    BestModelQuery,
    ChampionHistory,
    Deleted,
    ExperimentInformation,
    ExperimentList,
    ExperimentQuery,
    ExperimentSelector,
    GeneralQuery,
    JobAnswer,
    LineageQuery,
    ManagementAnswer,
    ModelManagement,
    OptimizationLogged,
    OptimizationRequest,
    ParametersQuery,
    PromotionRequest,
    RetrainingRequest,
    RollbackRequest,
    RunInformation,
    RunList,
    RunQuery,
    RunSelector,
)

log = logging.getLogger(__name__)
bp = ApiBlueprint("tracking", __name__)


@dataclass(frozen=True)
class TrackingResources:
    """What the tracking service keeps per app: its MLflow store and its runner of background jobs."""

    mlflow: MlflowBackend
    jobs: JobRunner


def mlflow_backend() -> MlflowBackend:
    """This app's MLflow backend store."""
    return service_resources(TrackingResources).mlflow


def champion_loop() -> Loop:
    """What the champion's moves work with: this app's MLflow store, dataset DB and settings."""
    return Loop(mlflow_backend(), dataset_engine(), current_settings(), service_state().metrics)


def _runs_of(experiment_id: str) -> tuple[ExperimentRecord, list[RunRecord]]:
    backend = mlflow_backend()
    experiment = reads.get_experiment(backend, experiment_id)
    return experiment, reads.list_runs(backend, [experiment.experiment_id])


@bp.operation(
    "/root/tracking/model_management",
    "POST",
    body=ModelManagement,
    responses={
        201: Answer("Optimization logged: experiment id and one run id per model", OptimizationLogged),
        202: Answer(
            'With "wait": false: the optimization is queued; its job (GET /root/tracking/jobs/<job_id>)', JobAnswer
        ),
        200: Answer(
            "Setting: the ML service's answer, relayed. Retraining: the gate's decision and both models' "
            "scores. Promotion, rollback: the champion's move",
            ManagementAnswer,
        ),
        400: "Invalid request, grid, scoring or cv; or a model's grid search failed (its run is FAILED)",
        404: "Run or registered version not found",
        409: "A set is not loaded, the experiment name is deleted, the run has no model, there is no "
        "champion (to retrain from or roll back) or no earlier one, or the champion moved meanwhile",
        500: "The model could not be stored in the MLflow artifact store (its run is FAILED)",
        502: "The ML service refused the tracking service's token, or failed",
        503: "The ML service, the MLflow store or the Dask cluster (MLOPS_DASK_SCHEDULER) is unreachable",
    },
    examples=examples.MODEL_MANAGEMENT_EXAMPLES,
)
def model_management(body: ModelManagement):
    """Run a grid-search optimization logged to MLflow, or deploy a run's model to the ML service."""
    request = body.root
    if isinstance(request, OptimizationRequest):
        if not request.wait:
            plan_searches(request, current_settings())  # a bad grid is a 400 now, not a failed job
            job = job_runner().submit(request.model_dump(mode="json"), fit_count(request))
            headers = {"Location": f"/root/tracking/jobs/{job.job_id}"}
            return {"message": "Optimization accepted", "data": job.to_json()}, 202, headers
        return optimization_answer(
            optimize(mlflow_backend(), dataset_engine(), current_settings(), request, metrics=service_state().metrics)
        )
    if isinstance(request, RetrainingRequest):
        data = retrain(champion_loop(), request)
        message = "Challenger promoted" if data["decision"] == "promoted" else "Champion kept"
        return {"message": message, "data": data}
    if isinstance(request, PromotionRequest):
        event, previous = promote(
            champion_loop(),
            request.version,
            action="requested",
            by="promotion request",
            reason=request.reason or "promotion requested",
        )
        return {"message": f"Version {event['champion']} is the champion", "data": move_view(event, previous)}
    if isinstance(request, RollbackRequest):
        event, previous = rollback(
            champion_loop(), by="rollback request", reason=request.reason or "rollback requested"
        )
        return {"message": f"Rolled back to version {event['champion']}", "data": move_view(event, previous)}
    reply = deploy_run(mlflow_backend(), current_settings(), request.run_id)
    return reply.body, reply.status


def move_view(event: dict[str, Any], previous) -> dict[str, Any]:
    """The answer to a promotion or rollback: the champion now, the one it replaced, the event."""
    return {"champion": event["champion"], "previous": previous.version if previous else None, "event": event}


@bp.operation(
    "/root/tracking/model_management",
    "GET",
    responses={
        200: Answer(
            "The champion, what the ML service serves, and the champion's history (oldest first)", ChampionHistory
        )
    },
    examples=examples.CHAMPION_EXAMPLES,
)
def champion_history():
    """Tell which registered version is the champion, whether the ML service serves it, and who moved it when and why."""
    return {"message": "Champion history retrieved", "data": champion_report(champion_loop())}


def optimization_answer(result: Optimization) -> tuple[dict[str, Any], int]:
    """The walkthrough's answer to an optimization."""
    data = {"experiment_id": result.experiment_id, "run_ids": result.run_ids}
    return {"message": "Experiments retrieved successfully", "data": data}, 201


@bp.operation(
    "/root/tracking/jobs/<job_id>",
    "GET",
    responses={
        200: Answer("The job: state, fits done of total, elapsed seconds, and its answer once ended", JobAnswer),
        404: "No such job",
    },
    examples=examples.JOB_EXAMPLES,
)
def get_job(job_id: str):
    """Tell how far an optimization sent with "wait": false has got, and its answer once done."""
    if len(job_id) > 64:
        raise NotFound("No optimization job with such an id", error="Job not found")
    return {"message": "Job retrieved", "data": job_runner().get(job_id).to_json()}


def job_runner() -> JobRunner:
    """This app's runner of background optimizations."""
    return service_resources(TrackingResources).jobs


def run_optimization_job(state: ServiceState, backend: MlflowBackend) -> Runner:
    """What a job does: the optimization the blocking request would run, with its answer."""

    def run(body: dict[str, Any], on_fits_done) -> tuple[int, dict[str, Any]]:
        request = OptimizationRequest.model_validate(body)
        answer, status = optimization_answer(
            optimize(backend, state.engine, state.settings, request, on_fits_done, metrics=state.metrics)
        )
        return status, answer

    return run


@bp.operation(
    "/root/tracking/experiments",
    "GET",
    responses={200: Answer("The active experiments", ExperimentList)},
    examples=query_examples.EXPERIMENT_LIST_EXAMPLES,
)
def list_experiments():
    """List the active experiments with their number of runs."""
    counts = reads.count_runs(mlflow_backend())
    return {"message": "Experiments retrieved successfully", "data": queries.experiments_overview(counts)}


@bp.operation(
    "/root/tracking/experiments",
    "POST",
    body=ExperimentQuery,
    responses={
        200: Answer("The information asked for", ExperimentInformation),
        404: "Experiment not found, or no run has the metrics",
    },
    examples=query_examples.EXPERIMENT_QUERY_EXAMPLES,
)
def query_experiment(body: ExperimentQuery):
    """Tell about one experiment: general information, its best run, or statistics of its runs."""
    query = body.root
    experiment, runs = _runs_of(query.experiment_id)
    if isinstance(query, GeneralQuery):
        return {"message": "Information Retrieved", "data": queries.experiment_general(experiment, runs)}
    if isinstance(query, BestModelQuery):
        best = queries.best_run(experiment.experiment_id, runs, query.filter)
        return {"message": "Best model and run retrieved successfully.", "data": best}
    names = queries.statistic_names(query.filter)
    return {
        "message": "Statistics Retrieved",
        "data": queries.experiment_statistics(experiment.experiment_id, runs, names),
    }


@bp.operation(
    "/root/tracking/experiments",
    "DELETE",
    query=ExperimentSelector,
    responses={200: Answer("Experiment deleted (MLflow's soft delete)", Deleted), 404: "Experiment not found"},
    examples=query_examples.EXPERIMENT_DELETE_EXAMPLES,
)
def delete_experiment(query: ExperimentSelector):
    """Delete an experiment and its runs (they move to MLflow's "deleted" lifecycle stage)."""
    writes.delete_experiment(mlflow_backend(), query.experiment_id)
    return {"message": "Experiment deleted successfully", "data": {"experiment_id": query.experiment_id}}


@bp.operation(
    "/root/tracking/runs",
    "GET",
    query=ExperimentSelector,
    responses={
        200: Answer("The experiment's runs, newest first", RunList),
        404: "Experiment not found, or it has no runs",
    },
    examples=query_examples.RUN_LIST_EXAMPLES,
)
def list_runs(query: ExperimentSelector):
    """List an experiment's runs with status, times, name and tags, newest first."""
    experiment, runs = _runs_of(query.experiment_id)
    if not runs:
        raise NotFound(f"Experiment {experiment.experiment_id} has no runs", error="No runs found")
    return {"message": "Experiment Runs Retrieved", "data": [queries.run_summary(run) for run in runs]}


@bp.operation(
    "/root/tracking/runs",
    "POST",
    body=RunQuery,
    responses={
        200: Answer("The run's params or metrics (prefixes stripped), or its lineage", RunInformation),
        404: "Experiment or run not found",
    },
    examples=query_examples.RUN_QUERY_EXAMPLES,
)
def query_run(body: RunQuery):
    """Tell a run's params (data, grid_search, model), metrics (system, model) or lineage."""
    query = body.root
    run = reads.get_run(mlflow_backend(), query.run_id, query.experiment_id)
    if isinstance(query, LineageQuery):
        return {"message": "Lineage Retrieved", "data": run_lineage(champion_loop(), run.run_id)}
    if isinstance(query, ParametersQuery):
        data = queries.run_parameters(run, query.type)
    else:
        data = queries.run_metrics(run, query.type)
    return {"message": "Parameters Retrieved", "data": data}


@bp.operation(
    "/root/tracking/runs",
    "DELETE",
    query=RunSelector,
    responses={200: Answer("Run deleted (MLflow's soft delete)", Deleted), 404: "Experiment or run not found"},
    examples=query_examples.RUN_DELETE_EXAMPLES,
)
def delete_run(query: RunSelector):
    """Delete one run of an experiment (it moves to MLflow's "deleted" lifecycle stage)."""
    writes.delete_run(mlflow_backend(), query.experiment_id, query.run_id)
    data = {"experiment_id": query.experiment_id, "run_id": query.run_id}
    return {"message": "Run deleted successfully", "data": data}


def create_app(settings: Settings | None = None, *, warm_up: bool | None = None) -> Flask:
    """Build the tracking service's app.

    warm_up imports MLflow and prepares its store in a background thread, so that the first
    request does not pay for it; by default it happens when the settings come from the
    environment (the service started under gunicorn), not for apps built with given settings.
    """
    if warm_up is None:
        warm_up = settings is None
    settings = settings or Settings.from_env()
    backend = MlflowBackend.from_settings(settings)
    app = create_service_app(
        "tracking",
        "Tracking",
        settings,
        [bp],
        health_checks={"database": lambda state: ping(state.engine), "mlflow": lambda state: backend.ping()},
        ready_checks={"mlflow_store": lambda state: backend.require_ready()},
        resources=lambda state: TrackingResources(
            backend, JobRunner(lambda: state.engine, run_optimization_job(state, backend))
        ),
    )
    if warm_up:
        state = state_of(app)
        backend.open_in_background()
        threading.Thread(target=_recover_jobs, args=(state.resources.jobs,), name="recover-jobs", daemon=True).start()
        start_sync(Loop(backend, state.engine, settings, state.metrics))
    return app


def _recover_jobs(runner: JobRunner) -> None:
    try:
        runner.recover()
    except Exception as error:  # asked about, a job of a stopped process is still ended or resumed
        log.warning("could not look for the optimization jobs of stopped processes: %s", error)
