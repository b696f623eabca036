"""`mlops demo` against a real stack started by `mlops up --detach` (free ports, SQLite defaults)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import requests

from mlops.kernel.launch import SERVICE_APPS
from tests.support.cli import MLOPS
from tests.support.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The stack requires a bearer token for writes: the demo must send the one it is given.
TOKEN_ENV = {**os.environ, "MLOPS_API_TOKEN": "demo-secret"}
NO_TOKEN_ENV = {name: value for name, value in os.environ.items() if name != "MLOPS_API_TOKEN"}


@pytest.fixture
def stack_flags(tmp_path):
    """A detached stack of the four services; yields the flags that point `mlops demo` at it."""
    ports = [arg for service in SERVICE_APPS for arg in (f"--{service}-port", str(free_port()))]
    data_dir = ["--data-dir", str(tmp_path / "var")]
    up = subprocess.run(
        [*MLOPS, "up", "--detach", *ports, *data_dir], capture_output=True, text=True, timeout=300, env=TOKEN_ENV
    )
    try:
        assert up.returncode == 0, up.stderr
        yield ports + data_dir
    finally:
        subprocess.run([*MLOPS, "down", *data_dir], capture_output=True, timeout=120)


def test_demo_runs_the_walkthrough_and_the_loop_and_summarizes_them(stack_flags):
    # only the data dir: the demo finds the stack's ports in its state file
    data_dir = stack_flags[stack_flags.index("--data-dir") :]
    demo = subprocess.run(
        [*MLOPS, "demo", "--loop", *data_dir], capture_output=True, text=True, timeout=900, env=TOKEN_ENV
    )
    assert demo.returncode == 0, demo.stderr
    summary = demo.stdout
    # every step reported as done, on stderr (no terminal: one line per step)
    assert "FAILED" not in demo.stderr
    assert demo.stderr.count("ok ") == 13 + 6  # the walkthrough's steps, then the loop's
    # the optimization runs as a job whose fits the step counts: (2 + 8 + 8) candidates x 5 folds
    assert "[####################] 90/90 fits" in demo.stderr
    assert "experiment wine_test_1\n" in demo.stderr
    best = re.search(r"best model\s+(\w+) \(run (\w+), CV model_accuracy (0\.\d+)\)", summary)
    assert best, summary
    scores = dict(re.findall(r"(training|testing|production) (\d+\.\d+) %", summary))
    assert set(scores) == {"training", "testing", "production"}
    assert float(scores["testing"]) >= 90
    assert float(scores["production"]) < float(scores["testing"])  # the fouled set scores lower
    tests = re.search(r"(\d+) tests: (\d+) passed, (\d+) failed", summary)
    assert tests and int(tests[1]) == int(tests[2]) + int(tests[3]) and int(tests[1]) > 0
    assert re.search(r"re-training\s+(advised|not needed)", summary)
    # beside the summary, the verdict: the walkthrough's fouled production has missing values
    assert re.search(r"verdict\s+Re-training advised: .*missing values .* checks fired, reference testing\]", summary)
    # the summary tells the truth: the ML service runs the best model it names
    ml_port = stack_flags[stack_flags.index("--ml-port") + 1]
    status = requests.get(f"http://127.0.0.1:{ml_port}/root/ml", timeout=10).json()
    assert best[1] in str(status["model"])
    # the loop: the walkthrough's model adopted as the champion, a challenger gated against it
    loop = summary[summary.index("Loop done in") :]
    assert re.search(r"verdict\s+(Re-training advised|No re-training advised)", loop), loop
    assert re.search(r"gate\s+accuracy \d\.\d{4} vs \d\.\d{4} \(margin 0\.01, (passed|failed)\)", loop), loop
    decision = re.search(r"decision\s+(promoted|kept): champion is version (\d+)", loop)
    assert decision, loop
    assert status["model"]["registered_model"] == "wine"
    assert status["model"]["registered_version"] == decision[2]


def test_a_service_error_stops_the_demo_with_its_message(stack_flags):
    demo = subprocess.run(
        [*MLOPS, "demo", *stack_flags, "--experiment-name", ""],
        capture_output=True,
        text=True,
        timeout=600,
        env=TOKEN_ENV,
    )
    assert demo.returncode == 1
    assert "FAILED Optimizing" in demo.stderr
    assert "/root/tracking/model_management answered 400" in demo.stderr
    assert demo.stdout == ""  # no summary of a walkthrough that did not finish

    refused = subprocess.run(
        [*MLOPS, "demo", *stack_flags], capture_output=True, text=True, timeout=600, env=NO_TOKEN_ENV
    )
    assert refused.returncode == 1
    assert "FAILED Loading the training and testing sets" in refused.stderr
    assert "answered 401" in refused.stderr and "MLOPS_API_TOKEN" in refused.stderr


def test_a_second_demo_after_the_experiment_was_deleted_takes_a_fresh_name_and_says_so(stack_flags):
    first = subprocess.run([*MLOPS, "demo", *stack_flags], capture_output=True, text=True, timeout=600, env=TOKEN_ENV)
    assert first.returncode == 0, first.stderr
    experiment_id = re.search(r"experiment\s+wine_test_1 \(id (\w+)\)", first.stdout)[1]
    tracking_port = stack_flags[stack_flags.index("--tracking-port") + 1]
    deleted = requests.delete(
        f"http://127.0.0.1:{tracking_port}/root/tracking/experiments",
        params={"experiment_id": experiment_id},
        headers={"Authorization": "Bearer demo-secret"},
        timeout=30,
    )
    assert deleted.status_code == 200, deleted.text
    second = subprocess.run([*MLOPS, "demo", *stack_flags], capture_output=True, text=True, timeout=600, env=TOKEN_ENV)
    assert second.returncode == 0, second.stderr
    assert "wine_test_1 was deleted; using wine_test_2" in second.stderr
    assert re.search(r"experiment\s+wine_test_2 \(id \w+\), 3 runs", second.stdout), second.stdout
