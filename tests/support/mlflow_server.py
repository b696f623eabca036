"""MLflow's tracking server with its artifact proxy (`mlflow server --serve-artifacts`) as a real
process, as docker-compose.yml runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.processes import free_port


@dataclass
class MlflowServer:
    """`mlflow server` on backend_store_uri, keeping uploaded artifacts under artifacts_dir."""

    backend_store_uri: str
    artifacts_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> MlflowServer:
        """Start it and return once /health answers (a fresh store first runs MLflow's migrations)."""
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.backend_store_uri,
            "--serve-artifacts", "--artifacts-destination", self.artifacts_dir.resolve().as_uri(),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip  # each flag beside its value, as on a command line
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited at start:\n{self.log_path.read_text()[-4000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer /health in {timeout} s:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
