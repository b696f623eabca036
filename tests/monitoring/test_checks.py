"""Evidently behind mlops.monitoring.checks: lazy, and safe when the first checks come in parallel."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs in a fresh interpreter, where Evidently is not imported yet: a report and three test
# suites start at once in four threads, as four requests to a freshly started service would.
PARALLEL_FIRST_CHECKS = """
import json, sys, threading
from mlops.monitoring import checks
from mlops.simulator.splits import load_split

assert "evidently" not in sys.modules  # importing the service's modules does not import Evidently

def frame(name):
    split = load_split(name)
    return split.features.assign(target=split.target, prediction=split.target)

reference, current = frame("testing"), frame("production")
outcomes = {}

def check(kind):
    try:
        if kind == "report":
            run = checks.run_report(reference, current)
            outcomes[kind] = len(run.json["metrics"])
        else:
            outcomes[kind] = checks.run_test_suite(reference, current, (kind,)).json["summary"]["total_tests"]
    except Exception as error:
        outcomes[kind] = repr(error)

threads = [threading.Thread(target=check, args=(kind,))
           for kind in ("report", "data_drift", "data_quality", "multi_class_classification")]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(outcomes))
"""


def test_first_checks_in_parallel_threads_all_succeed():
    completed = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PARALLEL_FIRST_CHECKS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcomes = json.loads(completed.stdout.strip().splitlines()[-1])
    # Without one import at a time, Evidently's circular imports deadlock here (and break it for good).
    assert all(isinstance(count, int) and count > 0 for count in outcomes.values()), outcomes
    assert set(outcomes) == {"report", "data_drift", "data_quality", "multi_class_classification"}
