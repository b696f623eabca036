"""Everything the tracking service keeps in MLflow, behind plain functions.

This is the only module that imports mlflow, and it does so inside functions: `import mlflow`
costs seconds, and the service must start (and answer /health) without paying for it. An MLflow
upgrade touches this file only. Callers get plain records (ExperimentRecord, RunRecord) and the
kernel's errors (404, 409, 503), never MLflow's entities or exceptions.

MLflow is reached through MlflowClient objects bound to one backend store; nothing here sets
MLflow's process-wide tracking URI, so several apps (tests) and threads can use different
backends side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.metadata
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url

from mlops.kernel.catalogue import TRUSTED_TYPES
from mlops.kernel.config import Settings
from mlops.kernel.db import normalize_url
from mlops.kernel.errors import ApiError, BadRequest, Conflict, NotFound, Unavailable
from mlops.kernel.imports import import_heavy

log = logging.getLogger(__name__)

RUNS_PAGE_SIZE = 50_000  # MLflow's largest page of search_runs
FINISHED, FAILED = "FINISHED", "FAILED"
# Which process runs a run ("<host>:<pid>"), so that a run whose process died can be ended later.
PROCESS_TAG = "mlops.process"
# The artifact path of the best estimator inside its run, as in runs:/<run_id>/model.
MODEL_ARTIFACT = "model"


def import_libraries() -> None:
    """Import MLflow and the libraries an optimization uses, once (see import_heavy: the warm-up
    and a request may import them at the same time). Cheap once imported."""
    import_heavy(
        "joblib",
        "mlflow",
        "mlflow.entities",
        "mlflow.exceptions",
        "mlflow.models",
        "mlflow.sklearn",
        "mlflow.store.tracking.sqlalchemy_store",
        "numpy",
        "pandas",
        "skops.io",
        "sklearn.dummy",
        "sklearn.ensemble",
        "sklearn.metrics",
        "sklearn.model_selection",
        "sklearn.svm",
        "mlops.kernel.liblinear",
    )


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


@dataclass
class MlflowBackend:
    """One MLflow backend store (tracking and model registry in the same database), opened on
    first use and then shared by every thread of the process."""

    tracking_uri: str
    artifact_root: str
    lock_path: Path
    _client: Any = None  # mlflow.MlflowClient
    _experiment_store: Any = None  # mlflow's SqlAlchemyStore, for creating experiments
    _ping_engine: Engine | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Separate, so that /health answers while the store is being opened.
    _ping_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowBackend:
        """The backend the settings name (MLFLOW_TRACKING_URI, MLFLOW_ARTIFACT_ROOT)."""
        uri = normalize_url(settings.mlflow_uri)
        if not _is_database_uri(uri):
            raise ValueError(
                f"MLFLOW_TRACKING_URI must be a database URI (sqlite:///..., postgresql://...), got {uri!r}"
            )
        return cls(uri, settings.mlflow_artifacts, settings.data_dir.resolve() / "mlflow-schema.lock")

    def client(self):
        """The MlflowClient of this backend; the first call creates or migrates MLflow's schema."""
        with self._lock:
            if self._client is None:
                self._open()
            return self._client

    def experiment_store(self):
        """MLflow's store of this backend, which puts a new experiment's artifacts under
        <artifact_root>/<experiment_id> (MlflowClient alone would use ./mlruns)."""
        self.client()
        return self._experiment_store

    def open_in_background(self) -> None:
        """Import the libraries and prepare the store in a daemon thread, so the first request is fast."""
        threading.Thread(target=self._warm_up, name="mlflow-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            self.client()
        except Exception as error:  # the first request will open it again and report the problem
            log.warning("could not prepare the MLflow store in advance: %s", error)

    def _open(self) -> None:
        started = time.perf_counter()
        import_libraries()
        from mlflow import MlflowClient
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        # MLflow retries an unreachable database for about 100 s; a quick check answers 503 now.
        try:
            self.ping()
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
            raise _store_unavailable(error) from error
        with _mlflow_errors():
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            # Several workers may start on an empty database at once; one creates the schema.
            with _file_lock(self.lock_path):
                _create_sqlite_schema(self.tracking_uri, self.artifact_root)
                store = SqlAlchemyStore(self.tracking_uri, self.artifact_root)
            if make_url(self.tracking_uri).get_backend_name() == "sqlite":
                from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore

                for engine in (store.engine, RegistryStore(self.tracking_uri).engine):
                    _use_write_ahead_log(engine)
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            end_orphaned_runs(client)
        except Exception:  # the service works without it; the runs stay RUNNING until next time
            log.exception("could not end the runs left RUNNING by stopped processes")
        self._client, self._experiment_store = client, store
        log.info("MLflow store %s ready in %.2f s", _safe_uri(self.tracking_uri), time.perf_counter() - started)

    def ping(self) -> None:
        """Raise if MLflow's backend database does not answer (cheap: no MLflow import)."""
        with self._ping_lock:
            if self._ping_engine is None:
                _make_sqlite_directory(self.tracking_uri)
                self._ping_engine = create_engine(
                    self.tracking_uri,
                    pool_pre_ping=True,
                    pool_size=1,
                    connect_args={"connect_timeout": 5} if self.tracking_uri.startswith("postgresql") else {},
                )
        with self._ping_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close the health check's connections (MLflow keeps its own engine per URI)."""
        if self._ping_engine is not None:
            self._ping_engine.dispose()


def _is_database_uri(uri: str) -> bool:
    try:
        return make_url(uri).get_backend_name() in ("sqlite", "postgresql", "mysql", "mssql")
    except exc.ArgumentError:
        return False


def _make_sqlite_directory(uri: str) -> None:
    url = make_url(uri)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def _create_sqlite_schema(uri: str, artifact_root: str) -> None:
    """Create MLflow's schema for a new SQLite store in a side file, then move it into place.

    MLflow's first migration takes seconds, and a process stopped during it would leave a
    half-made schema that MLflow refuses to open ever after.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    if path.exists() and path.stat().st_size > 0:  # /health's ping may have created it empty
        return
    # Under the schema lock, a side file still there was left by a process that was stopped.
    for stale in path.parent.glob(f"{path.name}.creating-*"):
        stale.unlink(missing_ok=True)
    side = path.with_name(f"{path.name}.creating-{os.getpid()}")
    SqlAlchemyStore(url.set(database=str(side)).render_as_string(hide_password=False), artifact_root).engine.dispose()
    os.replace(side, path)


def _use_write_ahead_log(engine: Engine) -> None:
    """Make an MLflow SQLite engine commit to a write-ahead log, synced at checkpoints rather than
    at every commit: logging a run takes a dozen commits, each otherwise waiting for several
    fsyncs. (A power cut may lose the last commits but never corrupts the file; the dataset DB
    does the same.)"""
    if not event.contains(engine, "connect", _write_ahead_log_pragmas):
        event.listen(engine, "connect", _write_ahead_log_pragmas)
        engine.dispose()  # connections opened before the listener reconnect with it


def _write_ahead_log_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _safe_uri(uri: str) -> str:
    return make_url(uri).render_as_string(hide_password=True)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _mlflow_errors() -> Iterator[None]:
    """Turn MLflow's errors into the kernel's: not found 404, store unreachable 503."""
    import_libraries()
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        status = error.get_http_status_code()
        if status == 404:
            raise NotFound(error.message) from error
        if status == 503:
            raise _store_unavailable(error) from error
        if 400 <= status < 500:  # a name or value MLflow refuses
            raise BadRequest(error.message, error="Refused by MLflow") from error
        raise
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        raise _store_unavailable(error) from error


def _store_unavailable(error: Exception) -> Unavailable:
    log.warning("MLflow store unavailable: %s", error)
    return Unavailable("The MLflow backend store is unavailable right now; retry shortly", error="MLflow unavailable")


# --- experiments -----------------------------------------------------------------------------


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


def find_or_create_experiment(backend: MlflowBackend, name: str, tags: dict[str, str]) -> str:
    """The id of the active experiment called name (created if new), with tags set on it."""
    import_libraries()
    from mlflow.entities import ExperimentTag
    from mlflow.exceptions import MlflowException

    client = backend.client()
    with _mlflow_errors():
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                tag_list = [ExperimentTag(k, v) for k, v in tags.items()]
                return backend.experiment_store().create_experiment(name, tags=tag_list)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                # Another request created it between our lookup and our insert: use theirs.
                experiment = client.get_experiment_by_name(name)
        if experiment.lifecycle_stage != "active":
            raise Conflict(
                f"The experiment {name!r} (id {experiment.experiment_id}) was deleted, and MLflow keeps "
                "deleted names until `mlflow gc` purges them: use another experiment_name",
                error="Experiment deleted",
            )
        for key, value in tags.items():
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id


def list_experiments(backend: MlflowBackend) -> list[ExperimentRecord]:
    """Every active experiment except MLflow's built-in "Default" one, oldest first."""
    import_libraries()
    from mlflow.entities import ViewType

    client = backend.client()
    with _mlflow_errors():
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


def get_experiment(backend: MlflowBackend, experiment_id: str) -> ExperimentRecord:
    """The active experiment with this id; unknown or deleted is a 404."""
    client = backend.client()
    missing = NotFound(f"Experiment {experiment_id!r} not found (unknown or deleted)", error="Experiment not found")
    # MLflow's database store numbers them with 64-bit integers (SQLite overflows beyond).
    if not (experiment_id.isascii() and experiment_id.isdigit()) or int(experiment_id) >= 2**63:
        raise missing
    try:
        with _mlflow_errors():
            experiment = client.get_experiment(experiment_id)
    except (NotFound, BadRequest):
        raise missing from None
    if experiment.lifecycle_stage != "active":
        raise missing
    return _experiment_record(experiment)


def delete_experiment(backend: MlflowBackend, experiment_id: str) -> None:
    """Soft-delete an active experiment and its runs (MLflow's lifecycle stage "deleted")."""
    get_experiment(backend, experiment_id)
    with _mlflow_errors():
        backend.client().delete_experiment(experiment_id)


# --- runs ------------------------------------------------------------------------------------


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
    with _mlflow_errors():
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
        with _mlflow_errors():
            run = backend.client().get_run(run_id)
    except (NotFound, BadRequest):
        raise missing from None
    record = _run_record(run)
    if record.lifecycle_stage != "active" or (experiment_id is not None and record.experiment_id != experiment_id):
        raise missing
    if experiment_id is None:
        get_experiment(backend, record.experiment_id)  # a run of a deleted experiment is gone too
    return record


def delete_run(backend: MlflowBackend, experiment_id: str, run_id: str) -> None:
    """Soft-delete one run of an experiment.

    Deleting an experiment deletes its runs with it; the walkthrough then deletes one of those
    runs, so a run of that experiment which went with it answers as deleted (nothing to do)
    rather than 404. A run deleted on its own before is a 404, like any unknown run.
    """
    client = backend.client()
    try:
        with _mlflow_errors():
            run = client.get_run(run_id)
            experiment = client.get_experiment(run.info.experiment_id)
    except (NotFound, BadRequest):
        run = experiment = None
    if run is not None and run.info.experiment_id == experiment_id and experiment.lifecycle_stage != "active":
        return
    get_run(backend, run_id, experiment_id)
    with _mlflow_errors():
        client.delete_run(run_id)


def start_run(backend: MlflowBackend, experiment_id: str, run_name: str, tags: dict[str, str]) -> str:
    """Create a RUNNING run and return its id; whoever starts it must end_run it, come what may.

    A process killed outright cannot end its runs; the next process of this host to open the
    store ends them FAILED (see end_orphaned_runs).
    """
    with _mlflow_errors():
        tags = {**tags, PROCESS_TAG: _this_process()}
        return backend.client().create_run(experiment_id, run_name=run_name, tags=tags).info.run_id


def end_run(backend: MlflowBackend, run_id: str, error: BaseException | None = None) -> None:
    """End a run FINISHED, or FAILED with the error as its `error` tag.

    Ending a run FAILED never raises (it is called while another error propagates); if MLflow
    cannot be reached the failure is logged and the run is ended by the next start.
    """
    import_libraries()
    from mlflow.entities import RunTag

    client = backend.client()
    if error is None:
        with _mlflow_errors():
            client.set_terminated(run_id, FINISHED)
        return
    try:
        with _mlflow_errors():
            client.log_batch(run_id, tags=[RunTag("error", str(error)[:5000] or type(error).__name__)])
            client.set_terminated(run_id, FAILED)
    except Exception:
        log.exception("could not mark run %s FAILED", run_id)


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def end_orphaned_runs(client) -> list[str]:
    """End FAILED the RUNNING runs started by processes of this host that no longer exist (a worker
    killed mid-optimization); return their ids. Runs of live processes or other hosts are left."""
    from mlflow.entities import RunTag, ViewType

    host = socket.gethostname()
    experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL, max_results=50_000)]
    if not experiment_ids:
        return []
    running = client.search_runs(
        experiment_ids,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{PROCESS_TAG}` LIKE '{host}:%'",
        run_view_type=ViewType.ALL,
        max_results=RUNS_PAGE_SIZE,
    )
    ended = []
    for run in running:
        run_host, _, pid = run.data.tags[PROCESS_TAG].rpartition(":")
        if run_host == host and pid.isdigit() and not _process_alive(int(pid)):
            message = "The tracking service process running this optimization stopped before it finished"
            client.log_batch(run.info.run_id, tags=[RunTag("error", message)])
            client.set_terminated(run.info.run_id, FAILED)
            ended.append(run.info.run_id)
    if ended:
        log.warning("ended %d run(s) left RUNNING by a stopped process: %s", len(ended), ", ".join(ended))
    return ended


def log_params_and_metrics(
    backend: MlflowBackend, run_id: str, params: dict[str, str], metrics: dict[str, float]
) -> None:
    """Log a run's params and metrics in one batch."""
    import_libraries()
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    with _mlflow_errors():
        backend.client().log_batch(
            run_id,
            params=[Param(key, value) for key, value in params.items()],
            metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        )


def log_model(backend: MlflowBackend, experiment_id: str, run_id: str, estimator, registered_name: str) -> str:
    """Log a fitted estimator as the run's model (skops, only TRUSTED_TYPES loadable) and register
    it as a new version of registered_name; return the version.

    This is what mlflow.sklearn.log_model(..., registered_model_name=...) does, done through this
    backend's client instead of MLflow's process-wide one, and without its costly steps:
    requirements are given (not inferred by reloading the model), no input example or signature.
    """
    import_libraries()
    import mlflow.sklearn
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    client = backend.client()
    with _mlflow_errors():
        logged = client.create_logged_model(
            experiment_id, name=MODEL_ARTIFACT, source_run_id=run_id, model_type=registered_name
        )
        try:
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            with tempfile.TemporaryDirectory(prefix="mlops-model-") as directory:
                path = os.path.join(directory, MODEL_ARTIFACT)
                description = Model(
                    artifact_path=logged.artifact_location,
                    model_uuid=logged.model_id,
                    run_id=run_id,
                    model_id=logged.model_id,
                )
                mlflow.sklearn.save_model(
                    estimator,
                    path,
                    mlflow_model=description,
                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                    skops_trusted_types=list(TRUSTED_TYPES),
                    pip_requirements=list(model_requirements()),
                )
                try:
                    client.log_model_artifacts(logged.model_id, path)
                except OSError as error:
                    raise ApiError(
                        f"Could not store the model under {logged.artifact_location} ({error}): check "
                        "MLFLOW_ARTIFACT_ROOT",
                        error="Artifact store error",
                    ) from error
        except BaseException:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        try:
            client.create_registered_model(registered_name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # The source is the artifact location itself: a models:/ source would make MLflow look
        # the model up through its process-wide tracking URI, not this backend.
        version = client.create_model_version(
            registered_name,
            source=logged.artifact_location,
            run_id=run_id,
            model_id=logged.model_id,
            await_creation_for=0,
        )
    return str(version.version)


@functools.cache
def model_requirements() -> tuple[str, ...]:
    """The pip requirements of a logged estimator, pinned to the versions that saved it."""
    # mlops-microservices provides mlops.kernel.liblinear.LogisticRegression.
    names = ("scikit-learn", "skops", "numpy", "scipy", "mlops-microservices")
    requirements = []
    for name in names:
        try:
            requirements.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            requirements.append(name)
    return tuple(requirements)
