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


def test_compose_runs_postgres_the_four_services_and_mlflow_ui(compose):
    assert set(compose["services"]) == {"postgres", "mlflow", *SERVICE_APPS}


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
    for name in (*SERVICE_APPS, "mlflow"):
        assert compose["services"][name]["restart"] == f"on-failure:{len(RESTART_DELAYS)}", name
    assert compose["services"]["postgres"]["restart"] == "unless-stopped"


def test_every_service_reaches_postgres_and_the_ml_service_by_name(compose):
    postgres = compose["services"]["postgres"]
    datasets_db = postgres["environment"]["POSTGRES_DB"]
    init_sql = "\n".join(p.read_text() for p in (ROOT / "docker" / "postgres").glob("*.sql"))
    created = re.findall(r"CREATE DATABASE (\w+)", init_sql, flags=re.IGNORECASE)
    for name in SERVICE_APPS:
        settings = Settings.from_env(environment_of(compose["services"][name]))
        assert settings.dataset_db.startswith("postgresql://") and f"@postgres:5432/{datasets_db}" in settings.dataset_db
        mlflow_database = settings.mlflow_uri.rsplit("/", 1)[-1]
        assert "@postgres:5432/" in settings.mlflow_uri and mlflow_database in created
        assert settings.ml_url == f"http://ml:{Settings().ml_port}"
        assert settings.mlflow_artifacts.startswith("file:///data/")
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
    assert compose["services"]["tracking"]["depends_on"]["ml"]["condition"] == "service_healthy"


def test_postgres_keeps_its_data_and_is_healthy_only_with_both_databases(compose):
    postgres = compose["services"]["postgres"]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert any("docker-entrypoint-initdb.d" in str(v) for v in postgres["volumes"])
    assert "mlflow" in postgres["healthcheck"]["test"]


def test_mlflow_ui_uses_the_tracking_store_after_tracking_is_up(compose):
    mlflow = compose["services"]["mlflow"]
    assert mlflow["command"][:2] == ["serve", "mlflow-ui"]
    assert published(mlflow) == {DEFAULT_MLFLOW_UI_PORT: DEFAULT_MLFLOW_UI_PORT}
    assert environment_of(mlflow)["MLFLOW_TRACKING_URI"] == environment_of(compose["services"]["tracking"])["MLFLOW_TRACKING_URI"]
    assert mlflow["depends_on"]["tracking"]["condition"] == "service_healthy"
    # the same artifacts volume as the tracking service that writes them
    assert mlflow["volumes"] == compose["services"]["tracking"]["volumes"]


def test_every_compose_command_is_one_the_mlops_command_accepts(compose):
    parser = build_parser()
    for name, service in compose["services"].items():
        if name == "postgres":
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
