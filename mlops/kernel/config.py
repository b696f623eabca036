"""Settings from environment variables, read once into one frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SERVICE_NAMES = ("simulator", "ml", "tracking", "monitoring")


class Settings(BaseModel):
    """Everything the services can be told; every field has a default that works out of the box."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    simulator_port: int = Field(5004, ge=1, le=65535)
    ml_port: int = Field(5001, ge=1, le=65535)
    tracking_port: int = Field(5002, ge=1, le=65535)
    monitoring_port: int = Field(5003, ge=1, le=65535)
    data_dir: Path = Path("var")
    # Empty means "a SQLite file under data_dir"; see the properties below.
    dataset_db_url: str = ""
    mlflow_tracking_uri: str = ""
    mlflow_artifact_root: str = ""
    ml_service_url: str = ""
    request_timeout: float = Field(30.0, gt=0)
    max_body_bytes: int = Field(2_000_000, ge=1024)
    api_token: str = ""
    protect_reads: bool = False
    grid_max_fits: int = Field(2000, ge=1)
    n_jobs: int = -1
    # tcp://host:8786: the tracking service's grid-search fits run on that Dask cluster
    dask_scheduler: str = ""
    workers: int = Field(1, ge=1)
    # online prediction is CPU-bound under the GIL and each ML worker takes one request at a time:
    # a process per core, and one more so that a training or an evaluation (seconds) leaves every
    # core predicting
    ml_workers: int = Field(3, ge=1)
    # monitoring samples (seeded) a set larger than this before handing it to Evidently
    monitoring_max_rows: int = Field(100_000, ge=10)
    # tracking checks this often that the ML service serves the champion (0: only at start and on moves)
    champion_sync_seconds: float = Field(10.0, ge=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the settings from environment variables (see README: Configuration)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {
            field: environ[variable]
            for field, variable in ENVIRONMENT_VARIABLES.items()
            if environ.get(variable, "") != ""
        }
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"{ENVIRONMENT_VARIABLES.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in error.errors()
            )
            raise ValueError(f"invalid configuration: {problems}") from None

    def port_of(self, service: str) -> int:
        """The port a service listens on, by its short name."""
        return {
            "simulator": self.simulator_port,
            "ml": self.ml_port,
            "tracking": self.tracking_port,
            "monitoring": self.monitoring_port,
        }[service]

    @property
    def dataset_db(self) -> str:
        """The dataset database URL (SQLite under data_dir unless DATASET_DB_URL says otherwise)."""
        return self.dataset_db_url or f"sqlite:///{(self.data_dir / 'dataset.db').resolve()}"

    @property
    def mlflow_uri(self) -> str:
        """MLflow's backend store URI (SQLite under data_dir unless MLFLOW_TRACKING_URI is set)."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifacts(self) -> str:
        """Where MLflow keeps run artifacts for new experiments."""
        return self.mlflow_artifact_root or (self.data_dir / "mlartifacts").resolve().as_uri()

    @property
    def ml_url(self) -> str:
        """Base URL of the ML service, as the tracking service reaches it."""
        return (self.ml_service_url or client_url(self.host, self.ml_port)).rstrip("/")


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses to reach a server bound to host:port: a wildcard bind
    (0.0.0.0, ::) is reached on loopback, an IPv6 address goes in brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


# field name -> environment variable
ENVIRONMENT_VARIABLES = {
    "host": "MLOPS_HOST",
    "simulator_port": "SIMULATOR_PORT",
    "ml_port": "ML_PORT",
    "tracking_port": "TRACKING_PORT",
    "monitoring_port": "MONITORING_PORT",
    "data_dir": "MLOPS_DATA_DIR",
    "dataset_db_url": "DATASET_DB_URL",
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
    "mlflow_artifact_root": "MLFLOW_ARTIFACT_ROOT",
    "ml_service_url": "ML_SERVICE_URL",
    "request_timeout": "MLOPS_REQUEST_TIMEOUT",
    "max_body_bytes": "MLOPS_MAX_BODY_BYTES",
    "api_token": "MLOPS_API_TOKEN",
    "protect_reads": "MLOPS_PROTECT_READS",
    "grid_max_fits": "MLOPS_GRID_MAX_FITS",
    "n_jobs": "MLOPS_N_JOBS",
    "dask_scheduler": "MLOPS_DASK_SCHEDULER",
    "workers": "MLOPS_WORKERS",
    "ml_workers": "ML_WORKERS",
    "monitoring_max_rows": "MONITORING_MAX_ROWS",
    "champion_sync_seconds": "MLOPS_CHAMPION_SYNC_SECONDS",
}
