"""P5 cold start: from running `mlops up` to all four services ready (GET /ready 200) and the
first GET /root/tracking/experiments answered.

Each try starts `mlops up` (foreground, as a user does) on free ports with a fresh data dir, polls
the four /ready endpoints until each answers 200, sends GET /root/tracking/experiments again and
again (one at a time) until it is answered, and stops the stack with SIGINT. Beside it, in the
same run: how long each service's app module takes to import (`python -X importtime`), and the
heaviest imports on that path.

Goals (medians): four ready <= 4 s; the first GET /root/tracking/experiments answered <= 4 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.harness import Config, Goal, Result, bench_settings, cpu_seconds, group_cpu_seconds, median, say, table
from mlops.kernel.config import SERVICE_NAMES
from mlops.kernel.launch import SERVICE_APPS

SERVICES = SERVICE_NAMES
APP_MODULES = {service: app.split(":")[0] for service, app in SERVICE_APPS.items()}
GOAL_S = 4.0
FIRST_REQUEST = "/root/tracking/experiments"


def run(config: Config) -> Result:
    """Time `mlops up` to four ready services a few times; time each app module's import."""
    result = Result("p5")
    tries = 1 if config.quick else 3
    starts = []
    for attempt in range(tries):
        with tempfile.TemporaryDirectory(dir=config.work_dir) as data_dir:
            total, per_service, cpu = time_up(Path(data_dir))
        starts.append({"total_s": total, "per_service_s": per_service, "cpu_s": cpu})
        say(
            f"p5: try {attempt + 1}: all ready in {total:.2f} s ("
            + ", ".join(f"{n} {s:.2f} s" for n, s in per_service.items())
            + f"); CPU used by then {sum(cpu.values()):.2f} s ("
            + ", ".join(f"{n} {s:.2f}" for n, s in cpu.items())
            + f") on {os.cpu_count()} cores"
        )
    imports = {service: import_profile(module) for service, module in APP_MODULES.items()}
    say(
        table(
            ["service", "import s", "heaviest imports (cumulative s)"],
            [
                [
                    service,
                    profile["total_s"],
                    ", ".join(f"{name} {seconds:.2f}" for name, seconds in profile["heaviest"][:4]),
                ]
                for service, profile in imports.items()
            ],
        )
    )
    result.figures = {"starts": starts, "imports": imports}
    firsts = [s["per_service_s"][FIRST_REQUEST] for s in starts if FIRST_REQUEST in s["per_service_s"]]
    result.goals = [
        Goal(
            "mlops up to four ready services (median)",
            median([s["total_s"] for s in starts]),
            GOAL_S,
            "s",
            at_most=True,
        ),
        Goal(f"mlops up to the first GET {FIRST_REQUEST} answered (median)", median(firsts), GOAL_S, "s", at_most=True),
    ]
    return result


def time_up(data_dir: Path, timeout: float = 120.0) -> tuple[float, dict[str, float], dict[str, float]]:
    """Run `mlops up` in data_dir on free ports: seconds until every /ready is 200 (and each's), and
    until the first GET FIRST_REQUEST was answered, and the CPU seconds each process group had used
    by then."""
    settings = bench_settings(data_dir)
    mlops = str(Path(sys.executable).with_name("mlops"))
    command = [mlops, "up", "--data-dir", str(data_dir)]
    for service in SERVICES:
        command += [f"--{service}-port", str(settings.port_of(service))]
    ready: dict[str, float] = {}
    log = (data_dir / "up.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )

    def poll(service: str, path: str = "/ready", key: str | None = None, wait: float = 2) -> None:
        url = f"http://127.0.0.1:{settings.port_of(service)}{path}"
        session = requests.Session()
        while time.perf_counter() - started < timeout and process.poll() is None:
            try:
                if session.get(url, timeout=wait).status_code == 200:
                    ready[key or service] = time.perf_counter() - started
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)

    pollers = [threading.Thread(target=poll, args=(service,)) for service in SERVICES]
    # what a user asks first: sent again and again (one at a time) from the start until answered 200
    pollers.append(threading.Thread(target=poll, args=("tracking", FIRST_REQUEST, FIRST_REQUEST, 60)))
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join()
    try:
        if len(ready) < len(SERVICES):
            raise RuntimeError(
                f"`mlops up` did not bring up {set(SERVICES) - set(ready)}: {(data_dir / 'up.log').read_text()[-3000:]}"
            )
        cpu = {"mlops up": cpu_seconds(process.pid)}
        state = json.loads((data_dir / "mlops-stack.json").read_text())
        for member in state["members"]:
            cpu[member["name"]] = group_cpu_seconds(member["pid"])
        first = {FIRST_REQUEST: ready[FIRST_REQUEST]} if FIRST_REQUEST in ready else {}
        return max(ready[s] for s in SERVICES), {service: ready[service] for service in SERVICES} | first, cpu
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    """Stop `mlops up` as Ctrl-C would (it stops its services), killing its group if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def import_profile(module: str) -> dict:
    """Seconds to import module in a fresh interpreter, and its heaviest top-level imports."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    entries = []  # (depth, name, cumulative seconds), in the order printed: children first
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative_us, name_column = line.split(":", 1)[1].split("|")
        if not cumulative_us.strip().isdigit():
            continue
        depth = (len(name_column) - len(name_column.lstrip()) - 1) // 2
        entries.append((depth, name_column.strip(), int(cumulative_us) / 1e6))
    total = next((seconds for _, name, seconds in entries if name == module), 0.0)
    # Walk parents before children: a library imported by our own modules (not by another
    # library) is one of the imports on the start-up path.
    cumulative: dict[str, float] = {}
    ancestors: list[tuple[int, str]] = []
    for depth, name, seconds in reversed(entries):
        while ancestors and ancestors[-1][0] >= depth:
            ancestors.pop()
        if not name.startswith("mlops") and all(parent.startswith("mlops") for _, parent in ancestors):
            top = name.split(".")[0]
            cumulative[top] = cumulative.get(top, 0.0) + seconds
        ancestors.append((depth, name))
    heaviest = sorted(cumulative.items(), key=lambda item: -item[1])
    return {"total_s": total, "heaviest": heaviest[:8]}
