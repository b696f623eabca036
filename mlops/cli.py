"""The `mlops` command: run the four services on this machine (up / down / status), serve one of
them (serve, used by the container image) and run the walkthrough against them (demo).

Heavy libraries (Flask, SQLAlchemy, MLflow, scikit-learn) are never imported here: the services
run in their own processes, and `mlops --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from mlops import stack
from mlops.kernel.config import ENVIRONMENT_VARIABLES, Settings
from mlops.kernel.launch import SERVICE_APPS, gunicorn_command
from mlops.stack import DEFAULT_MLFLOW_UI_PORT, MLFLOW_UI, Launch, StackError

SERVICES = tuple(SERVICE_APPS)
# What each service keeps where, for the table `mlops up` prints.
STORAGE = {
    "simulator": "dataset DB",
    "ml": "dataset DB",
    "tracking": "MLflow store, dataset DB",
    "monitoring": "dataset DB",
    MLFLOW_UI: "MLflow store",
}

# command-line flag -> (Settings field, type, what it is)
SETTINGS_FLAGS = {
    "--host": ("host", str, "interface the services bind to"),
    **{f"--{s}-port": (f"{s}_port", int, f"port of the {s} service") for s in SERVICES},
    "--data-dir": ("data_dir", str, "directory of the SQLite files, logs and the stack's state file"),
    "--dataset-db-url": ("dataset_db_url", str, "dataset database URL (SQLite under the data dir if empty)"),
    "--mlflow-tracking-uri": ("mlflow_tracking_uri", str, "MLflow backend store URI (SQLite under the data dir if empty)"),
    "--workers": ("workers", int, "gunicorn worker processes per service"),
}
NETWORK_FLAGS = ("--host", *(f"--{s}-port" for s in SERVICES))


class UsageError(Exception):
    """A command line or configuration the user must correct."""


def main(argv: list[str] | None = None) -> int:
    """Run one `mlops` subcommand and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (StackError, UsageError) as error:
        print(f"mlops: error: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="Run the MLOps microservices (simulator, ml, tracking, monitoring) and the walkthrough.",
        epilog="Flags override environment variables, which override the defaults (see README: Configuration).",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="start the services, wait until healthy, stream their logs; Ctrl-C stops them",
        description="Start the services as gunicorn processes, wait for each /health, print where they are "
        "and stream their logs until Ctrl-C or SIGTERM, which stops them all.",
    )
    up.add_argument("--only", nargs="+", choices=SERVICES, metavar="SERVICE", help=f"start only these ({', '.join(SERVICES)})")
    up.add_argument("-d", "--detach", action="store_true", help="return once all are healthy; logs go to DATA_DIR/logs; stop with `mlops down`")
    up.add_argument("--mlflow-ui", action="store_true", help="also start MLflow's own UI on the same backend store")
    up.add_argument("--mlflow-ui-port", type=int, default=DEFAULT_MLFLOW_UI_PORT, metavar="PORT", help=f"port of MLflow's UI (default {DEFAULT_MLFLOW_UI_PORT})")
    up.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="how long to wait for each /health (default 60)")
    up.add_argument("--grace", type=float, default=10.0, metavar="SECONDS", help="how long stopping may take before SIGKILL (default 10)")
    add_settings_flags(up, SETTINGS_FLAGS)
    up.set_defaults(run=run_up)

    down = commands.add_parser("down", help="stop what `mlops up` started from the data dir and wait until its ports are free")
    down.add_argument("--grace", type=float, default=10.0, metavar="SECONDS", help="how long stopping may take before SIGKILL (default 10)")
    add_settings_flags(down, ["--data-dir"])
    down.set_defaults(run=run_down)

    status = commands.add_parser(
        "status",
        help="show whether each service answers /health (exit 1 unless all do)",
        description="Check /health of what `mlops up` started from the data dir (every service if nothing "
        "was recorded there); exit 1 unless all answer 200.",
    )
    status.add_argument("--only", nargs="+", choices=SERVICES, metavar="SERVICE", help="check only these")
    add_settings_flags(status, [*NETWORK_FLAGS, "--data-dir"])
    status.set_defaults(run=run_status)

    serve = commands.add_parser(
        "serve",
        help="run one service (or MLflow's UI) in the foreground, as the container image does",
        description="Replace this process by gunicorn serving one service, or by MLflow's server and UI on the "
        "tracking service's store (mlflow-ui).",
    )
    serve.add_argument("service", choices=[*SERVICES, MLFLOW_UI], help="what to run")
    serve.add_argument("--mlflow-ui-port", type=int, default=DEFAULT_MLFLOW_UI_PORT, metavar="PORT", help=f"port of MLflow's UI (default {DEFAULT_MLFLOW_UI_PORT})")
    add_settings_flags(serve, SETTINGS_FLAGS)
    serve.set_defaults(run=run_serve)

    demo = commands.add_parser(
        "demo",
        help="run the walkthrough end to end against running services and summarize it",
        description="Load the sets, optimize three models, deploy the best, train, evaluate on testing and "
        "production, and ask monitoring whether re-training is advised.",
    )
    demo.add_argument("--experiment-name", default="wine_test_1", help="MLflow experiment to log to (default wine_test_1)")
    add_settings_flags(demo, NETWORK_FLAGS)
    demo.set_defaults(run=run_demo)
    return parser


