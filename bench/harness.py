"""What every benchmark needs: the machine it ran on, goals and the ratio line, services started as
real processes on free ports with a temporary data dir, throw-away PostgreSQL databases, and
peak memory of the service processes.

These machines are shared and noisy: a benchmark compares figures measured side by side in one
run, and nothing here is ever asserted on in a test.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from mlops.kernel.config import Settings
from tests.support.processes import ServiceProcess, free_port, settings_on_free_ports  # noqa: F401 (free_port: for bench modules)

T = TypeVar("T")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
POSTGRES_ADMIN_URL = os.environ.get(
    "MLOPS_BENCH_POSTGRES_URL",
    os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)


@dataclass(frozen=True)
class Config:
    """How big a run is: `quick` is the smoke test's tiny configuration (seconds, not minutes)."""

    quick: bool = False
    work_dir: Path = Path("/tmp")
    profile: bool = False


# --- the machine ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on: cores, CPU model, memory, load, software versions."""
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line about the machine."""
    load = ", ".join(str(x) for x in info["load_average_at_start"])
    return (
        f"machine: nproc={info['nproc']}, CPU {info['cpu_model']}, {info['memory_gib']} GiB RAM, "
        f"load average {load} at start, Python {info['python']}, Linux {info['kernel']}"
    )


# --- goals and figures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """A measured figure against its goal; `at_most` goals are met below the target, others above."""

    what: str
    measured: float
    target: float
    unit: str
    at_most: bool

    @property
    def ratio(self) -> float:
        """measured / target."""
        return self.measured / self.target if self.target else float("inf")

    @property
    def met(self) -> bool:
        return self.measured <= self.target if self.at_most else self.measured >= self.target

    def describe(self) -> str:
        sign = "<=" if self.at_most else ">="
        verdict = "met" if self.met else "MISSED"
        if self.unit == "x":  # the figure is itself a ratio
            return f"{self.what} = {self.measured:.2f}x (goal {sign} {self.target:.2f}x): {self.ratio:.2f} of the goal, {verdict}"
        return f"{self.what} {fmt(self.measured)} {self.unit} (goal {sign} {fmt(self.target)} {self.unit}): {self.ratio:.2f}x the goal, {verdict}"


@dataclass
class Result:
    """What one benchmark measured: printed lines as it goes, figures for the record, its goals."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)

    def goal_line(self) -> str:
        """The benchmark's last line: every goal with its ratio."""
        return f"{self.name} goals: " + "; ".join(goal.describe() for goal in self.goals)


def fmt(value: float) -> str:
    """A figure with as many digits as it deserves."""
    if value == 0:
        return "0"
    if abs(value) >= 1_000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def say(*parts: object) -> None:
    """Print a line at once (benchmarks run for minutes; show progress)."""
    print(*parts, flush=True)


