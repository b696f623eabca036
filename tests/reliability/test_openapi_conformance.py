"""R7 OpenAPI conformance: schemathesis, as a user would run it (its command line, every check,
positive and negative generation), against each service started as a real process on PostgreSQL
and brought to the walkthrough's state. No failure is expected: every answer is documented (status,
content type, schema), valid requests are taken, invalid ones refused with a 4xx JSON error, and
no 5xx. The few rules a JSON Schema cannot state are listed, with reasons, in schemathesis.toml."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.processes import ServiceProcess, settings_on_free_ports
from tests.support.reliability import ALL_SERVICES, pick
from tests.support.stack import bring_to_walkthrough_state, start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

HERE = Path(__file__).resolve().parent
EXAMPLES = pick(10, 100)  # per operation, phase and generation mode
SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_database):
    """The four services as real processes on PostgreSQL, in the walkthrough's state."""
    data_dir = tmp_path_factory.mktemp("r7")
    settings = settings_on_free_ports(
        data_dir=data_dir, dataset_db_url=postgres_database(), mlflow_tracking_uri=postgres_database()
    )
    processes = {s: ServiceProcess(s, settings, data_dir / f"{s}.log") for s in ALL_SERVICES}
    try:
        started = start_stack(lambda service, _settings: processes[service].start(), settings, list(processes))
        bring_to_walkthrough_state(started, optimize=True)
        yield started
    finally:
        stop_stack(processes.values())


def run_schemathesis(url: str, workdir: Path) -> subprocess.CompletedProcess:
    """schemathesis's command line on one service; its cache of crashes goes to workdir, not the tree."""
    command = [
        *SCHEMATHESIS,
        "--config-file", str(HERE / "schemathesis.toml"),
        "--no-color",
        "run", f"{url}/openapi.json",
        "--checks", "all",
        "--mode", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(EXAMPLES),
        "--seed", "1",
        "--workers", "1",
        "--request-timeout", "120",
    ]  # fmt: skip  # each flag beside its value, as on a command line
    root = str(HERE.parents[1])  # where the hooks' module `tests.reliability.schemathesis_hooks` is found
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.reliability.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900, cwd=workdir)


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_schemathesis_with_every_check_finds_nothing(service, stack, record_figures, tmp_path):
    process = stack[service]
    result = run_schemathesis(process.url, tmp_path)
    output = result.stdout + result.stderr
    generated = re.search(r"(\d+) generated", output)
    record_figures(
        f"R7 schemathesis {service}",
        operations=int(re.search(r"Tested: (\d+)", output).group(1)) if "Tested:" in output else None,
        cases=int(generated.group(1)) if generated else None,
        exit_code=result.returncode,
    )
    assert result.returncode == 0, output[-12000:]
    assert "Tested:" in output and generated, output[-3000:]
    assert process.process.poll() is None, f"{service} died"
    assert requests.get(process.url + "/health", timeout=10).status_code == 200
