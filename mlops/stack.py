"""The local stack behind `mlops up | down | status`: every service a gunicorn process leading its
own process group, all started at once, watched through /health, and stopped as one.

Besides the kernel's settings, only the standard library is imported here, so the `mlops`
command stays quick to start.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from mlops.kernel.config import Settings
from mlops.kernel.launch import gunicorn_command, settings_environment

STATE_FILE = "mlops-stack.json"
MLFLOW_UI = "mlflow-ui"
DEFAULT_MLFLOW_UI_PORT = 5000
# MLflow's server also starts a job runner and seven huey consumers (for GenAI scoring and trace
# archival), each a Python process importing MLflow: a UI for browsing runs needs none of them.
MLFLOW_UI_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# Health checks go straight to our own services, never through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StackError(Exception):
    """Something the user must fix or look at; the message says what."""


class StartFailed(StackError):
    """Some processes did not come up; `names` says which."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.names = names


class Interrupted(Exception):
    """The user asked to stop (Ctrl-C, SIGTERM) while the stack was starting."""


@dataclass(frozen=True)
class Launch:
    """How to start one process of the stack and where it answers."""

    name: str
    command: list[str]
    port: int
    url: str
    environment: dict[str, str] = field(default_factory=dict)  # on top of the settings' environment

    @property
    def marker(self) -> str:
        """A word of the command line that tells this process from an unrelated one with its pid."""
        return "mlflow" if self.name == MLFLOW_UI else f"mlops-{self.name}"


@dataclass(frozen=True)
class Member:
    """One started process as the state file remembers it; its pid is also its process group id."""

    name: str
    pid: int
    port: int
    url: str
    marker: str
    log: str | None = None


@dataclass(frozen=True)
class StackState:
    """What `mlops up` started from a data dir; `supervisor_pid` is a foreground `mlops up`."""

    supervisor_pid: int | None
    host: str
    members: list[Member]


@dataclass
class Started:
    """A process started by this `mlops` invocation."""

    launch: Launch
    process: subprocess.Popen
    log_path: Path | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def member(self) -> Member:
        """This process as the state file records it."""
        log = str(self.log_path) if self.log_path is not None else None
        return Member(self.launch.name, self.process.pid, self.launch.port, self.launch.url, self.launch.marker, log)


@dataclass
class StopRequest:
    """Set by SIGINT / SIGTERM / SIGHUP; a second signal while stopping means "kill now"."""

    stop: threading.Event = field(default_factory=threading.Event)
    force: threading.Event = field(default_factory=threading.Event)

    def handle(self, _signum: int, _frame: object) -> None:
        """Ask to stop; a signal while already stopping asks to kill."""
        if self.stop.is_set():
            self.force.set()
        self.stop.set()


def stop_on_signals() -> StopRequest:
    """Turn Ctrl-C, SIGTERM and SIGHUP into a stop request instead of an abrupt exit."""
    request = StopRequest()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request.handle)
    return request


# --- what to start -------------------------------------------------------------------------


def client_url(settings: Settings, port: int) -> str:
    """The URL a client on this machine uses to reach a server bound to settings.host:port."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def plan(settings: Settings, services: Iterable[str], *, mlflow_ui_port: int | None = None) -> list[Launch]:
    """The processes to start, in start order: the services, then MLflow's UI if asked for."""
    launches = [
        Launch(s, gunicorn_command(s, settings), settings.port_of(s), client_url(settings, settings.port_of(s)))
        for s in services
    ]
    if mlflow_ui_port is not None:
        launches.append(
            Launch(
                MLFLOW_UI,
                mlflow_ui_command(settings, mlflow_ui_port),
                mlflow_ui_port,
                client_url(settings, mlflow_ui_port),
                MLFLOW_UI_ENVIRONMENT,
            )
        )
    return launches


def mlflow_ui_command(settings: Settings, port: int) -> list[str]:
    """MLflow's own server and UI on the tracking service's backend store and artifact root."""
    from mlops.kernel.db import normalize_url  # SQLAlchemy: imported only when the UI is asked for

    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", normalize_url(settings.mlflow_uri),
        "--default-artifact-root", settings.mlflow_artifacts,
        # runs keep file:// artifact locations that the UI reads directly; no upload proxy needed
        "--no-serve-artifacts",
        "--host", settings.host,
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip


