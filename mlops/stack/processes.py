"""Processes of the stack: each one started in its own session (its pid is its process group id),
probed over HTTP, recognized again by its command line, and stopped as a group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from mlops.stack.plan import MLFLOW_UI, Launch

# What `mlops up` waits for before calling a service up (and what restarts wait for).
# A service is ready once it can answer its main requests (/ready); MLflow's UI has only /health.
READY_PATH = "/ready"
MLFLOW_UI_READY_PATH = "/health"
# Probes go straight to our own services, never through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start_process(launch: Launch, env: dict[str, str], log_path: Path | None) -> subprocess.Popen:
    """Start one process in a new session (its own process group); output to a pipe or a log file."""
    log = log_path.open("ab") if log_path is not None else None
    try:
        return subprocess.Popen(
            launch.command,
            env={**env, **launch.environment},
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # a new session: Ctrl-C in the terminal reaches only us, and we stop the group as one
            start_new_session=True,
        )
    finally:
        if log is not None:
            log.close()  # the child holds its own copy


def probe(url: str, path: str = "/health", timeout: float = 2.0) -> tuple[int | None, str]:
    """GET url + path: (status, body), or (None, why) if nothing answered."""
    try:
        with _DIRECT.open(url + path, timeout=timeout) as response:
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(2000).decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return None, str(reason)


def health(url: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """GET url/health: (status, body), or (None, why) if nothing answered."""
    return probe(url, "/health", timeout)


def ready_path(name: str) -> str:
    """The path that answers 200 once the named process of the stack is ready."""
    return MLFLOW_UI_READY_PATH if name == MLFLOW_UI else READY_PATH


def wait_ready(url: str, deadline: float, give_up: Callable[[], bool], path: str = READY_PATH) -> bool:
    """Probe url + path until it answers 200 (True), or time runs out or give_up() (False).

    At most one probe in flight: a service whose first answer takes seconds while it warms up
    is not flooded with retries.
    """
    while not give_up():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        status, _ = probe(url, path, timeout=max(0.2, min(left, 10.0)))
        if status == 200:
            return True
        time.sleep(0.05)
    return False


def describe_exit(code: int) -> str:
    """An exit status as a person reads it: "code 1", or "killed by SIGKILL"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"code {code}"


def live_group_members(pgid: int) -> list[int]:
    """The pids of the processes, zombies excluded, in process group pgid."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether the group still has anyone
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def command_line(pid: int) -> str:
    """The command line of a process ("" if it is gone or unreadable)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def group_alive(pgid: int, marker: str) -> bool:
    """Whether a process group still runs, and is really ours (not a reused pid)."""
    alive = live_group_members(pgid)
    if not alive:
        return False
    if pgid in alive and Path("/proc").is_dir():
        return marker in command_line(pgid)
    # the leader is gone but its group lives on: a group id is never reused while it has members
    return True


def signal_group(pgid: int, signum: int) -> None:
    """Send signum to every process of the group (nothing if the group is gone)."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def stop_groups(
    groups: dict[str, int],
    grace: float,
    force: Callable[[], bool] = lambda: False,
    children: Iterable[subprocess.Popen] = (),
    say: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """SIGTERM each named process group, SIGKILL what is left after `grace` seconds (or at once
    when force() turns true). Returns the names of the groups that had to be killed.

    `children` are our own Popen objects, reaped as they exit so that no zombie is left behind.
    """
    children = list(children)
    running = {name: pgid for name, pgid in groups.items() if live_group_members(pgid)}
    for pgid in running.values():
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running and time.monotonic() < deadline and not force():
        _reap(children)
        running = {name: pgid for name, pgid in running.items() if live_group_members(pgid)}
        time.sleep(0.05)
    killed = list(running)
    for name, pgid in running.items():
        say(f"killing {name}" + ("" if force() else f": it did not stop within {grace:g} s"))
        signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running and time.monotonic() < deadline:
        _reap(children)
        running = {name: pgid for name, pgid in running.items() if live_group_members(pgid)}
        time.sleep(0.05)
    for child in children:
        try:
            child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    return killed


def _reap(children: list[subprocess.Popen]) -> None:
    for child in children:
        child.poll()
