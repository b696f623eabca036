"""The state file, `<data dir>/mlops-stack.json`: what `mlops up` runs from a data dir, written
by its supervisor at each change, read by `mlops down`, `mlops status`, `mlops demo` and a
second `mlops up`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mlops.kernel.config import Settings
from mlops.kernel.launch import pid_alive
from mlops.stack.processes import command_line, group_alive

STATE_FILE = "mlops-stack.json"
# `mlops up --only SERVICE` into a running stack leaves its request here for the supervisor.
REQUESTS_DIR = "mlops-stack.requests"


@dataclass(frozen=True)
class Member:
    """One process of the stack as the state file records it; its pid is its process group id.

    `state` is starting, running, restarting or given up; `restarts` counts the restarts after
    a crash, `last_exit` says how the last one ended ("killed by SIGKILL at 10:42:07").
    """

    name: str
    pid: int
    port: int
    url: str
    marker: str
    log: str | None = None
    state: str = "running"
    restarts: int = 0
    last_exit: str | None = None
    ready_seconds: float | None = None  # how long its last start took to answer

    @property
    def alive(self) -> bool:
        """Whether its process group still runs, and is really ours (not a reused pid)."""
        return group_alive(self.pid, self.marker)


@dataclass(frozen=True)
class StackState:
    """What `mlops up` runs from a data dir; `supervisor_pid` is the `mlops up` process watching
    it (in a terminal, or in the background after --detach); `phase` is starting, running or
    stopping; `error` why a start failed."""

    supervisor_pid: int | None
    host: str
    members: list[Member]
    phase: str = "running"
    error: str | None = None
    logs: str | None = None  # the directory of the log files of a detached stack
    ports: dict[str, int] = field(default_factory=dict)  # every service's configured port

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)


def state_path(settings: Settings) -> Path:
    """Where `mlops up` records what it started, for `mlops down` and `mlops status`."""
    return settings.data_dir / STATE_FILE


def requests_dir(settings: Settings) -> Path:
    return settings.data_dir / REQUESTS_DIR


def write_state(path: Path, state: StackState) -> None:
    """Write the state file atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(partial, path)


def read_state(path: Path) -> StackState | None:
    """The recorded stack, or None if there is none (or the file is unreadable)."""
    try:
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(Member)}
        members = [Member(**{k: v for k, v in m.items() if k in known}) for m in raw["members"]]
        return StackState(
            raw.get("supervisor_pid"),
            raw["host"],
            members,
            raw.get("phase", "running"),
            raw.get("error"),
            raw.get("logs"),
            dict(raw.get("ports") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_state(path: Path) -> StackState | None:
    """The recorded stack if any of it still runs; a stale file is removed."""
    state = read_state(path)
    if state is None:
        return None
    if supervisor_alive(state) or any(m.alive for m in state.members):
        return state
    path.unlink(missing_ok=True)
    return None


def supervisor_alive(state: StackState) -> bool:
    """Whether the `mlops up` that wrote the state still runs."""
    if state.supervisor_pid is None or not pid_alive(state.supervisor_pid):
        return False
    cmdline = command_line(state.supervisor_pid)
    return not Path("/proc").is_dir() or ("mlops" in cmdline and " up" in cmdline)