def service_environment(settings: Settings) -> dict[str, str]:
    """The environment of a started process: ours, then the settings, with unbuffered output."""
    return {**os.environ, **settings_environment(settings), "PYTHONUNBUFFERED": "1"}


def mask_password(url: str) -> str:
    """The URL with its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# --- ports -----------------------------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port (the bind gunicorn will try fails)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise StackError(f"cannot bind to host {host!r}: {error.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        # gunicorn binds with SO_REUSEADDR too, so old TIME_WAIT connections do not count as "in use"
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise StackError(f"cannot bind to {host}:{port}: {error.strerror}") from None
    return False


def check_ports(host: str, launches: list[Launch], state: StackState | None = None) -> None:
    """Refuse to start if two processes share a port or one of the ports is already taken."""
    seen: dict[int, str] = {}
    for launch in launches:
        if launch.port in seen:
            raise StackError(f"{seen[launch.port]} and {launch.name} are both configured on port {launch.port}")
        seen[launch.port] = launch.name
    for launch in launches:
        if port_in_use(host, launch.port):
            owner = ""
            if state is not None:
                holder = next((m for m in state.members if m.port == launch.port and member_alive(m)), None)
                if holder is not None:
                    owner = f" by an earlier `mlops up` ({holder.name}, pid {holder.pid}); stop it with `mlops down`"
            flag = "--mlflow-ui-port" if launch.name == MLFLOW_UI else f"--{launch.name}-port"
            raise StackError(
                f"port {launch.port} ({launch.name}) on {host} is already in use{owner}. "
                f"Nothing was started. Free the port or choose another one with {flag}."
            )


def wait_ports_free(host: str, ports: Iterable[int], timeout: float) -> list[int]:
    """Wait until nothing listens on the ports; return those still taken when time runs out."""
    deadline = time.monotonic() + timeout
    taken = list(ports)
    while taken:
        taken = [port for port in taken if port_in_use(host, port)]
        if not taken or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return taken


# --- processes -------------------------------------------------------------------------------


def start_process(launch: Launch, env: dict[str, str], log_path: Path | None) -> Started:
    """Start one process in a new session (its own process group); output to a pipe or a log file."""
    log = log_path.open("ab") if log_path is not None else None
    try:
        process = subprocess.Popen(
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
    return Started(launch, process, log_path)


def health(url: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """GET url/health: (status, body), or (None, why) if nothing answered."""
    try:
        with _DIRECT.open(url + "/health", timeout=timeout) as response:
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(2000).decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return None, str(reason)


def wait_until_healthy(
    started: list[Started],
    timeout: float,
    on_healthy: Callable[[Started, float], None],
    stop: threading.Event,
) -> None:
    """Wait until every process answers /health with 200; fail if one exits or time runs out.

    One waiter thread per process, each with at most one health request in flight: a service
    whose /health takes seconds while it warms up is not flooded with retries.
    """
    deadline = time.monotonic() + timeout
    exited: list[StartFailed] = []
    late: list[str] = []
    give_up = threading.Event()

    def wait_for(item: Started) -> None:
        while not (give_up.is_set() or stop.is_set()):
            code = item.process.poll()
            if code is not None:
                hint = f" (log: {item.log_path})" if item.log_path else ""
                exited.append(StartFailed(f"{item.launch.name} exited with code {code} while starting{hint}", [item.launch.name]))
                give_up.set()
                return
            left = deadline - time.monotonic()
            if left <= 0:
                late.append(item.launch.name)
                return
            # a /health may block while the service warms up: wait for its answer, do not pile up retries
            status, _ = health(item.launch.url, timeout=max(0.2, left))
            if status == 200:
                on_healthy(item, time.monotonic() - item.started_at)
                return
            time.sleep(0.05)

    waiters = [threading.Thread(target=wait_for, args=(item,), name=f"health-{item.launch.name}", daemon=True) for item in started]
    for waiter in waiters:
        waiter.start()
    # the main thread only joins, in short slices, so that Ctrl-C is handled at once
    while any(waiter.is_alive() for waiter in waiters):
        for waiter in waiters:
            waiter.join(0.05)
        if stop.is_set():
            give_up.set()
    if stop.is_set():
        raise Interrupted()
    if exited:
        raise exited[0]
    if late:
        raise StartFailed(f"{', '.join(late)} did not answer /health within {timeout:g} s", late)


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


def member_alive(member: Member) -> bool:
    """Whether the member's process group still runs, and is really ours (not a reused pid)."""
    alive = live_group_members(member.pid)
    if not alive:
        return False
    if member.pid in alive and Path("/proc").is_dir():
        return member.marker in command_line(member.pid)
    # the leader is gone but its group lives on: a group id is never reused while it has members
    return True