def add_settings_flags(parser: argparse.ArgumentParser, flags: Iterable[str]) -> None:
    """Add the given configuration flags, each naming its environment variable and default."""
    group = parser.add_argument_group("configuration")
    for flag in flags:
        field, kind, meaning = SETTINGS_FLAGS[flag]
        default = Settings.model_fields[field].default
        shown = f"; default {default}" if default not in ("", None) else ""
        group.add_argument(
            flag,
            dest=field,
            type=kind,
            default=None,
            metavar="N" if field == "workers" else field.split("_")[-1].upper(),
            help=f"{meaning} [{ENVIRONMENT_VARIABLES[field]}{shown}]",
        )


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings: flags given on the command line over the environment over the defaults."""
    overrides = {
        field: value
        for field, _, _ in SETTINGS_FLAGS.values()
        if (value := getattr(args, field, None)) is not None
    }
    try:
        return Settings.from_env(**overrides)
    except ValueError as error:
        raise UsageError(str(error)) from None


# --- up ------------------------------------------------------------------------------------


def run_up(args: argparse.Namespace) -> int:
    """Start the stack (in the foreground, or detached) once its ports are known to be free."""
    settings = settings_from(args)
    services = [s for s in SERVICES if args.only is None or s in args.only]
    launches = stack.plan(settings, services, mlflow_ui_port=args.mlflow_ui_port if args.mlflow_ui else None)
    state = stack.running_state(stack.state_path(settings))
    stack.check_ports(settings.host, launches, state)
    if state is not None:
        names = ", ".join(f"{m.name} on port {m.port}" for m in state.members) or "starting"
        raise StackError(
            f"a stack started from {settings.data_dir} is still running ({names}); "
            "stop it with `mlops down`, or give this one another --data-dir"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.detach:
        return up_detached(settings, launches, args)
    return up_foreground(settings, launches, args)


def in_start_order(launches: list[Launch]) -> list[list[Launch]]:
    """The launches in batches: the services together, then MLflow's UI.

    MLflow's UI waits for the services because it would race the tracking service to create
    and migrate a new MLflow store.
    """
    services = [launch for launch in launches if launch.name != MLFLOW_UI]
    ui = [launch for launch in launches if launch.name == MLFLOW_UI]
    return [batch for batch in (services, ui) if batch]


def up_foreground(settings: Settings, launches: list[Launch], args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C / SIGTERM / SIGHUP or until one of its processes dies."""
    request = stack.stop_on_signals()
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    printer = stack.LogPrinter(sys.stdout, width=max(len("mlops"), *(len(l.name) for l in launches)), colour=colour)
    env = stack.service_environment(settings)
    path = stack.state_path(settings)
    started: list[stack.Started] = []
    code = 0
    try:
        for batch in in_start_order(launches):
            new = [stack.start_process(launch, env, None) for launch in batch]
            for item in new:
                printer.follow(item.launch.name, launches.index(item.launch), item.process.stdout)
            started += new
            stack.write_state(path, stack.StackState(os.getpid(), settings.host, [s.member for s in started]))
            stack.wait_until_healthy(
                new,
                args.timeout,
                lambda item, elapsed: printer.say(f"{item.launch.name} is healthy ({elapsed:.1f} s)"),
                request.stop,
            )
        printer.write(stack_table(settings, launches) + "\n")
        printer.say("streaming logs; press Ctrl-C to stop everything")
        watch(started, request.stop)
    except stack.Interrupted:
        pass
    except StackError as error:
        print(f"mlops: error: {error}", file=sys.stderr)
        code = 1
    finally:
        printer.say("stopping (Ctrl-C again to kill at once)")
        members = [item.member for item in started]
        killed = stack.stop_groups(members, args.grace, request.force, [s.process for s in started], printer.say)
        printer.drain(timeout=5)
        path.unlink(missing_ok=True)
        printer.say("stopped " + (", ".join(m.name for m in members) or "nothing") + (f" (killed {', '.join(killed)})" if killed else ""))
    return code


def watch(started: list[stack.Started], stop: threading.Event) -> None:
    """Wait for a stop request; a process that exits on its own is an error."""
    while not stop.wait(0.2):
        for item in started:
            code = item.process.poll()
            if code is not None:
                raise StackError(f"{item.launch.name} exited unexpectedly with code {code}; stopping the others")


