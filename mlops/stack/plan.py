"""What the stack starts: one gunicorn process per service (and MLflow's UI if asked for), with
the command line, port, URL and environment of each, and the table that says where they are."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from mlops.kernel import config
from mlops.kernel.config import SERVICE_NAMES, Settings
from mlops.kernel.launch import gunicorn_command, settings_environment

SERVICES = SERVICE_NAMES
MLFLOW_UI = "mlflow-ui"
DEFAULT_MLFLOW_UI_PORT = 5000
# MLflow's server also starts a job runner and seven huey consumers (for GenAI scoring and trace
# archival), each a Python process importing MLflow: a UI for browsing runs needs none of them.
MLFLOW_UI_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# What each process keeps where, for the table `mlops up` prints.
STORAGE = {
    "simulator": "dataset DB",
    "ml": "dataset DB",
    "tracking": "MLflow store, dataset DB",
    "monitoring": "dataset DB",
    MLFLOW_UI: "MLflow store",
}


@dataclass(frozen=True)
class Launch:
    """How to start one process of the stack and where it answers."""

    name: str
    command: list[str]
    port: int
    url: str
    environment: dict[str, str] = field(default_factory=dict)  # on top of the settings' environment

    @property
    def marker(self) -> str:
        """A word of the command line that tells this process from an unrelated one with its pid."""
        return "mlflow" if self.name == MLFLOW_UI else f"mlops-{self.name}"


def client_url(settings: Settings, port: int) -> str:
    """The URL a client on this machine uses to reach a server bound to settings.host:port."""
    return config.client_url(settings.host, port)


def plan(settings: Settings, services: Iterable[str], *, mlflow_ui_port: int | None = None) -> list[Launch]:
    """The processes to start, in start order: the services, then MLflow's UI if asked for."""
    launches = [launch_of(settings, s) for s in services]
    if mlflow_ui_port is not None:
        launches.append(
            Launch(
                MLFLOW_UI,
                mlflow_ui_command(settings, mlflow_ui_port),
                mlflow_ui_port,
                client_url(settings, mlflow_ui_port),
                MLFLOW_UI_ENVIRONMENT,
            )
        )
    return launches


def launch_of(settings: Settings, service: str) -> Launch:
    """How to start one service."""
    port = settings.port_of(service)
    return Launch(service, gunicorn_command(service, settings), port, client_url(settings, port))


def in_start_order(launches: list[Launch]) -> list[list[Launch]]:
    """The launches in batches: the services together, then MLflow's UI.

    MLflow's UI waits for the services because it would race the tracking service to create
    and migrate a new MLflow store.
    """
    services = [launch for launch in launches if launch.name != MLFLOW_UI]
    ui = [launch for launch in launches if launch.name == MLFLOW_UI]
    return [batch for batch in (services, ui) if batch]


def mlflow_ui_command(settings: Settings, port: int) -> list[str]:
    """MLflow's own server and UI on the tracking service's backend store and artifact root."""
    from mlops.kernel.db import normalize_url  # SQLAlchemy: imported only when the UI is asked for

    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", normalize_url(settings.mlflow_uri),
        "--default-artifact-root", settings.mlflow_artifacts,
        # runs keep file:// artifact locations that the UI reads directly; no upload proxy needed
        "--no-serve-artifacts",
        "--host", settings.host,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip  # each flag beside its value, as on a command line


def service_environment(settings: Settings) -> dict[str, str]:
    """The environment of a started process: ours, then the settings, with unbuffered output."""
    return {**os.environ, **settings_environment(settings), "PYTHONUNBUFFERED": "1"}


def mask_password(url: str) -> str:
    """The URL with its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def stack_table(settings: Settings, launches: list[Launch]) -> str:
    """Where each started process answers, its docs and what it stores where (passwords masked)."""
    rows = [("service", "URL", "docs", "storage")]
    for launch in launches:
        docs = launch.url if launch.name == MLFLOW_UI else f"{launch.url}/docs"
        rows.append((launch.name, launch.url, docs, STORAGE.get(launch.name, "")))
    storage = [
        ("dataset DB", mask_password(settings.dataset_db)),
        ("MLflow store", mask_password(settings.mlflow_uri)),
        ("MLflow artifacts", mask_password(settings.mlflow_artifacts)),
    ]
    return format_table(rows) + "\n\n" + format_table(storage, header=False)


def format_table(rows: list[tuple[str, ...]], *, header: bool = True) -> str:
    """Left-aligned columns separated by two spaces, the header underlined."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip() for row in rows
    ]
    if header:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
