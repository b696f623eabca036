"""The `mlops` command without the services: configuration, port checks, process groups, logs,
the state file and the demo's summary. (tests/e2e/test_cli_lifecycle.py runs the real stack.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from mlops import cli
from mlops.demo import DemoResult, run_walkthrough, score_of, summary
from mlops.kernel.config import ENVIRONMENT_VARIABLES, Settings
from mlops.kernel.launch import SERVICE_APPS
from mlops.stack import logs, plan, ports, processes, state
from tests.support.processes import free_port


def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def test_flags_override_environment_which_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("ML_PORT", "7001")
    monkeypatch.setenv("TRACKING_PORT", "7002")
    monkeypatch.setenv("MLOPS_WORKERS", "3")
    settings = cli.settings_from(parse("up", "--ml-port", "6001", "--data-dir", str(tmp_path)))
    assert settings.ml_port == 6001  # flag over environment
    assert settings.tracking_port == 7002  # environment over default
    assert settings.workers == 3
    assert settings.monitoring_port == Settings().monitoring_port  # default
    assert settings.data_dir == tmp_path


def test_every_setting_flag_names_a_setting_and_its_variable():
    fields = Settings.model_fields
    for flag, (field, _, _) in cli.SETTINGS_FLAGS.items():
        assert field in fields and field in ENVIRONMENT_VARIABLES, flag
    for service in SERVICE_APPS:
        assert f"--{service}-port" in cli.SETTINGS_FLAGS
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["up"].format_help()
    assert "ML_PORT" in help_text and "default 5001" in help_text


def test_invalid_configuration_is_an_error_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("ML_PORT", "not-a-port")
    assert cli.main(["status"]) == 1
    error = capsys.readouterr().err
    assert "ML_PORT" in error and "invalid configuration" in error


def test_help_imports_no_heavy_library():
    probe = (
        "import sys, contextlib, io\n"
        "from mlops.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['up', '--help'])\n"
        "heavy = {'flask', 'sqlalchemy', 'requests', 'mlflow', 'sklearn', 'pandas', 'numpy', 'evidently', 'gunicorn'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_up_on_a_taken_port_names_it_and_starts_nothing(tmp_path, capsys):
    data_dir = tmp_path / "var"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = cli.main(["up", "--only", "simulator", "--simulator-port", str(port), "--data-dir", str(data_dir)])
    assert code == 1
    error = capsys.readouterr().err
    assert f"port {port} (simulator)" in error and "already in use" in error and "--simulator-port" in error
    assert not data_dir.exists()  # nothing started, nothing written


def test_two_services_on_one_port_are_refused(tmp_path, capsys):
    port = str(free_port())
    code = cli.main(
        ["up", "--only", "simulator", "ml", "--simulator-port", port, "--ml-port", port, "--data-dir", str(tmp_path)]
    )
    assert code == 1
    assert f"simulator and ml are both configured on port {port}" in capsys.readouterr().err


def test_port_in_use_sees_listeners_only():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert ports.port_in_use("127.0.0.1", port)
        assert ports.port_in_use("0.0.0.0", port)
    assert not ports.port_in_use("127.0.0.1", port)
    assert ports.wait_ports_free("127.0.0.1", [port], timeout=1) == []


def test_passwords_are_masked_in_the_storage_table():
    assert plan.mask_password("postgresql://mlops:s3cret@db:5432/mlops") == "postgresql://mlops:***@db:5432/mlops"
    assert plan.mask_password("sqlite:////data/dataset.db") == "sqlite:////data/dataset.db"
    settings = Settings(
        dataset_db_url="postgresql://mlops:s3cret@db/dataset",
        mlflow_tracking_uri="postgresql+psycopg://mlops:other@db/mlflow",
    )
    launches = plan.plan(settings, SERVICE_APPS)
    table = plan.stack_table(settings, launches)
    assert "s3cret" not in table and "other" not in table
    assert "postgresql://mlops:***@db/dataset" in table
    for service in SERVICE_APPS:
        port = settings.port_of(service)
        assert f"http://127.0.0.1:{port}/docs" in table


def test_services_start_in_the_kernel_order_and_the_ui_last():
    settings = Settings()
    launches = plan.plan(settings, ["monitoring", "simulator"], mlflow_ui_port=5000)
    assert [launch.name for launch in launches] == ["monitoring", "simulator", "mlflow-ui"]
    batches = plan.in_start_order(plan.plan(settings, SERVICE_APPS, mlflow_ui_port=5000))
    assert [[launch.name for launch in batch] for batch in batches] == [list(SERVICE_APPS), ["mlflow-ui"]]
    assert "--backend-store-uri" in launches[-1].command
    assert settings.mlflow_uri in launches[-1].command


def test_a_wildcard_bind_is_reached_on_loopback():
    assert plan.client_url(Settings(host="0.0.0.0"), 5001) == "http://127.0.0.1:5001"
    assert plan.client_url(Settings(host="::1"), 5001) == "http://[::1]:5001"


def _stubborn_group() -> subprocess.Popen:
    """A process group of two processes that ignore SIGTERM (ignored signals survive exec)."""
    return subprocess.Popen(
        ["bash", "-c", "trap '' TERM; sleep 300 & wait"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )


def _wait_members(pgid: int, count: int) -> None:
    for _ in range(200):
        if len(processes.live_group_members(pgid)) >= count:
            return
        threading.Event().wait(0.02)
    raise AssertionError("the group did not start")


def test_stop_groups_kills_a_group_that_ignores_sigterm_after_the_grace_period():
    process = _stubborn_group()
    _wait_members(process.pid, 2)
    killed = processes.stop_groups({"stubborn": process.pid}, grace=0.3, children=[process])
    assert killed == ["stubborn"]
    assert processes.live_group_members(process.pid) == []
    assert process.returncode == -9


def test_stop_groups_stops_a_cooperative_group_with_sigterm():
    process = subprocess.Popen(["bash", "-c", "sleep 300 & wait"], start_new_session=True)
    _wait_members(process.pid, 2)
    killed = processes.stop_groups({"polite": process.pid}, grace=10, children=[process])
    assert killed == []
    assert processes.live_group_members(process.pid) == []


def test_state_file_round_trip_and_stale_state_is_forgotten(tmp_path):
    path = tmp_path / state.STATE_FILE
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        live = state.StackState(
            None,
            "127.0.0.1",
            [state.Member("ml", process.pid, 5001, "http://x", "sleep", restarts=2, last_exit="code 1")],
        )
        state.write_state(path, live)
        assert state.read_state(path) == live
        assert state.running_state(path) == live
    finally:
        process.kill()
        process.wait()
    assert state.running_state(path) is None
    assert not path.exists()


def test_a_reused_pid_is_not_taken_for_a_member(tmp_path):
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        stranger = state.Member("ml", process.pid, 5001, "http://x", marker="mlops-ml")
        assert not stranger.alive  # same pid and group, but not our gunicorn
    finally:
        process.kill()
        process.wait()


def test_down_without_a_stack_says_there_is_nothing_to_stop(tmp_path, capsys):
    assert cli.main(["down", "--data-dir", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_log_printer_prefixes_every_line_with_its_process(tmp_path):
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        printer = logs.LogPrinter(out, width=9)
        process = subprocess.Popen(["printf", "one\\ntwo\\n"], stdout=subprocess.PIPE)
        printer.follow("simulator", 0, process.stdout)
        printer.drain(timeout=10)
        printer.say("done")
        process.wait()
    assert out_path.read_text().splitlines() == ["simulator | one", "simulator | two", "mlops     | done"]


def test_log_printer_keeps_draining_when_its_reader_is_gone():
    read_end, write_end = os.pipe()
    os.close(read_end)
    printer = logs.LogPrinter(os.fdopen(write_end, "w"), width=5)
    process = subprocess.Popen([sys.executable, "-c", "print('x\\n' * 200000)"], stdout=subprocess.PIPE)
    printer.follow("ml", 0, process.stdout)
    assert process.wait(timeout=60) == 0  # it could write everything: the pipe was drained
    printer.drain(timeout=10)


def test_score_of_reads_the_ml_service_message():
    assert score_of({"message": "Score on testing set: 97.22%"}) == "97.22 %"
    assert score_of({"message": "no number"}) == "no number"


def test_summary_says_best_model_scores_tests_and_advice():
    result = DemoResult(
        experiment_id="1",
        experiment_name="wine_test_1",
        run_count=3,
        best_run_id="abc",
        best_model="LogisticRegression",
        best_metric=0.9246,
        deployed="Model successfully uploaded",
        scores={"training": "100.00 %", "testing": "97.22 %", "production": "88.89 %"},
        monitoring={
            "all_passed": False,
            "total_tests": 10,
            "success_tests": 7,
            "failed_tests": 3,
            "by_status": {"SUCCESS": 7, "FAIL": 3, "WARNING": 0, "ERROR": 1},
        },
        verdict={
            "message": "Re-training advised: missing values 0.0% -> 2.8% (rows with one: 0% -> 28%)",
            "data": {"retraining_advised": True, "reasons": [{"fired": True}, {"fired": False}, {"fired": False}]},
            "reference": "testing",
        },
        seconds=9.5,
    )
    text = summary(result)
    assert "experiment   wine_test_1 (id 1), 3 runs" in text
    assert "LogisticRegression (run abc, CV model_accuracy 0.925)" in text
    assert "training 100.00 %, testing 97.22 %, production 88.89 %" in text
    assert "10 tests: 7 passed, 3 failed (1 error)" in text
    assert "advised: 3 of 10 tests did not pass" in text
    assert (
        "verdict      Re-training advised: missing values 0.0% -> 2.8% (rows with one: 0% -> 28%) "
        "[1 of 3 checks fired, reference testing]" in text
    )
    passed = summary(
        DemoResult(monitoring={"all_passed": True, "total_tests": 5, "success_tests": 5, "failed_tests": 0})
    )
    assert "not needed" in passed


def test_demo_without_services_says_how_to_start_them(capsys):
    settings = Settings(**{f"{s}_port": free_port() for s in SERVICE_APPS})
    assert run_walkthrough(settings, experiment_name="x") == 1
    error = capsys.readouterr().err
    assert "does not answer" in error and "mlops up" in error


def test_state_file_is_json_a_person_can_read(tmp_path):
    path = tmp_path / state.STATE_FILE
    state.write_state(
        path,
        state.StackState(42, "0.0.0.0", [state.Member("ml", 7, 5001, "http://127.0.0.1:5001", "mlops-ml", "/x.log")]),
    )
    raw = json.loads(path.read_text())
    assert raw["supervisor_pid"] == 42 and raw["members"][0]["name"] == "ml"


def test_readme_documents_every_variable_flag_and_command():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    configuration = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for field, variable in ENVIRONMENT_VARIABLES.items():
        row = next((line for line in configuration.splitlines() if line.startswith(f"| `{variable}` |")), "")
        assert row, f"{variable} is not in README's configuration table"
        default = Settings.model_fields[field].default
        if default not in ("", None):
            shown = (
                f"{default:g}"
                if isinstance(default, float)
                else str(default).lower()
                if isinstance(default, bool)
                else str(default)
            )
            assert f"`{shown}`" in row, f"README gives another default for {variable} than {shown}"
    for flag, (field, _, _) in cli.SETTINGS_FLAGS.items():
        row = next(line for line in configuration.splitlines() if f"`{ENVIRONMENT_VARIABLES[field]}`" in line)
        assert f"`{flag}`" in row, flag
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    for command in commands:
        assert f"`mlops {command}" in readme, command
