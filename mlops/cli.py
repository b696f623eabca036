"""The `mlops` command: run the four services on this machine (up / down / status), serve one of
them (serve, used by the container image) and run the walkthrough against them (demo).

Heavy libraries (Flask, SQLAlchemy, MLflow, scikit-learn) are never imported here: the services
run in their own processes, and `mlops --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable

from mlops.kernel.config import ENVIRONMENT_VARIABLES, Settings
from mlops.kernel.launch import gunicorn_command
from mlops.stack import StackError, commands
from mlops.stack.plan import (
    DEFAULT_MLFLOW_UI_PORT,
    MLFLOW_UI,
    MLFLOW_UI_ENVIRONMENT,
    SERVICES,
    mlflow_ui_command,
    service_environment,
)

DEFAULT_EXPERIMENT = "wine_test_1"
# How long stopping the services may take before they are killed (SIGKILL).
GRACE_SECONDS = 10.0

# command-line flag -> (Settings field, type, what it is)
SETTINGS_FLAGS = {
    "--host": ("host", str, "interface the services bind to"),
    **{f"--{s}-port": (f"{s}_port", int, f"port of the {s} service") for s in SERVICES},
    "--data-dir": ("data_dir", str, "directory of the SQLite files, logs and the stack's state file"),
    "--dataset-db-url": ("dataset_db_url", str, "dataset database URL (SQLite under the data dir if empty)"),
    "--mlflow-tracking-uri": (
        "mlflow_tracking_uri",
        str,
        "MLflow backend store URI (SQLite under the data dir if empty)",
    ),
    "--workers": ("workers", int, "gunicorn worker processes per service"),
}


class UsageError(Exception):
    """A command line or configuration the user must correct."""


def main(argv: list[str] | None = None) -> int:
    """Run one `mlops` subcommand and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except (StackError, UsageError) as error:
        print(f"mlops: error: {error}", file=sys.stderr)
        return 1


