"""Start services as real processes (gunicorn) for end-to-end tests, and stop or kill them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from mlops.kernel.config import SERVICE_NAMES, Settings

# settings_environment lives in the kernel (the `mlops` command needs it too); re-exported here
from mlops.kernel.launch import gunicorn_command, settings_environment  # noqa: F401


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_on_free_ports(**fields) -> Settings:
    """Settings with every service on a port nobody listens on now, plus the given fields."""
    return Settings(**{f"{service}_port": free_port() for service in SERVICE_NAMES} | fields)


@dataclass
class ServiceProcess:
    """One service running under gunicorn, its output in a log file."""

    service: str
    settings: Settings
    log_path: Path
    workers: int = 1
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port_of(self.service)}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        env = {**os.environ, **settings_environment(self.settings)}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            gunicorn_command(self.service, self.settings, workers=self.workers),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.service} exited at start:\n{self.log_path.read_text()[-4000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or its first /health is still warming up (e.g. MLflow's schema)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.service} did not answer /health in {timeout} s:\n{self.log_path.read_text()[-4000:]}"
        )

    def kill(self) -> None:
        """kill -9 the whole process group (master and workers), as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM the gunicorn master, which stops its workers gracefully."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