def up_detached(settings: Settings, launches: list[Launch], args: argparse.Namespace) -> int:
    """Start the stack in the background, return once it is healthy (or stop it if it is not)."""
    request = stack.stop_on_signals()
    env = stack.service_environment(settings)
    path = stack.state_path(settings)
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[stack.Started] = []
    try:
        for batch in in_start_order(launches):
            new = [stack.start_process(launch, env, log_dir / f"{launch.name}.log") for launch in batch]
            started += new
            stack.write_state(path, stack.StackState(None, settings.host, [s.member for s in started]))
            stack.wait_until_healthy(
                new,
                args.timeout,
                lambda item, elapsed: print(f"mlops: {item.launch.name} is healthy ({elapsed:.1f} s)", file=sys.stderr),
                request.stop,
            )
    except (StackError, stack.Interrupted) as error:
        stack.stop_groups([item.member for item in started], args.grace, request.force, [s.process for s in started])
        path.unlink(missing_ok=True)
        if isinstance(error, stack.Interrupted):
            print("mlops: interrupted; stopped what had started", file=sys.stderr)
            return 130
        for name in getattr(error, "names", []):
            print(f"--- last lines of {log_dir / f'{name}.log'}", file=sys.stderr)
            print(tail(log_dir / f"{name}.log"), file=sys.stderr)
        raise StackError(f"{error}; stopped everything that had started") from None
    print(stack_table(settings, launches))
    data_dir = "" if args.data_dir is None else f" --data-dir {args.data_dir}"
    print(f"\nlogs: {log_dir}/<service>.log    stop with: mlops down{data_dir}")
    return 0


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a text file ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stack_table(settings: Settings, launches: list[Launch]) -> str:
    """Where each started process answers, its docs and what it stores where (passwords masked)."""
    rows = [("service", "URL", "docs", "storage")]
    for launch in launches:
        docs = launch.url if launch.name == MLFLOW_UI else f"{launch.url}/docs"
        rows.append((launch.name, launch.url, docs, STORAGE.get(launch.name, "")))
    storage = [
        ("dataset DB", stack.mask_password(settings.dataset_db)),
        ("MLflow store", stack.mask_password(settings.mlflow_uri)),
        ("MLflow artifacts", stack.mask_password(settings.mlflow_artifacts)),
    ]
    return format_table(rows) + "\n\n" + format_table(storage, header=False)


def format_table(rows: list[tuple[str, ...]], *, header: bool = True) -> str:
    """Left-aligned columns separated by two spaces, the header underlined."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if header:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


# --- down / status / serve -----------------------------------------------------------------


def run_down(args: argparse.Namespace) -> int:
    """Stop the stack recorded in the data dir and wait until its ports are free."""
    settings = settings_from(args)
    path = stack.state_path(settings)
    state = stack.read_state(path)
    if state is None:
        print(f"mlops: nothing to stop (no stack started by `mlops up` from {settings.data_dir})")
        return 0
    if stack.supervisor_alive(state):
        # a foreground `mlops up`: let it stop its own services, as Ctrl-C would
        os.kill(state.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + args.grace + 15
        while stack.pid_alive(state.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    killed = stack.stop_groups(
        [m for m in state.members if stack.member_alive(m)],
        args.grace,
        say=lambda message: print(f"mlops: {message}", file=sys.stderr),
    )
    taken = stack.wait_ports_free(state.host, [m.port for m in state.members], timeout=10)
    path.unlink(missing_ok=True)
    if taken:
        raise StackError(f"ports still in use after stopping: {', '.join(map(str, taken))}")
    names = ", ".join(f"{m.name} (:{m.port})" for m in state.members)
    print(f"mlops: stopped {names}" + (f"; killed {', '.join(killed)}" if killed else ""))
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print whether each service answers /health; exit 0 only if every one does."""
    settings = settings_from(args)
    state = stack.running_state(stack.state_path(settings))
    recorded = {m.name: m for m in state.members} if state else {}
    if args.only is not None:
        names = [s for s in SERVICES if s in args.only]
    else:  # what `mlops up` started from this data dir, or else every service
        names = list(recorded) or list(SERVICES)
    rows = [("service", "URL", "status", "pid")]
    healthy = True
    for name in names:
        member = recorded.get(name)
        url = member.url if member else stack.client_url(settings, settings.port_of(name))
        code, _ = stack.health(url)
        if code == 200:
            shown = "healthy"
        elif code is None:
            shown = "not running"
        else:
            shown = f"unhealthy ({code})"
        healthy &= code == 200
        rows.append((name, url, shown, str(member.pid) if member and stack.member_alive(member) else "-"))
    print(format_table(rows))
    return 0 if healthy else 1


def run_serve(args: argparse.Namespace) -> int:
    """Replace this process by the server of one service, so that signals reach it directly."""
    settings = settings_from(args)
    environment = stack.service_environment(settings)
    if args.service == MLFLOW_UI:
        command = stack.mlflow_ui_command(settings, args.mlflow_ui_port)
        environment |= stack.MLFLOW_UI_ENVIRONMENT
    else:
        command = gunicorn_command(args.service, settings)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, environment)
    return 0  # not reached


def run_demo(args: argparse.Namespace) -> int:
    """Run the walkthrough against the running services and print its summary."""
    from mlops.demo import run_walkthrough

    return run_walkthrough(settings_from(args), experiment_name=args.experiment_name)


if __name__ == "__main__":
    sys.exit(main())
