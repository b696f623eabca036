"""By hand: how long the ML service of a detached stack takes to come back after a kill -9, and
where the time goes (docs/reliability.md, R6).

    PYTHONPATH=$PWD .venv/bin/python tools/ml_restart_timing.py KILLS [quiet|clients] [keep]

The first run starts a stack (`mlops up --detach`, ports BASE+1..BASE+4, data under
/tmp/ml-restart-timing/var<STACK>) on the local PostgreSQL (databases ml_restart_timing_*, dropped
and made again) in the walkthrough's state. Each kill -9 of the ML service's process group is timed
as the R6 soak times it (`/health` every 0.05 s, 5 s timeout), with the supervisor's new arbiter
and its forked workers watched every 10 ms, then until a prediction answers 200; with `clients`,
under the soak's eight clients. `keep` leaves the stack up for the next run (`mlops down` with the
same ports and data dir stops it). STACK=b (ports 6201-6204) runs a second stack beside the first
(6101-6104): start each from the code to compare (PYTHONPATH) and alternate the kills.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import requests

from mlops.kernel.walkthrough import WINE_SAMPLE
from tests.reliability.test_chaos_soak import lanes_for
from tests.support.clients import Clients
from tests.support.stack import bring_to_walkthrough_state, call

STACK = os.environ.get("STACK", "")
DATA = Path("/tmp/ml-restart-timing") / f"var{STACK}"
BASE = 6200 if STACK else 6100
PORTS = {"simulator": BASE + 1, "ml": BASE + 2, "tracking": BASE + 3, "monitoring": BASE + 4}
FLAGS = [arg for service, port in PORTS.items() for arg in (f"--{service}-port", str(port))]
FLAGS += ["--data-dir", str(DATA)]
MLOPS = [sys.executable, "-m", "mlops.cli"]
URLS = {service: f"http://127.0.0.1:{port}" for service, port in PORTS.items()}
DATABASES = {"dataset": f"ml_restart_timing_dataset{STACK}", "mlflow": f"ml_restart_timing_mlflow{STACK}"}
POSTGRES = "postgresql://postgres@127.0.0.1:5432/"


def up() -> None:
    """A detached stack in the walkthrough's state, every ML worker with the model loaded."""
    for database in DATABASES.values():
        for sql in (f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", f"CREATE DATABASE {database}"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    started = subprocess.run(
        [*MLOPS, "up", "--detach", *FLAGS, "--timeout", "180"]
        + [
            "--dataset-db-url",
            POSTGRES + DATABASES["dataset"],
            "--mlflow-tracking-uri",
            POSTGRES + DATABASES["mlflow"],
        ],
        env={**os.environ, "MLOPS_REQUEST_TIMEOUT": "10"},
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stderr
    bring_to_walkthrough_state({service: SimpleNamespace(url=url) for service, url in URLS.items()})
    for _ in range(20):
        call("POST", URLS["ml"] + "/root/ml/predict", json=[WINE_SAMPLE])


def ml_pid() -> int:
    state = json.loads((DATA / "mlops-stack.json").read_text())
    return next(member["pid"] for member in state["members"] if member["name"] == "ml")


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def kill_and_time() -> dict[str, float | None]:
    """Seconds from the kill to: the new arbiter, its first and third worker, /health 200, a prediction 200."""
    old = ml_pid()
    events: dict[str, float | None] = {}
    done = threading.Event()
    killed = time.monotonic()

    def watch() -> None:
        while not done.is_set():
            now = time.monotonic() - killed
            try:
                pid = ml_pid()
            except (OSError, ValueError, StopIteration):
                pid = old
            if pid != old:
                events.setdefault("arbiter started", now)
                workers = children(pid)
                if workers:
                    events.setdefault("1st worker forked", now)
                if len(workers) >= 3:
                    events.setdefault("3 workers forked", now)
            time.sleep(0.01)

    os.killpg(old, signal.SIGKILL)
    threading.Thread(target=watch, daemon=True).start()
    events["health 200"] = None
    while time.monotonic() - killed < 120:
        try:
            if requests.get(URLS["ml"] + "/health", timeout=5).status_code == 200:
                events["health 200"] = time.monotonic() - killed
                break
        except requests.RequestException:
            pass
        time.sleep(0.05)
    while True:
        try:
            if requests.post(URLS["ml"] + "/root/ml/predict", json=[WINE_SAMPLE], timeout=30).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.05)
    events["predict 200"] = time.monotonic() - killed
    done.set()
    return {name: round(seconds, 2) if seconds is not None else None for name, seconds in events.items()}


def main() -> None:
    kills = int(sys.argv[1])
    mode = sys.argv[2] if len(sys.argv) > 2 else "quiet"
    if not (DATA / "mlops-stack.json").exists():
        up()
    for _ in range(kills):
        load = os.getloadavg()[0]
        if mode == "clients":
            with Clients(lanes_for(URLS), timeout=30, pause=0.05):
                time.sleep(5)
                timings = kill_and_time()
                time.sleep(3)
        else:
            time.sleep(3)
            timings = kill_and_time()
        print(STACK or "a", mode, timings | {"load average (1 min) before": round(load, 2)}, flush=True)
        time.sleep(8)  # the next kill is not a crash "in a row" for the supervisor
    if "keep" not in sys.argv:
        subprocess.run([*MLOPS, "down", *FLAGS], check=False)


if __name__ == "__main__":
    main()
