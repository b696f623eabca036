"""The MLflow backend store's lifecycle: opening it (schema, write-ahead log), checking that it
answers, turning MLflow's errors into the kernel's, and ending runs whose process died."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, exc, inspect, text
from sqlalchemy.engine import make_url

from mlops.kernel.catalogue import SCIKIT_LEARN_MODULES
from mlops.kernel.config import Settings
from mlops.kernel.db import normalize_url
from mlops.kernel.errors import BadRequest, NotFound, Unavailable
from mlops.kernel.imports import behind_other_work, import_heavy
from mlops.kernel.launch import pid_alive
from mlops.kernel.outages import MLFLOW_STORE, QuietOutages, outage
from mlops.tracking.mlflow.files import (
    create_sqlite_schema,
    file_lock,
    make_sqlite_directory,
    make_sqlite_store,
    use_write_ahead_log,
)
from mlops.tracking.mlflow.naming import PROCESS_TAG

log = logging.getLogger(__name__)

RUNS_PAGE_SIZE = 50_000  # MLflow's largest page of search_runs
FINISHED, FAILED = "FINISHED", "FAILED"


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
        *SCIKIT_LEARN_MODULES,
    )
    # MLflow logs each failed query with two chained tracebacks; an outage is logged once, by us
    logging.getLogger("mlflow.store.db.utils").addFilter(_QUIET_OUTAGES)


_QUIET_OUTAGES = QuietOutages()


@dataclass
class MlflowBackend:
    """One MLflow backend store (tracking and model registry in the same database), opened on
    first use and then shared by every thread of the process."""

    tracking_uri: str
    artifact_root: str
    lock_path: Path
    _client: Any = None  # mlflow.MlflowClient
    _experiment_store: Any = None  # mlflow's SqlAlchemyStore, for creating experiments
    _engine: Engine | None = None  # plain SQLAlchemy, no MLflow: the health check and tables.py's reads
    _has_tables: bool = False
    _opening_since: float | None = None  # time.monotonic() when a thread began opening the store
    _open_failure: str | None = None  # why the last attempt to open it failed
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Separate, so that /health answers while the store is being opened.
    _ping_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowBackend:
        """The backend the settings name (MLFLOW_TRACKING_URI, MLFLOW_ARTIFACT_ROOT)."""
        uri = normalize_url(settings.mlflow_uri)
        if not (_is_database_uri(uri) or _is_server_uri(uri)):
            raise ValueError(
                "MLFLOW_TRACKING_URI must be a database URI (sqlite:///..., postgresql://...) or an MLflow "
                f"tracking server (http://host:5000), got {uri!r}"
            )
        return cls(uri, settings.mlflow_artifacts, settings.data_dir.resolve() / "mlflow-schema.lock")

    @property
    def on_server(self) -> bool:
        """Whether the store is an MLflow tracking server reached over HTTP (`mlflow server
        --serve-artifacts`: it keeps the artifacts too, so no shared filesystem is needed)."""
        return _is_server_uri(self.tracking_uri)

    def client(self):
        """The MlflowClient of this backend; the first call creates or migrates MLflow's schema."""
        with self._lock:
            if self._client is None:
                self._opening_since = self._opening_since or time.monotonic()
                try:
                    self._open()
                    self._open_failure = None
                except Exception as error:
                    self._open_failure = str(error) or type(error).__name__
                    raise
                finally:
                    self._opening_since = None
            return self._client

    def experiment_store(self):
        """MLflow's store of this backend, which puts a new experiment's artifacts under
        <artifact_root>/<experiment_id> (MlflowClient alone would use ./mlruns)."""
        self.client()
        return self._experiment_store

    def open_in_background(self) -> None:
        """Import the libraries and prepare the store in a daemon thread, so the first request is fast."""
        self._opening_since = self._opening_since or time.monotonic()
        threading.Thread(target=self._warm_up, name="mlflow-warm-up", daemon=True).start()

    def require_ready(self) -> None:
        """Readiness: a database store once MLflow's tables answer (the experiment list needs no
        more; a request that needs MLflow waits for its import, under way in the background), a
        tracking server or a database without MLflow's tables yet once MLflow has opened the store."""
        if self.on_server or not self._found_tables():
            self.require_open()

    def require_open(self) -> None:
        """Return if the store is open, else say why not (NotReady), opening it in the background
        unless a thread is at it already."""
        from mlops.kernel.web.state import NotReady

        if self._client is not None:
            return
        since = self._opening_since
        if since is not None:
            raise NotReady(f"the MLflow store is being opened ({time.monotonic() - since:.1f} s so far)")
        failure = self._open_failure
        self.open_in_background()
        if failure:
            raise NotReady(f"the MLflow store could not be opened ({failure}); trying again")
        raise NotReady("the MLflow store is not open yet; opening it now")

    def _warm_up(self) -> None:
        # at a stack's start the other services' workers import their own libraries on the same
        # cores, and this service answers its experiment list without MLflow meanwhile
        behind_other_work()
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
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, OSError) as error:
            raise _store_unavailable(error) from error
        if self.on_server:
            self._open_server(started)
            return
        with mlflow_errors():
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            # Several workers may start on an empty database at once; one creates the schema.
            with file_lock(self.lock_path):
                if create_sqlite_schema(self.tracking_uri, self.artifact_root):
                    self.database().dispose()  # its connections still see the empty file the health check made
                store = SqlAlchemyStore(self.tracking_uri, self.artifact_root)
            if make_url(self.tracking_uri).get_backend_name() == "sqlite":
                from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore

                for engine in (store.engine, RegistryStore(self.tracking_uri).engine):
                    use_write_ahead_log(engine)
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            end_orphaned_runs(client)
        except Exception:  # the service works without it; the runs stay RUNNING until next time
            log.exception("could not end the runs left RUNNING by stopped processes")
        self._client, self._experiment_store = client, store
        log.info("MLflow store %s ready in %.2f s", _safe_uri(self.tracking_uri), time.perf_counter() - started)

    def _open_server(self, started: float) -> None:
        """Open a tracking server's store: the server owns the schema and the artifact root."""
        from mlflow import MlflowClient
        from mlflow.store.tracking.rest_store import RestStore
        from mlflow.utils.rest_utils import MlflowHostCreds

        with mlflow_errors():
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            store = RestStore(lambda: MlflowHostCreds(self.tracking_uri))
        try:
            end_orphaned_runs(client)
        except Exception:  # the service works without it; the runs stay RUNNING until next time
            log.exception("could not end the runs left RUNNING by stopped processes")
        self._client, self._experiment_store = client, store
        log.info("MLflow tracking server %s ready in %.2f s", self.tracking_uri, time.perf_counter() - started)

    def tables(self) -> Engine:
        """A plain engine on a database store with MLflow's tables, for tables.py: a new SQLite store
        is copied from the template now (milliseconds), another database gets them from MLflow."""
        if not self._found_tables():
            self.client()  # MLflow's migrations make them (seconds)
        return self.database()

    def _found_tables(self) -> bool:
        """Whether MLflow's tables are there (made now if this is a new SQLite store); 503 if the
        database does not answer."""
        if not self._has_tables:
            engine = self.database()
            with database_errors():
                if not inspect(engine).has_table("experiments"):
                    make_sqlite_store(self)  # unless another thread or worker made it meanwhile
                    engine.dispose()  # its connections may still see the empty file the health check made
                self._has_tables = inspect(engine).has_table("experiments")
        return self._has_tables

    def database(self) -> Engine:
        """A plain SQLAlchemy engine on the store's database (no MLflow import)."""
        with self._ping_lock:
            if self._engine is None:
                make_sqlite_directory(self.tracking_uri)
                self._engine = create_engine(
                    self.tracking_uri,
                    pool_pre_ping=True,
                    pool_size=4,  # a worker's threads
                    connect_args={"connect_timeout": 5} if self.tracking_uri.startswith("postgresql") else {},
                )
            return self._engine

    def ping(self) -> None:
        """Raise if MLflow's backend database (or tracking server) does not answer (cheap: no
        MLflow import)."""
        if self.on_server:
            import requests

            try:
                requests.get(f"{self.tracking_uri.rstrip('/')}/health", timeout=5).raise_for_status()
            except requests.RequestException as error:
                raise ConnectionError(f"MLflow tracking server {self.tracking_uri}: {error}") from error
            return
        with self.database().connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close the plain engine's connections (MLflow keeps its own engine per URI)."""
        if self._engine is not None:
            self._engine.dispose()


