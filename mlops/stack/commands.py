"""`mlops up`, `mlops down` and `mlops status`: what each does with the stack of a data dir."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from mlops.kernel.config import Settings
from mlops.kernel.launch import pid_alive
from mlops.stack.errors import StackError
from mlops.stack.logs import LogPrinter
from mlops.stack.plan import MLFLOW_UI, SERVICES, Launch, client_url, format_table, plan, stack_table
from mlops.stack.ports import check_ports, wait_ports_free
from mlops.stack.processes import probe, ready_path, stop_groups
from mlops.stack.signals import StopRequest, stop_on_signals
from mlops.stack.state import StackState, read_state, requests_dir, running_state, state_path, supervisor_alive
from mlops.stack.supervisor import Supervisor, ask_to_start

SUPERVISOR_LOG = "mlops.log"


def up(settings: Settings, args: argparse.Namespace) -> int:
    """Start the stack in the terminal or in the background, or what is missing from a running one."""
    services = [s for s in SERVICES if args.only is None or s in args.only]
    launches = plan(settings, services, mlflow_ui_port=args.mlflow_ui_port if args.mlflow_ui else None)
    if args.supervise:
        return _supervise_in_background(settings, launches, args)
    state = running_state(state_path(settings))
    if state is not None:
        return _start_into(settings, state, launches, args)
    check_ports(settings.host, launches)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(requests_dir(settings), ignore_errors=True)
    if args.detach:
        return _up_detached(settings, launches, args)
    return _up_in_terminal(settings, launches, args)


def _up_in_terminal(settings: Settings, launches: list[Launch], args: argparse.Namespace) -> int:
    """Supervise the stack here, streaming its logs, until Ctrl-C / SIGTERM / SIGHUP."""
    request = stop_on_signals()
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    width = max(len("mlops"), *(len(name) for name in (*SERVICES, MLFLOW_UI)))
    printer = LogPrinter(sys.stdout, width=width, colour=colour)
    supervisor = Supervisor(
        settings, request, printer.say, args.timeout, args.grace, printer=printer, mlflow_ui_port=_ui_port(args)
    )

    def on_running() -> None:
        printer.write(stack_table(settings, launches) + "\n")
        printer.say("streaming logs; press Ctrl-C to stop everything")

    try:
        return supervisor.run(launches, on_running)
    finally:
        request.uninstall()


def _supervise_in_background(settings: Settings, launches: list[Launch], args: argparse.Namespace) -> int:
    """The supervisor `mlops up --detach` leaves behind: services log to files, it to mlops.log."""
    request = stop_on_signals()
    printer = LogPrinter(sys.stdout, width=len("mlops"), stamp=True)
    supervisor = Supervisor(
        settings,
        request,
        printer.say,
        args.timeout,
        args.grace,
        log_dir=settings.data_dir / "logs",
        mlflow_ui_port=_ui_port(args),
    )
    try:
        return supervisor.run(launches)
    finally:
        request.uninstall()


def _up_detached(settings: Settings, launches: list[Launch], args: argparse.Namespace) -> int:
    """Start a supervisor in the background and return once the stack answers (or failed)."""
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    supervisor_log = log_dir / SUPERVISOR_LOG
    offset = supervisor_log.stat().st_size if supervisor_log.exists() else 0
    argv = [a for a in args.argv if a not in ("-d", "--detach")]
    request = stop_on_signals()
    try:
        with supervisor_log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "mlops.cli", *argv, "--supervise"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _await(settings, process.pid, [launch.name for launch in launches], request, lambda: process.poll() is None)
        except _Interrupted:
            process.send_signal(signal.SIGTERM)
            process.wait(args.grace + 30)
            print("mlops: interrupted; stopped what had started", file=sys.stderr)
            return 130
        except StackError as error:
            if process.poll() is None:  # late: the supervisor is still trying
                process.send_signal(signal.SIGTERM)
            process.wait(args.grace + 30)
            with supervisor_log.open("rb") as log:
                log.seek(offset)
                print(log.read().decode(errors="replace").rstrip(), file=sys.stderr)
            raise StackError(f"{error}; stopped everything that had started") from None
    finally:
        request.uninstall()
    print(stack_table(settings, launches))
    again = f' MLOPS_ARGS="--data-dir {args.data_dir}"' if args.data_dir is not None else ""
    print(f"\nlogs: {log_dir}/<service>.log (restarts: {SUPERVISOR_LOG})    stop with: make down{again}")
    return 0


def _start_into(settings: Settings, state: StackState, launches: list[Launch], args: argparse.Namespace) -> int:
    """A stack already runs from this data dir: start what it misses (`mlops up --only NAME`)."""
    where = settings.data_dir
    if not supervisor_alive(state):
        # its supervisor was killed: the processes still run, but nobody can start anything into them
        check_ports(settings.host, launches, {m.port: f"{m.name}, pid {m.pid}" for m in state.members if m.alive})
        names = ", ".join(f"{m.name} on port {m.port}" for m in state.members if m.alive)
        raise StackError(
            f"a stack started from {where} is still running ({names}) but its `mlops up` is gone; "
            "stop it with `mlops down` (make down), or give this one another --data-dir"
        )
    if state.phase != "running":
        raise StackError(f"the stack started from {where} is {state.phase}; try again once `mlops status` shows it up")
    present = {m.name for m in state.members if m.state != "given up" and (m.alive or m.state != "running")}
    missing = [launch for launch in launches if launch.name not in present]
    already = [launch.name for launch in launches if launch.name in present]
    if already:
        print(f"mlops: already in the stack started from {where}: {', '.join(already)}", file=sys.stderr)
    if not missing:
        return 0
    names = [launch.name for launch in missing]
    ui_port = next((launch.port for launch in missing if launch.name == MLFLOW_UI), None)
    ask_to_start(settings, state.supervisor_pid, [n for n in names if n != MLFLOW_UI], ui_port)
    print(
        f"mlops: asked the running stack (its `mlops up` is pid {state.supervisor_pid}) to start {', '.join(names)}",
        file=sys.stderr,
    )
    request = stop_on_signals()
    try:
        _await(settings, state.supervisor_pid, names, request, lambda: pid_alive(state.supervisor_pid), args.timeout)
    except _Interrupted:
        print("mlops: stopped waiting; the stack goes on starting them (see `mlops status`)", file=sys.stderr)
        return 130
    finally:
        request.uninstall()
    return 0


class _Interrupted(Exception):
    pass


def _await(
    settings: Settings,
    supervisor_pid: int,
    names: list[str],
    request: StopRequest,
    supervisor_running: Callable[[], bool],
    timeout: float | None = None,
) -> None:
    """Follow the state file until the supervisor says every named process answers."""
    path = state_path(settings)
    deadline = None if timeout is None else time.monotonic() + timeout + 5
    announced: set[str] = set()
    while True:
        if request.wait(0.1):
            raise _Interrupted()
        state = read_state(path)
        if state is not None and state.supervisor_pid == supervisor_pid:
            for name in names:
                member = state.member(name)
                if member is None:
                    continue
                if member.state == "running" and name not in announced:
                    announced.add(name)
                    print(f"mlops: {name} is healthy ({member.ready_seconds or 0:.1f} s)", file=sys.stderr)
                elif member.state == "given up":
                    raise StackError(f"{name} could not be started: {member.last_exit}")
            if announced == set(names):
                return
            if state.error:
                raise StackError(state.error)
        if not supervisor_running():
            raise StackError("the stack's `mlops up` exited before every service answered")
        if deadline is not None and time.monotonic() > deadline:
            late = ", ".join(sorted(set(names) - announced))
            raise StackError(f"{late} did not answer within {timeout:g} s; see `mlops status` and the logs")


def _ui_port(args: argparse.Namespace) -> int | None:
    return args.mlflow_ui_port if args.mlflow_ui else None


def down(settings: Settings, grace: float) -> int:
    """Stop the stack recorded in the data dir and wait until its ports are free."""
    path = state_path(settings)
    state = read_state(path)
    if state is None:
        print(f"mlops: nothing to stop (no stack started by `mlops up` from {settings.data_dir})")
        return 0
    if supervisor_alive(state):
        # its supervisor (in a terminal or in the background) stops its own processes, as Ctrl-C would
        os.kill(state.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + grace + 15
        while pid_alive(state.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    killed = stop_groups(
        {m.name: m.pid for m in state.members if m.alive},
        grace,
        say=lambda message: print(f"mlops: {message}", file=sys.stderr),
    )
    taken = wait_ports_free(state.host, [m.port for m in state.members], timeout=10)
    path.unlink(missing_ok=True)
    shutil.rmtree(requests_dir(settings), ignore_errors=True)
    if taken:
        raise StackError(f"ports still in use after stopping: {', '.join(map(str, taken))}")
    names = ", ".join(f"{m.name} (:{m.port})" for m in state.members)
    print(f"mlops: stopped {names}" + (f"; killed {', '.join(killed)}" if killed else ""))
    return 0


def status(settings: Settings, only: list[str] | None) -> int:
    """Print whether each service is ready (its /ready; MLflow UI: /health), and its restarts; exit 0 only if all are."""
    state = running_state(state_path(settings))
    recorded = {m.name: m for m in state.members} if state else {}
    if only is not None:
        names = [s for s in (*SERVICES, MLFLOW_UI) if s in only]
    else:  # what `mlops up` started from this data dir, or else every service
        names = list(recorded) or list(SERVICES)
    if state is None:
        print(f"no stack started by `mlops up` from {settings.data_dir}: checking the configured ports")
    rows = [("service", "URL", "status", "pid", "restarts", "last exit")]
    healthy = True
    for name in names:
        member = recorded.get(name)
        port = member.port if member else (state.ports.get(name) if state else None) or settings.port_of(name)
        url = member.url if member else client_url(settings, port)
        code, body = probe(url, ready_path(name))  # the compose healthchecks run this: ready, not only alive
        shown, ok = _health_shown(name, code, body, member.state if member else None)
        healthy &= ok
        pid = str(member.pid) if member and member.alive else "-"
        restarts = str(member.restarts) if member else "-"
        rows.append((name, url, shown, pid, restarts, (member.last_exit if member else None) or "-"))
    print(format_table(rows))
    return 0 if healthy else 1


def _health_shown(name: str, code: int | None, body: str, state: str | None) -> tuple[str, bool]:
    """What status says of one service's /health answer, and whether that counts as healthy."""
    if code is None:
        return {"restarting": "restarting", "given up": "given up (crashed repeatedly)"}.get(
            state, "not running"
        ), False
    try:
        answered_by = json.loads(body).get("service") if name != MLFLOW_UI else name
    except (ValueError, AttributeError):
        answered_by = None
    if answered_by not in (name, None) or (answered_by is None and name != MLFLOW_UI):
        return "something else answers here", False
    if code != 200:
        return f"unhealthy ({code})", False
    shown = "healthy" if state is not None else "healthy, not started from this data dir"
    return shown + (", degraded" if _degraded(body) else ""), True


def _degraded(body: str) -> bool:
    """Whether a ready answer says the service answers without one of its dependencies (the ML
    service predicting with the model it holds while the dataset DB is down)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and bool(answer.get("degraded"))
