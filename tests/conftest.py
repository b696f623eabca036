"""Fixtures shared by every test: a dataset database on each backend, settings, apps."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text

from mlops.kernel.config import Settings
from mlops.kernel.db import make_engine, normalize_url
from mlops.kernel.launch import pid_alive
from tests.support.databases import BACKENDS, POSTGRES_ADMIN_URL


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL databases, all dropped when the session ends.

    Every test gets its own database, so tests (and developers running them side by side) never
    see each other's rows. A PostgreSQL that does not answer fails the tests: it is the
    production database and every DB test must run on it too.
    """
    admin = create_engine(normalize_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    created: list[str] = []
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    drop_abandoned_databases(admin)

    def create() -> str:
        name = f"mlops_t_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return f"{base}/{name}"

    yield create
    with admin.connect() as connection:
        for name in created:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# A test database's name carries the pid of the test session that made it.
SESSION_DATABASE = re.compile(r"mlops_t_(\d+)_[0-9a-f]{12}")


def drop_abandoned_databases(admin) -> None:
    """Drop the test databases of sessions that ended without dropping them (killed): their pid
    is no longer alive. Sessions running side by side keep theirs."""
    with admin.connect() as connection:
        names = connection.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'mlops_t_%'")).scalars()
        for name in list(names):
            match = SESSION_DATABASE.fullmatch(name)
            if match and not pid_alive(int(match.group(1))):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, postgres_database) -> str:
    """A fresh dataset database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dataset.db'}"
    return postgres_database()


@pytest.fixture
def engine(db_url):
    """An engine on a fresh dataset database (both backends), schema created."""
    from mlops.kernel.db import ensure_schema

    engine = make_engine(db_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path, db_url) -> Settings:
    """Settings for an app under test: its own data dir and dataset database."""
    return Settings(data_dir=tmp_path, dataset_db_url=db_url)


@pytest.fixture
def start_service(tmp_path):
    """Start services as real gunicorn processes; all are stopped at the end of the test.

    Usage: ``start_service("ml", settings)``; the settings' port for that service is used, so
    give each test free ports (tests.support.processes.free_port) to let tests run side by side.
    """
    from tests.support.processes import ServiceProcess

    started: list[ServiceProcess] = []

    def start(service: str, settings: Settings, *, workers: int = 1, timeout: float = 60.0) -> ServiceProcess:
        process = ServiceProcess(service, settings, tmp_path / f"{service}.log", workers=workers)
        started.append(process)
        return process.start(timeout)

    yield start
    import gc

    gc.collect()  # closes the test's finished responses' connections, which would delay the stop
    # SIGTERM them all first: each may wait a few seconds for the test's idle keep-alive
    # connections (gunicorn's graceful timeout), and those waits then overlap.
    for process in reversed(started):
        if process.process and process.process.poll() is None:
            process.process.terminate()
    for process in reversed(started):
        process.stop()


@pytest.fixture
def service_settings(tmp_path, db_url) -> Settings:
    """Settings with free ports for every service, for tests that start real processes."""
    from tests.support.processes import settings_on_free_ports

    return settings_on_free_ports(
        data_dir=tmp_path,
        dataset_db_url=db_url,
    )
