"""How each service is started as a real process: gunicorn serving the service's app factory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlops.kernel.config import ENVIRONMENT_VARIABLES, Settings

# short name -> gunicorn app spec (module:factory call); the order is the start order
SERVICE_APPS = {
    "simulator": "mlops.simulator.app:create_app()",
    "ml": "mlops.ml_service.app:create_app()",
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


def worker_count(service: str, settings: Settings) -> int:
    """How many gunicorn workers serve `service` (the ML service at least ML_WORKERS)."""
    return max(settings.workers, settings.ml_workers) if service == "ml" else settings.workers


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
        "--threads",
        "4",
        # a report or a grid search may take a while; gunicorn must not kill the worker for it
        "--timeout",
        "600",
        # gthread workers wait for idle keep-alive connections until this runs out, so keep it short
        "--graceful-timeout",
        "5",
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
