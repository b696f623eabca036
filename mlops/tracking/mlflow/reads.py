"""Reading experiments and runs from MLflow as plain records (ExperimentRecord, RunRecord)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mlops.kernel.errors import BadRequest, NotFound
from mlops.tracking.mlflow import tables
from mlops.tracking.mlflow.store import RUNS_PAGE_SIZE, MlflowBackend, database_errors, import_libraries, mlflow_errors


@dataclass(frozen=True)
class ExperimentRecord:
    """An MLflow experiment as the API shows it; times in epoch milliseconds."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str]
    creation_time: int | None
    last_update_time: int | None


@dataclass(frozen=True)
class RunRecord:
    """An MLflow run with its data; times in epoch milliseconds (end_time None while running)."""

    run_id: str
    experiment_id: str
    run_name: str
    status: str
    lifecycle_stage: str
    start_time: int | None
    end_time: int | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


def _experiment_record(experiment) -> ExperimentRecord:
    return ExperimentRecord(
        experiment_id=experiment.experiment_id,
        name=experiment.name,
        artifact_location=experiment.artifact_location,
        lifecycle_stage=experiment.lifecycle_stage,
        tags=dict(experiment.tags),
        creation_time=experiment.creation_time,
        last_update_time=experiment.last_update_time,
    )


def list_experiments(backend: MlflowBackend) -> list[ExperimentRecord]:
    """Every active experiment except MLflow's built-in "Default" one, oldest first."""
    import_libraries()
    from mlflow.entities import ViewType

    client = backend.client()
    with mlflow_errors():
        experiments, token = [], None
        while True:
            page = client.search_experiments(
                view_type=ViewType.ACTIVE_ONLY, max_results=1000, order_by=["creation_time ASC"], page_token=token
            )
            experiments.extend(page)
            token = page.token
            if not token:
                break
    # MLflow creates experiment 0 ("Default") in every store; this service never logs to it.
    return [_experiment_record(e) for e in experiments if e.experiment_id != "0"]


def count_runs(backend: MlflowBackend) -> list[tables.ExperimentCount]:
    """Every active experiment except Default, oldest first, with its number of active runs: one
    query on MLflow's tables (no MLflow import), or through MLflow's client on a tracking server."""
    if not backend.on_server:
        with database_errors(), backend.tables().connect() as connection:
            return tables.count_runs(connection)
    experiments = list_experiments(backend)
    counts = Counter(run.experiment_id for run in list_runs(backend, [e.experiment_id for e in experiments]))
    return [
        tables.ExperimentCount(e.experiment_id, e.name, e.lifecycle_stage, counts[e.experiment_id]) for e in experiments
    ]


def get_experiment(backend: MlflowBackend, experiment_id: str) -> ExperimentRecord:
    """The active experiment with this id; unknown or deleted is a 404."""
    client = backend.client()
    missing = NotFound(f"Experiment {experiment_id!r} not found (unknown or deleted)", error="Experiment not found")
    # MLflow's database store numbers them with 64-bit integers (SQLite overflows beyond).
    if not (experiment_id.isascii() and experiment_id.isdigit()) or int(experiment_id) >= 2**63:
        raise missing
    try:
        with mlflow_errors():
            experiment = client.get_experiment(experiment_id)
    except (NotFound, BadRequest):
        raise missing from None
    if experiment.lifecycle_stage != "active":
        raise missing
    return _experiment_record(experiment)


def _run_record(run) -> RunRecord:
    info = run.info
    return RunRecord(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        run_name=info.run_name,
        status=info.status,
        lifecycle_stage=info.lifecycle_stage,
        start_time=info.start_time,
        end_time=info.end_time,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


def list_runs(backend: MlflowBackend, experiment_ids: list[str]) -> list[RunRecord]:
    """The active runs of these experiments, newest first (MLflow's order)."""
    if not experiment_ids:
        return []
    client = backend.client()
    runs, token = [], None
    with mlflow_errors():
        while True:
            page = client.search_runs(experiment_ids, max_results=RUNS_PAGE_SIZE, page_token=token)
            runs.extend(_run_record(run) for run in page)
            token = page.token
            if not token:
                return runs


def get_run(backend: MlflowBackend, run_id: str, experiment_id: str | None = None) -> RunRecord:
    """The active run with this id (in that experiment if one is given); anything else is a 404."""
    if experiment_id is not None:
        get_experiment(backend, experiment_id)
    where = f" in experiment {experiment_id!r}" if experiment_id is not None else ""
    missing = NotFound(f"Run {run_id!r} not found{where} (unknown or deleted)", error="Run not found")
    try:
        with mlflow_errors():
            run = backend.client().get_run(run_id)
    except (NotFound, BadRequest):
        raise missing from None
    record = _run_record(run)
    if record.lifecycle_stage != "active" or (experiment_id is not None and record.experiment_id != experiment_id):
        raise missing
    if experiment_id is None:
        get_experiment(backend, record.experiment_id)  # a run of a deleted experiment is gone too
    return record
