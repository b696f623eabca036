"""The MLflow store's files on this host: a new SQLite store made from a copy of an empty one
(the template), its directory and write-ahead log, and the file locks that serialize making it."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_sqlite_directory(uri: str) -> None:
    url = make_url(uri)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def make_sqlite_store(backend) -> bool:
    """Make a new SQLite store of an MlflowBackend (a copy of the template), under the lock that
    opening the store takes; whether it made one (False: not SQLite, or already there)."""
    if make_url(backend.tracking_uri).get_backend_name() != "sqlite":
        return False
    backend.lock_path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(backend.lock_path):
        return create_sqlite_schema(backend.tracking_uri, backend.artifact_root)


def create_sqlite_schema(uri: str, artifact_root: str) -> bool:
    """Create MLflow's schema for a new SQLite store in a side file, then move it into place;
    return whether it did (False: not a new SQLite store).

    The side file is a copy of an empty store of this MLflow version (schema_template), made
    once per machine: MLflow's migrations take seconds, a copy milliseconds. A process stopped
    while the file is made leaves only a side file, never a half-made store that MLflow would
    refuse to open ever after.
    """
    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return False
    path = Path(url.database)
    if path.exists() and path.stat().st_size > 0:  # /health's ping may have created it empty
        return False
    # Under the schema lock, a side file still there was left by a process that was stopped.
    for stale in path.parent.glob(f"{path.name}.creating-*"):
        stale.unlink(missing_ok=True)
    side = path.with_name(f"{path.name}.creating-{os.getpid()}")
    template = schema_template()
    if template is not None:
        shutil.copyfile(template, side)
    else:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(
            url.set(database=str(side)).render_as_string(hide_password=False), artifact_root
        ).engine.dispose()
    os.replace(side, path)
    return True


def schema_template() -> Path | None:
    """An empty SQLite store of the installed MLflow version, made the first time it is needed
    (under $XDG_CACHE_HOME/mlops, else ~/.cache/mlops); None if it cannot be made there.

    MLflow writes its default experiment, with the artifact location of the store it creates,
    on first open: the template has it removed, so each copy gets its own on first open.
    """
    version = importlib.metadata.version("mlflow")  # not `import mlflow` (seconds) when the template exists
    directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops"
    template = directory / f"mlflow-{version}-empty-store.db"
    if template.exists():
        return template
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    try:
        directory.mkdir(parents=True, exist_ok=True)
        with file_lock(directory / f"{template.name}.lock"):
            if template.exists():
                return template
            started = time.perf_counter()
            side = template.with_name(f"{template.name}.creating-{os.getpid()}")
            side.unlink(missing_ok=True)
            SqlAlchemyStore(f"sqlite:///{side}", directory.as_uri()).engine.dispose()
            with contextlib.closing(sqlite3.connect(side)) as connection, connection:
                connection.execute("DELETE FROM experiment_tags")
                connection.execute("DELETE FROM experiments")
            os.replace(side, template)
            log.info(
                "made the empty MLflow %s store %s in %.2f s",
                version,
                template,
                time.perf_counter() - started,
            )
    except (OSError, sqlite3.Error) as error:
        log.warning("no MLflow store template under %s (%s): each new store runs MLflow's migrations", directory, error)
        return None
    return template


def use_write_ahead_log(engine: Engine) -> None:
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