def _is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _is_database_uri(uri: str) -> bool:
    try:
        return make_url(uri).get_backend_name() in ("sqlite", "postgresql", "mysql", "mssql")
    except exc.ArgumentError:
        return False


def _safe_uri(uri: str) -> str:
    if _is_server_uri(uri):
        return uri
    return make_url(uri).render_as_string(hide_password=True)


@contextlib.contextmanager
def mlflow_errors() -> Iterator[None]:
    """Turn MLflow's errors into the kernel's: not found 404, store unreachable 503."""
    import_libraries()
    from mlflow.exceptions import MlflowException

    try:
        yield
        outage(MLFLOW_STORE).recovered()
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


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Plain SQL on the store's database: unreachable is a 503, as through MLflow (no MLflow import)."""
    try:
        yield
        outage(MLFLOW_STORE).recovered()
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        raise _store_unavailable(error) from error


def _store_unavailable(error: Exception) -> Unavailable:
    outage(MLFLOW_STORE).failed(error)
    return Unavailable("The MLflow backend store is unavailable right now; retry shortly", error="MLflow unavailable")


def this_process() -> str:
    """This process as PROCESS_TAG names it: "<host>:<pid>"."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
        if run_host == host and pid.isdigit() and not pid_alive(int(pid)):
            message = "The tracking service process running this optimization stopped before it finished"
            client.log_batch(run.info.run_id, tags=[RunTag("error", message)])
            client.set_terminated(run.info.run_id, FAILED)
            ended.append(run.info.run_id)
    if ended:
        log.warning("ended %d run(s) left RUNNING by a stopped process: %s", len(ended), ", ".join(ended))
    return ended
