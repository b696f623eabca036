"""The stack's supervisor with stand-in processes (tiny HTTP servers), and its signal handling:
restarts with backoff, giving up on a crash loop, starting what is asked into a running stack,
and stop signals that never deadlock, whenever they come."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pytest

from mlops.kernel.config import Settings
from mlops.stack import signals
from mlops.stack.plan import Launch
from mlops.stack.processes import health, live_group_members
from mlops.stack.state import read_state, state_path
from mlops.stack.supervisor import Supervisor, ask_to_start
from tests.support.processes import free_port

# Answers /health as `name`, then exits with code 3 after `lifetime` seconds (never if 0).
STAND_IN = r"""
import http.server, json, sys, threading, os
name, port, lifetime = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "ok", "service": name}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Health)
server.allow_reuse_address = True
if lifetime:
    threading.Timer(lifetime, lambda: os._exit(3)).start()
print(f"mlops-{name} listening", flush=True)
server.serve_forever()
"""


def stand_in(name: str, lifetime: float = 0) -> Launch:
    port = free_port()
    return Launch(
        name, [sys.executable, "-c", STAND_IN, name, str(port), str(lifetime)], port, f"http://127.0.0.1:{port}"
    )


class Recorder:
    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(message)

    def wait_for(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.lines):
                return
            time.sleep(0.02)
        raise AssertionError(f"{needle!r} not said; said: {self.lines}")


def supervise(tmp_path, launches, *, after_start, settings=None, timeout=20, **options) -> tuple[int, Recorder, list]:
    """Run a supervisor on the launches in this (main) thread; `after_start(say, states)` runs in
    another thread once everything answers, then we are sent SIGTERM."""
    say = Recorder()
    request = signals.stop_on_signals()
    settings = settings or Settings(data_dir=tmp_path)
    supervisor = Supervisor(settings, request, say, timeout=timeout, grace=5, log_dir=tmp_path, **options)
    errors: list = []

    def driver() -> None:
        try:
            after_start(say, lambda: read_state(state_path(settings)))
        except BaseException as error:  # reported by the test below
            errors.append(error)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        code = supervisor.run(launches, on_running=lambda: threading.Thread(target=driver, daemon=True).start())
    finally:
        request.uninstall()
    if errors:
        raise errors[0]
    return code, say, [item.process for item in supervisor.processes.values()]


def test_a_dead_process_is_restarted_and_the_state_file_says_so(tmp_path):
    stable, fragile = stand_in("simulator"), stand_in("ml")

    def kill_it(say, states):
        member = states().member("ml")
        os.killpg(member.pid, signal.SIGKILL)
        say.wait_for("ml exited unexpectedly (killed by SIGKILL)")
        say.wait_for("ml is healthy again")
        again = states().member("ml")
        assert again.pid != member.pid and again.state == "running"
        assert again.restarts == 1 and again.last_exit.startswith("killed by SIGKILL at ")
        assert states().member("simulator").restarts == 0

    code, say, processes = supervise(tmp_path, [stable, fragile], after_start=kill_it)
    assert code == 0
    assert any(line.startswith("stopped simulator, ml") for line in say.lines)
    assert all(live_group_members(p.pid) == [] for p in processes)
    assert not state_path(Settings(data_dir=tmp_path)).exists()


def test_a_crash_loop_backs_off_then_is_given_up_while_the_others_run(tmp_path):
    stable, looping = stand_in("simulator"), stand_in("ml", lifetime=0.3)

    def watch_it_loop(say, states):
        say.wait_for("giving up on it", timeout=60)
        member = states().member("ml")
        assert member.state == "given up" and member.restarts == 3 and member.last_exit.startswith("code 3")
        assert states().member("simulator").state == "running"

    code, say, _ = supervise(
        tmp_path, [stable, looping], after_start=watch_it_loop, restart_delays=(0.0, 0.2, 0.4), stable_seconds=5
    )
    assert code == 0
    restarts = [line for line in say.lines if line.startswith("ml exited unexpectedly (code 3)")]
    assert [r.split("restarting it")[1] for r in restarts] == [
        " (restart 1)",
        " in 0.2 s (restart 2)",
        " in 0.4 s (restart 3)",
    ]
    given_up = next(line for line in say.lines if "giving up" in line)
    assert "4 times in a row" in given_up and "mlops up --only ml" in given_up


def test_asked_processes_are_started_into_the_running_stack(tmp_path):
    first = stand_in("simulator")
    settings = Settings(data_dir=tmp_path, monitoring_port=free_port())

    def ask(say, states):
        ask_to_start(settings, os.getpid(), ["monitoring"], None)
        say.wait_for("starting monitoring, as asked")
        deadline = time.monotonic() + 30
        while (member := states().member("monitoring")) is None or member.state != "running":
            assert time.monotonic() < deadline, states()
            time.sleep(0.05)
        ask_to_start(settings, os.getpid(), ["simulator"], None)
        say.wait_for("asked to start simulator: it is already running")

    # a real monitoring service, started by the supervisor from its settings
    code, say, _ = supervise(tmp_path, [first], after_start=ask, settings=settings, timeout=60)
    assert code == 0
    assert any(line.startswith("stopped simulator, monitoring") for line in say.lines)


def test_a_stop_signal_is_never_lost_however_many_arrive_while_waiting():
    """The old handler called Event.set() and could deadlock against Event.wait in the main
    thread; the handler now only counts, and the wake-up pipe ends each wait."""
    request = signals.stop_on_signals()
    try:
        sent = 2000

        def pelt() -> None:
            for _ in range(sent):
                os.kill(os.getpid(), signals.REQUEST_SIGNAL)
            os.kill(os.getpid(), signal.SIGTERM)

        sender = threading.Thread(target=pelt)
        started = time.monotonic()
        sender.start()
        while not request.wait(0.5):
            assert time.monotonic() - started < 30, "the stop signal was not seen"
        sender.join()
        assert request.stop and not request.force
        assert 0 < request.requests <= sent  # the kernel may merge signals that arrive together
    finally:
        request.uninstall()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_asks_to_kill(signum):
    request = signals.stop_on_signals()
    try:
        os.kill(os.getpid(), signum)
        assert request.wait(5)
        os.kill(os.getpid(), signum)
        deadline = time.monotonic() + 5
        while not request.force and time.monotonic() < deadline:
            request.wait(0.05)
        assert request.force
    finally:
        request.uninstall()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_state_file_records_every_configured_port(tmp_path):
    settings = Settings(data_dir=tmp_path, ml_port=free_port())
    launch = stand_in("simulator")

    def look(say, states):
        recorded = states()
        assert recorded.ports["ml"] == settings.ml_port and recorded.phase == "running"
        assert json.loads(state_path(settings).read_text())["members"][0]["ready_seconds"] > 0

    assert supervise(tmp_path, [launch], after_start=look, settings=settings)[0] == 0


def test_status_without_a_state_file_does_not_call_strangers_ours(tmp_path, capsys):
    import subprocess

    from mlops import cli

    ours, stranger = stand_in("simulator"), stand_in("ml")
    # something answers on the ML service's port, but says it is the simulator
    impostor = Launch("ml", [*stranger.command[:3], "simulator", str(stranger.port), "0"], stranger.port, stranger.url)
    processes = [subprocess.Popen(launch.command, stdout=subprocess.DEVNULL) for launch in (ours, impostor)]
    try:
        for launch in (ours, impostor):
            deadline = time.monotonic() + 20
            while health(launch.url)[0] != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        flags = ["--data-dir", str(tmp_path), "--simulator-port", str(ours.port), "--ml-port", str(impostor.port)]
        assert cli.main(["status", "--only", "simulator", *flags]) == 0
        out = capsys.readouterr().out
        assert f"no stack started by `mlops up` from {tmp_path}" in out
        assert "healthy, not started from this data dir" in out
        assert cli.main(["status", "--only", "simulator", "ml", *flags]) == 1
        ml_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ml "))
        assert "something else answers here" in ml_row
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_status_says_when_a_ready_service_answers_degraded():
    import json

    from mlops.stack.commands import _health_shown

    ready = {"status": "ready", "service": "ml", "checks": {"database": "ok", "model": "RandomForest version 3 loaded"}}
    assert _health_shown("ml", 200, json.dumps(ready), "running") == ("healthy", True)
    degraded = ready | {"checks": {"database": "degraded"}, "degraded": "The dataset database is unavailable: ..."}
    assert _health_shown("ml", 200, json.dumps(degraded), "running") == ("healthy, degraded", True)
    assert _health_shown("ml", 503, json.dumps({"service": "ml"}), "running") == ("unhealthy (503)", False)
