"""A Dask cluster as real processes (`dask scheduler`, `dask worker`), for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import free_port


@dataclass
class DaskProcesses:
    """A scheduler and `workers` single-threaded workers, each a process with its log in log_dir."""

    log_dir: Path
    workers: int = 2
    threads_per_worker: int = 1
    port: int = field(default_factory=free_port)
    scheduler: subprocess.Popen | None = field(default=None, init=False)
    worker_processes: list[subprocess.Popen] = field(default_factory=list, init=False)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _start(self, name: str, *arguments: str) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        dask = str(Path(sys.executable).with_name("dask"))
        return subprocess.Popen(
            [dask, *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # one BLAS thread per worker thread, as a nanny-started worker (docker-compose.yml) has:
            # more would fight over the same cores
            env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )

    def start(self, timeout: float = 60.0) -> DaskProcesses:
        """Start the scheduler and the workers; return once every worker has joined."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.scheduler = self._start(
            "dask-scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--dashboard-address", ":0"
        )
        for number in range(self.workers):
            self.worker_processes.append(
                self._start(
                    f"dask-worker-{number}",
                    "worker",
                    self.address,
                    "--nthreads",
                    str(self.threads_per_worker),
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    f"worker-{number}",
                )
            )
        self.wait_for_workers(self.workers, timeout)
        return self

    def wait_for_workers(self, count: int, timeout: float) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        while True:
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"the Dask scheduler exited:\n{self.log('dask-scheduler')}")
            try:
                with Client(self.address, timeout=5, set_as_default=False) as client:
                    client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError) as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{count} Dask workers did not join {self.address}: {error}") from error
                time.sleep(0.2)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill_scheduler(self) -> None:
        """Kill the scheduler outright (SIGKILL), as a crash would."""
        _kill(self.scheduler, signal.SIGKILL)

    def stop(self) -> None:
        for process in [*self.worker_processes, self.scheduler]:
            _kill(process, signal.SIGTERM)
        for process in [*self.worker_processes, self.scheduler]:
            if process is None:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill(process, signal.SIGKILL)
                process.wait(timeout=5)

    def __enter__(self) -> DaskProcesses:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _kill(process: subprocess.Popen | None, sig: int) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
