"""docker-compose.yml and the Dockerfile against the code: the services, their commands, ports and
environment must be what the settings read, so the compose file cannot drift from the code.
No Docker engine runs here; Debian's docker-compose validates the file when installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlops.cli import build_parser
from mlops.kernel.config import ENVIRONMENT_VARIABLES, Settings
from mlops.kernel.launch import SERVICE_APPS
from mlops.stack import DEFAULT_MLFLOW_UI_PORT

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate(value: str) -> str:
    """Replace ${NAME:-default} / ${NAME} as compose does when NAME is not set."""
    return re.sub(r"\$\{[A-Z0-9_]+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", str(value))


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: interpolate(value) for name, value in env.items()}


def published(service: dict) -> dict[int, int]:
    """container port -> host port."""
    ports = {}
    for mapping in service.get("ports", []):
        host, container = str(mapping).rsplit(":", 1)
        ports[int(container)] = int(host)
    return ports


DASK = {"dask-scheduler", "dask-worker-1", "dask-worker-2"}


def test_compose_runs_postgres_mlflow_dask_and_the_four_services(compose):
    assert set(compose["services"]) == {"postgres", "mlflow", *DASK, *SERVICE_APPS}


@pytest.mark.parametrize("name", list(SERVICE_APPS))
def test_each_service_serves_itself_on_the_port_its_settings_give(compose, name):
    service = compose["services"][name]
    assert service["command"] == ["serve", name]
    env = environment_of(service)
    assert set(env) <= set(ENVIRONMENT_VARIABLES.values()), "unknown variables: the code would not read them"
    settings = Settings.from_env(env)  # the values must be valid for the code, too
    port = settings.port_of(name)
    assert port == Settings().port_of(name)  # the documented default port
    assert published(service) == {port: port}
    assert settings.host == "0.0.0.0"  # reachable from outside the container
    assert name in " ".join(service["healthcheck"]["test"])  # its own health


def test_services_are_restarted_as_mlops_up_restarts_them(compose):
    from mlops.stack.supervisor import RESTART_DELAYS, STABLE_SECONDS

    assert STABLE_SECONDS == 10  # what Docker waits before it counts the restarts from 0 again
    for name in (*SERVICE_APPS, "mlflow", *DASK):
        assert compose["services"][name]["restart"] == f"on-failure:{len(RESTART_DELAYS)}", name
    assert compose["services"]["postgres"]["restart"] == "unless-stopped"


def test_every_service_reaches_postgres_mlflow_dask_and_the_ml_service_over_the_network(compose):
    postgres = compose["services"]["postgres"]
    datasets_db = postgres["environment"]["POSTGRES_DB"]
    init_sql = "\n".join(p.read_text() for p in (ROOT / "docker" / "postgres").glob("*.sql"))
    created = re.findall(r"CREATE DATABASE (\w+)", init_sql, flags=re.IGNORECASE)
    for name in SERVICE_APPS:
        settings = Settings.from_env(environment_of(compose["services"][name]))
        assert (
            settings.dataset_db.startswith("postgresql://") and f"@postgres:5432/{datasets_db}" in settings.dataset_db
        )
        # MLflow through its tracking server, the fits on the Dask cluster
        assert settings.mlflow_uri == f"http://mlflow:{DEFAULT_MLFLOW_UI_PORT}"
        assert settings.dask_scheduler == "tcp://dask-scheduler:8786"
        assert settings.ml_url == f"http://ml:{Settings().ml_port}"
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        # no volume shared between containers: nothing goes through a filesystem
        assert not compose["services"][name].get("volumes")
    tracking_depends = compose["services"]["tracking"]["depends_on"]
    for needed in ("ml", "mlflow", "dask-scheduler"):
        assert tracking_depends[needed]["condition"] == "service_healthy"
    mlflow_command = compose["services"]["mlflow"]["command"]
    store = mlflow_command[mlflow_command.index("--backend-store-uri") + 1]
    assert "@postgres:5432/" in interpolate(store) and store.rsplit("/", 1)[-1] in created


def test_postgres_keeps_its_data_and_is_healthy_only_with_both_databases(compose):
    postgres = compose["services"]["postgres"]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert any("docker-entrypoint-initdb.d" in str(v) for v in postgres["volumes"])
    assert "mlflow" in postgres["healthcheck"]["test"]


def test_mlflow_is_a_tracking_server_with_an_artifact_proxy_on_postgres(compose):
    mlflow = compose["services"]["mlflow"]
    assert mlflow["entrypoint"] == ["mlflow"]
    command = mlflow["command"]
    assert command[0] == "server" and "--serve-artifacts" in command
    assert command[command.index("--backend-store-uri") + 1].startswith("postgresql+psycopg://")
    assert command[command.index("--port") + 1] == str(DEFAULT_MLFLOW_UI_PORT)
    assert published(mlflow) == {DEFAULT_MLFLOW_UI_PORT: DEFAULT_MLFLOW_UI_PORT}
    # the services reach it by its compose name: its host check must let that name in
    assert f"mlflow:{DEFAULT_MLFLOW_UI_PORT}" in command[command.index("--allowed-hosts") + 1].split(",")
    # its artifacts stay in its own volume
    assert [v.split(":")[1] for v in mlflow["volumes"]] == ["/data"]
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_dask_runs_a_scheduler_and_two_workers_of_the_same_image(compose):
    scheduler = compose["services"]["dask-scheduler"]
    assert scheduler["entrypoint"] == ["dask"] and scheduler["command"][0] == "scheduler"
    assert scheduler["command"][scheduler["command"].index("--port") + 1] == "8786"
    for name in ("dask-worker-1", "dask-worker-2"):
        worker = compose["services"][name]
        assert worker["image"] == scheduler["image"] == compose["services"]["tracking"]["image"]
        assert worker["entrypoint"] == ["dask"]
        assert worker["command"][:2] == ["worker", "tcp://dask-scheduler:8786"]
        assert worker["depends_on"]["dask-scheduler"]["condition"] == "service_healthy"


def test_every_compose_command_is_one_the_mlops_command_accepts(compose):
    parser = build_parser()
    for name, service in compose["services"].items():
        if name == "postgres" or "entrypoint" in service:  # not the mlops command: MLflow's, Dask's
            continue
        args = parser.parse_args(service["command"])
        assert args.run.__name__ == "run_serve"
        health = service["healthcheck"]["test"]
        if health[1] == "mlops":
            assert parser.parse_args(health[2:]).run.__name__ == "run_status"


def test_the_image_runs_mlops_and_exposes_every_port():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["mlops"]' in dockerfile
    exposed = {int(p) for line in dockerfile.splitlines() if line.startswith("EXPOSE") for p in line.split()[1:]}
    assert exposed == {*(Settings().port_of(s) for s in SERVICE_APPS), DEFAULT_MLFLOW_UI_PORT}
    assert "MLOPS_HOST=0.0.0.0" in dockerfile


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (make tools)")
def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