def stop_groups(
    members: list[Member],
    grace: float,
    force: threading.Event | None = None,
    children: Iterable[subprocess.Popen] = (),
    say: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """SIGTERM each member's process group, SIGKILL what is left after `grace` seconds.

    Returns the names of the members that had to be killed. `children` are our own Popen
    objects, reaped as they exit so that no zombie is left behind.
    """
    children = list(children)
    running = [m for m in members if member_alive(m)]
    for member in running:
        _signal_group(member.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running and time.monotonic() < deadline and not (force and force.is_set()):
        for child in children:
            child.poll()
        running = [m for m in running if live_group_members(m.pid)]
        time.sleep(0.05)
    killed = [m.name for m in running]
    for member in running:
        forced = force is not None and force.is_set()
        say(f"killing {member.name}" + ("" if forced else f": it did not stop within {grace:g} s"))
        _signal_group(member.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running and time.monotonic() < deadline:
        for child in children:
            child.poll()
        running = [m for m in running if live_group_members(m.pid)]
        time.sleep(0.05)
    for child in children:
        try:
            child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    return killed


def _signal_group(pgid: int, signum: int) -> None:
    """Send signum to every process of the group (nothing if the group is gone)."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


# --- the state file --------------------------------------------------------------------------


def state_path(settings: Settings) -> Path:
    """Where `mlops up` records what it started, for `mlops down` and `mlops status`."""
    return settings.data_dir / STATE_FILE


def write_state(path: Path, state: StackState) -> None:
    """Write the state file atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(partial, path)


def read_state(path: Path) -> StackState | None:
    """The recorded stack, or None if there is none (or the file is unreadable)."""
    try:
        raw = json.loads(path.read_text())
        return StackState(raw.get("supervisor_pid"), raw["host"], [Member(**m) for m in raw["members"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_state(path: Path) -> StackState | None:
    """The recorded stack if any of it still runs; a stale file is removed."""
    state = read_state(path)
    if state is None:
        return None
    if supervisor_alive(state) or any(member_alive(m) for m in state.members):
        return state
    path.unlink(missing_ok=True)
    return None


def supervisor_alive(state: StackState) -> bool:
    """Whether the foreground `mlops up` that wrote the state still runs."""
    if state.supervisor_pid is None or not pid_alive(state.supervisor_pid):
        return False
    cmdline = command_line(state.supervisor_pid)
    return not Path("/proc").is_dir() or ("mlops" in cmdline and " up" in cmdline)


def pid_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc").is_dir()
    return stat[stat.rindex(")") + 2] != "Z"


# --- log streaming ---------------------------------------------------------------------------

_COLOURS = ("36", "33", "35", "32", "34", "31")


@dataclass
class LogPrinter:
    """Writes the processes' output and our own messages line by line, each with a name prefix."""

    out: IO[str]
    width: int
    colour: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def prefix(self, name: str, index: int | None = None) -> str:
        """The column that starts each line of name's output (coloured per process on a terminal)."""
        label = f"{name:<{self.width}} |"
        if self.colour:
            code = "1" if index is None else _COLOURS[index % len(_COLOURS)]
            label = f"\033[{code}m{label}\033[0m"
        return label + " "

    def write(self, text: str) -> None:
        """Write text (one or more whole lines) without interleaving it with another writer."""
        with self.lock:
            try:
                self.out.write(text)
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # our reader went away; keep draining the pipes so the services never block

    def say(self, message: str) -> None:
        """A message from `mlops` itself, in the same column layout as the services' logs."""
        self.write(self.prefix("mlops") + message + "\n")

    def follow(self, name: str, index: int, stream: IO[bytes]) -> None:
        """Copy stream to the output in a background thread, every line prefixed by name."""
        prefix = self.prefix(name, index)

        def pump() -> None:
            for raw in iter(stream.readline, b""):
                self.write(prefix + raw.decode(errors="replace").rstrip("\r\n") + "\n")
            stream.close()

        thread = threading.Thread(target=pump, name=f"log-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def drain(self, timeout: float) -> None:
        """Wait until every followed stream reached its end (or timeout)."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