def table(header: list[str], rows: list[list[object]]) -> str:
    """A plain aligned text table."""
    cells = [header] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Run function once; (seconds, its result)."""
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(result: Result, info: dict[str, Any], command: str) -> Path:
    """Write the result as JSON under bench/results/ (ignored by git) for docs/performance.md."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{result.name}.json"
    document = {
        "name": result.name,
        "command": command,
        "machine": info,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "figures": result.figures,
        "goals": [{**asdict(goal), "ratio": goal.ratio, "met": goal.met} for goal in result.goals],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


# --- databases -----------------------------------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark, dropped afterwards."""
    from sqlalchemy import create_engine, text

    from mlops.kernel.db import normalize_url

    admin = create_engine(normalize_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"mlops_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- services as processes -----------------------------------------------------------------


def bench_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings with free ports for every service and data under data_dir."""
    return settings_on_free_ports(data_dir=data_dir, **overrides)


@contextmanager
def services(settings: Settings, names: list[str], *, timeout: float = 120.0) -> Iterator[dict[str, ServiceProcess]]:
    """Start these services under gunicorn as the tests do (in their own process groups, with the
    workers the settings give), wait for each /health, stop them at the end."""
    from mlops.kernel.launch import worker_count

    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            service = ServiceProcess(name, settings, log_dir / f"{name}.log", workers=worker_count(name, settings))
            started[name] = service.start(timeout)
        yield started
    finally:
        for service in started.values():
            service.stop()


def stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM a process group (gunicorn master and workers), SIGKILL it if it lingers."""
    import signal

    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    except ProcessLookupError:
        pass


def call(method: str, url: str, *, expect: int | tuple[int, ...] = 200, timeout: float = 600, **kwargs: Any) -> Any:
    """One HTTP call; its JSON answer, or an error naming the call and the answer."""
    response = requests.request(method, url, timeout=timeout, **kwargs)
    expected = (expect,) if isinstance(expect, int) else expect
    if response.status_code not in expected:
        raise RuntimeError(f"{method} {url} answered {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else None


# --- memory --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def group_cpu_seconds(leader: int) -> float:
    """User + system CPU time used so far by the live processes of a process group."""
    return sum(cpu_seconds(pid) for pid in group_pids(leader))


def group_pids(leader: int) -> list[int]:
    """The processes of a process group (a gunicorn master and its workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader:  # fields after the name: state, ppid, pgrp, ...
            pids.append(int(entry))
    return pids


def postgres_cpu_seconds() -> float:
    """User + system CPU time used so far by the live processes of the PostgreSQL server (the
    postmaster, its backends and helpers): what the database did for a phase, beside the services."""
    total = 0.0
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().startswith("postgres"):
                total += cpu_seconds(int(entry))
        except OSError:
            continue
    return total


def database_rate(rows: int, action: Callable[[], T]) -> tuple[str, T]:
    """Run action; return how fast it went through `rows` rows, with the PostgreSQL server's CPU
    meanwhile ("<s> s <rows/s> rows/s (database server <CPU-s> CPU-s)"), and what it returned."""
    cpu, started = postgres_cpu_seconds(), time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    line = f"{seconds:6.2f} s {rows / seconds:10,.0f} rows/s (database server {postgres_cpu_seconds() - cpu:.1f} CPU-s)"
    return line, result


def reset_peak_rss(leaders: list[int]) -> None:
    """Reset the peak RSS (VmHWM) of every process in these groups (Linux: clear_refs 5)."""
    for leader in leaders:
        for pid in group_pids(leader):
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass


def memory_bytes(pid: int, fields: tuple[str, ...]) -> dict[str, int]:
    """These memory fields of one process, in bytes, from /proc/<pid>/status (VmHWM, VmRSS,
    RssAnon, RssFile, ...) and /proc/<pid>/smaps_rollup (Pss, Private_Dirty, ...); none of a
    process that has ended."""
    found: dict[str, int] = {}
    for source in ("status", "smaps_rollup"):
        try:
            lines = Path(f"/proc/{pid}/{source}").read_text().splitlines()
        except OSError:
            return {}
        for line in lines:
            name = line.split(":", 1)[0]
            if name in fields and name not in found:
                found[name] = int(line.split()[1]) * 1024
    return found


def peak_rss_bytes(leaders: list[int]) -> dict[int, int]:
    """Per process group, the sum over its processes of their peak RSS (VmHWM) since the last
    reset; summed over groups, an upper bound of the memory the services held at once."""
    return {
        leader: sum(memory_bytes(pid, ("VmHWM",)).get("VmHWM", 0) for pid in group_pids(leader)) for leader in leaders
    }


def pss_bytes(leaders: list[int]) -> int:
    """The proportional set size summed over the processes of these groups: a page shared by n
    processes counts 1/n in each, so the sum is the memory they hold together (a sum of RSS
    counts every shared page once per process that maps it)."""
    return sum(memory_bytes(pid, ("Pss",)).get("Pss", 0) for leader in leaders for pid in group_pids(leader))


@contextmanager
def peak_pss(leaders: list[int], interval_s: float = 0.2) -> Iterator[dict[str, int]]:
    """Sample pss_bytes of these groups every interval_s while the block runs; the dict yielded
    holds the largest sum seen under "peak_bytes" once the block ends (Linux keeps no peak PSS)."""
    import threading

    seen = {"peak_bytes": pss_bytes(leaders)}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval_s):
            seen["peak_bytes"] = max(seen["peak_bytes"], pss_bytes(leaders))

    sampler = threading.Thread(target=sample, name="pss-sampler", daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join()
        seen["peak_bytes"] = max(seen["peak_bytes"], pss_bytes(leaders))


def python() -> str:
    """The interpreter running the benchmarks (the project's venv)."""
    return sys.executable


# --- profiles ------------------------------------------------------------------------------


@contextmanager
def profiled(name: str, leaders: dict[str, int], enabled: bool) -> Iterator[None]:
    """Sample the services' workers with py-spy while the block runs (if enabled and installed);
    print and save where their time went (bench/results/<name>-<service>.txt)."""
    import shutil
    import signal

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not enabled or not Path(spy).exists():
        yield
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    recorders = {}
    for service, leader in leaders.items():
        workers = [pid for pid in group_pids(leader) if pid != leader] or [leader]
        for pid in workers:
            path = RESULTS_DIR / f"{name}-{service}-{pid}.collapsed"
            recorders[(service, path)] = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--function",
                    "--output",
                    str(path),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
    time.sleep(0.5)  # py-spy attaches
    try:
        yield
    finally:
        for recorder in recorders.values():
            recorder.send_signal(signal.SIGINT)
        for (service, path), recorder in recorders.items():
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
            if path.exists():
                summary = summarise_profile(path.read_text())
                (RESULTS_DIR / f"{name}-{service}.txt").write_text(summary + "\n")
                say(f"--- profile of {service} during {name} (py-spy, top inclusive time):\n{summary}")


# Frames of the server and the interpreter around every request: not where the time goes.
PLUMBING = ("threading.py", "concurrent/futures", "gunicorn/", "flask/", "werkzeug/", "mlops/kernel/web/", "<module>")


def summarise_profile(collapsed: str, top: int = 12) -> str:
    """Where the samples of a py-spy raw (collapsed stack) profile went: the functions with the
    most inclusive time (server plumbing left out) and those with the most time of their own."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples
    if not total:
        return "(no samples)"

    def listed(counts: dict[str, int]) -> list[str]:
        kept = [(frame, n) for frame, n in counts.items() if not any(p in frame for p in PLUMBING)]
        return [
            f"  {100 * n / total:5.1f}%  {frame[:140]}" for frame, n in sorted(kept, key=lambda item: -item[1])[:top]
        ]

    return "\n".join([f"{total} samples; inclusive:", *listed(inclusive), "own:", *listed(own)])
