"""A whole stack started by `mlops up --detach` for the user-facing walkthrough clients (newman,
scripts/walkthrough.sh): free ports, a temporary data dir, once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from mlops.kernel.config import SERVICE_NAMES
from tests.support.cli import MLOPS, LiveStack, clean_environment
from tests.support.processes import free_port


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def live_stack(request, tmp_path_factory, postgres_database) -> Iterator[LiveStack]:
    """The four services under gunicorn on free ports; the dataset DB and MLflow store on the backend.

    Session-scoped: the Postman collection and the curl walkthrough run one after the other on
    the same stores, as people rerun them on a stack that keeps its data.
    """
    data_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    ports = {service: free_port() for service in SERVICE_NAMES}
    flags = ["--data-dir", str(data_dir), "--host", "127.0.0.1"]
    flags += [arg for service, port in ports.items() for arg in (f"--{service}-port", str(port))]
    if request.param == "postgresql":
        flags += ["--dataset-db-url", postgres_database(), "--mlflow-tracking-uri", postgres_database()]
    stack = LiveStack(request.param, data_dir, {s: f"http://127.0.0.1:{p}" for s, p in ports.items()})
    environment = clean_environment()
    try:
        started = subprocess.run(
            [*MLOPS, "up", "--detach", *flags], capture_output=True, text=True, timeout=300, env=environment
        )
        if started.returncode != 0:
            pytest.fail(f"mlops up failed ({started.returncode}):\n{started.stdout}\n{started.stderr}\n{stack.logs()}")
        yield stack
    finally:
        stopped = subprocess.run(
            [*MLOPS, "down", "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120, env=environment
        )
        assert stopped.returncode == 0, f"mlops down failed:\n{stopped.stdout}\n{stopped.stderr}"
