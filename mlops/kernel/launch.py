"""How each service is started as a real process: gunicorn serving the service's app factory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlops.kernel.config import ENVIRONMENT_VARIABLES, Settings

# short name -> gunicorn app spec (module:factory call); the order is the start order
SERVICE_APPS = {
    "simulator": "mlops.simulator.app:create_app()",
    "ml": "mlops.ml.app:create_app()",
    "tracking": "mlops.tracking.app:create_app()",
    "monitoring": "mlops.monitoring.app:create_app()",
}


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment variables that make Settings.from_env() return these settings."""
    env = {}
    for name, variable in ENVIRONMENT_VARIABLES.items():
        value = getattr(settings, name)
        if value in ("", None):
            continue
        env[variable] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


# gunicorn's --keep-alive, for the threaded workers (the ML service's sync workers close every connection)
KEEP_ALIVE_SECONDS = 30


def worker_count(service: str, settings: Settings) -> int:
    """How many gunicorn workers serve `service` (the ML service at least ML_WORKERS)."""
    return max(settings.workers, settings.ml_workers) if service == "ml" else settings.workers


def worker_model(service: str) -> list[str]:
    """gunicorn's options for how a service's workers take requests.

    The ML service's requests are CPU-bound (a prediction is a millisecond of numpy): each worker
    process takes one request at a time (gunicorn's sync worker) and closes the connection after
    answering, so every request waits in the kernel's accept queue for whichever worker is free.
    With threads and keep-alive, a client's connection stays with the worker that accepted it: a
    worker could hold most of a client pool's connections while another idled, and its threads
    fought over one GIL (docs/performance.md, P2). The other services wait on MLflow, Evidently
    and the database: threads let one worker overlap those waits.
    """
    if service == "ml":
        return ["--worker-class", "sync"]
    return ["--worker-class", "gthread", "--threads", "4"]


def gunicorn_command(service: str, settings: Settings, *, workers: int | None = None) -> list[str]:
    """The command line that serves `service` under gunicorn on settings' host and port.

    The settings themselves reach the app through the environment (Settings.from_env).
    """
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{settings.host}:{settings.port_of(service)}",
        "--workers",
        str(workers or worker_count(service, settings)),
        *worker_model(service),
        # a report or a grid search may take a while; gunicorn must not kill the worker for it
        "--timeout",
        "600",
        # gthread workers wait for idle keep-alive connections until this runs out, so keep it short
        "--graceful-timeout",
        "5",
        # An idle keep-alive connection is closed after this long. A client that reuses it just as
        # the server closes it gets a reset, not an answer (newman did, after the 2-s pause of a
        # model load, with gunicorn's default of 2 s): longer than a script's pauses between requests.
        "--keep-alive",
        str(KEEP_ALIVE_SECONDS),
        # no gunicorn access log: the app logs one line per request itself (mlops.<service>.access)
        "--error-logfile",
        "-",
        "--log-level",
        "info",
        # gunicorn's control socket lives at one fixed path per user: four services would fight over it
        "--no-control-socket",
        "--name",
        f"mlops-{service}",
        # JSON instead of HTML for the requests gunicorn refuses itself (e.g. a request line too long)
        "--config",
        "python:mlops.kernel.gunicorn_config",
        SERVICE_APPS[service],
    ]


def pid_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc").is_dir()
    return stat[stat.rindex(")") + 2] != "Z"