def add_grace_flag(parser: argparse.ArgumentParser) -> None:
    """--grace: how long stopping may take before SIGKILL (`up` on Ctrl-C, and `down`)."""
    parser.add_argument(
        "--grace",
        type=float,
        default=GRACE_SECONDS,
        metavar="SECONDS",
        help=f"how long stopping may take before SIGKILL (default {GRACE_SECONDS:g})",
    )


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
        help="start the services, wait until ready, stream their logs; Ctrl-C stops them",
        description="Start the services as gunicorn processes, wait for each /ready, print where they are "
        "and stream their logs until Ctrl-C or SIGTERM, which stops them all.",
    )
    up.add_argument(
        "--only", nargs="+", choices=SERVICES, metavar="SERVICE", help=f"start only these ({', '.join(SERVICES)})"
    )
    up.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="return once all are ready, leaving a supervisor in the background; logs go to DATA_DIR/logs; stop with `make down`",
    )
    up.add_argument("--mlflow-ui", action="store_true", help="also start MLflow's own UI on the same backend store")
    up.add_argument(
        "--mlflow-ui-port",
        type=int,
        default=DEFAULT_MLFLOW_UI_PORT,
        metavar="PORT",
        help=f"port of MLflow's UI (default {DEFAULT_MLFLOW_UI_PORT})",
    )
    up.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="how long to wait for each /ready (default 60)"
    )
    add_grace_flag(up)
    add_settings_flags(up, SETTINGS_FLAGS)
    # the background supervisor that `up --detach` leaves behind runs `up ... --supervise`
    up.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(run=run_up)

    down = commands.add_parser(
        "down",
        help="stop what `mlops up` started from the data dir and wait until its ports are free",
        description="Stop the stack recorded in the data dir's state file. The configuration flags of `up` are "
        "accepted too, so that `make down` takes the MLOPS_ARGS given to `make up`.",
    )
    add_grace_flag(down)
    add_settings_flags(down, SETTINGS_FLAGS)
    down.set_defaults(run=run_down)

    status = commands.add_parser(
        "status",
        help="show whether each service is ready (/ready), its restarts and last exit (exit 1 unless all are)",
        description="Check /ready (MLflow's UI: /health) of what `mlops up` started from the data dir, at the ports its state file "
        "records, with each service's restarts and last exit; with no stack recorded there, check the "
        "configured ports and say so. Exit 1 unless all answer 200.",
    )
    status.add_argument("--only", nargs="+", choices=[*SERVICES, MLFLOW_UI], metavar="SERVICE", help="check only these")
    add_settings_flags(status, SETTINGS_FLAGS)
    status.set_defaults(run=run_status)

    serve = commands.add_parser(
        "serve",
        help="run one service (or MLflow's UI) in the foreground, as the container image does",
        description="Replace this process by gunicorn serving one service, or by MLflow's server and UI on the "
        "tracking service's store (mlflow-ui).",
    )
    serve.add_argument("service", choices=[*SERVICES, MLFLOW_UI], help="what to run")
    serve.add_argument(
        "--mlflow-ui-port",
        type=int,
        default=DEFAULT_MLFLOW_UI_PORT,
        metavar="PORT",
        help=f"port of MLflow's UI (default {DEFAULT_MLFLOW_UI_PORT})",
    )
    add_settings_flags(serve, SETTINGS_FLAGS)
    serve.set_defaults(run=run_serve)

    demo = commands.add_parser(
        "demo",
        help="run the walkthrough end to end against running services and summarize it",
        description="Load the sets, optimize three models, deploy the best, train, evaluate on testing and "
        "production, and ask monitoring whether re-training is advised.",
    )
    demo.add_argument(
        "--experiment-name",
        default=None,
        help=f"MLflow experiment to log to (default: {DEFAULT_EXPERIMENT}, or the next free {DEFAULT_EXPERIMENT[:-1]}N)",
    )
    demo.add_argument(
        "--loop",
        action="store_true",
        help="then close the loop once: production, verdict, retraining through the gate, promote or keep, "
        "evaluate again",
    )
    add_settings_flags(demo, SETTINGS_FLAGS)
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
        field: value for field, _, _ in SETTINGS_FLAGS.values() if (value := getattr(args, field, None)) is not None
    }
    try:
        return Settings.from_env(**overrides)
    except ValueError as error:
        raise UsageError(str(error)) from None


# --- the subcommands ------------------------------------------------------------------------


def run_up(args: argparse.Namespace) -> int:
    """Start the stack (in the terminal, or detached), or what is missing from a running one."""
    return commands.up(settings_from(args), args)


def run_down(args: argparse.Namespace) -> int:
    """Stop the stack recorded in the data dir and wait until its ports are free."""
    return commands.down(settings_from(args), args.grace)


def run_status(args: argparse.Namespace) -> int:
    """Print whether each service answers /health; exit 0 only if every one does."""
    return commands.status(settings_from(args), args.only)


def run_serve(args: argparse.Namespace) -> int:
    """Replace this process by the server of one service, so that signals reach it directly."""
    settings = settings_from(args)
    environment = service_environment(settings)
    if args.service == MLFLOW_UI:
        command = mlflow_ui_command(settings, args.mlflow_ui_port)
        environment |= MLFLOW_UI_ENVIRONMENT
    else:
        command = gunicorn_command(args.service, settings)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, environment)
    return 0  # not reached


def run_demo(args: argparse.Namespace) -> int:
    """Run the walkthrough against the running services and print its summary."""
    from mlops.demo import Services, run_walkthrough

    settings = settings_from(args)
    status = run_walkthrough(settings, experiment_name=args.experiment_name, default_name=DEFAULT_EXPERIMENT)
    if status != 0 or not args.loop:
        return status
    from mlops.demo_loop import run_loop

    timeout = max(settings.request_timeout, 600)
    return run_loop(
        Services.from_settings(settings), timeout=timeout, token=settings.api_token, out=sys.stdout, progress=sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
