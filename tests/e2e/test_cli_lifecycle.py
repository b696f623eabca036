"""`mlops up` / `down` / `status` / `serve` as a user runs them: real processes, free ports, a
temporary data dir. After every stop, no process of any service's process group may survive and
every port must be free again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from mlops.kernel.launch import SERVICE_APPS
from tests.support.cli import MLOPS
from tests.support.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALL = list(SERVICE_APPS)


class Stack:
    """The flags of one stack under test: free ports and its own data dir."""

    def __init__(self, tmp_path: Path, services: list[str], *extra: str):
        self.services = services
        self.data_dir = tmp_path / "var"
        self.ports = {service: free_port() for service in SERVICE_APPS}
        self.extra = list(extra)

    def flags(self) -> list[str]:
        ports = [arg for s, p in self.ports.items() for arg in (f"--{s}-port", str(p))]
        return ["--data-dir", str(self.data_dir), *ports]

    def up_args(self, *more: str) -> list[str]:
        return [*MLOPS, "up", "--only", *self.services, *self.flags(), *self.extra, *more]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def state(self) -> dict:
        return json.loads((self.data_dir / "mlops-stack.json").read_text())

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*MLOPS, *args], capture_output=True, text=True, timeout=timeout)

    def down(self) -> subprocess.CompletedProcess:
        return self.run("down", "--data-dir", str(self.data_dir))


def live_processes_in_groups(pgids: set[int]) -> list[str]:
    """`ps` lines of processes (zombies excluded) whose process group is one of pgids."""
    listing = subprocess.run(["ps", "-e", "-o", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True)
    found = []
    for line in listing.stdout.splitlines():
        pid, pgid, stat, *args = line.split(None, 3)
        if int(pgid) in pgids and not stat.startswith("Z"):
            found.append(line)
    return found


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def cleanup():
    """Stop anything a failed test left running (by the process groups it recorded)."""
    groups: set[int] = set()
    yield groups
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_detached_stack_is_healthy_and_down_leaves_no_process_and_no_port(tmp_path, cleanup, db_url, postgres_database):
    extra = ["--dataset-db-url", db_url]
    if db_url.startswith("postgresql"):
        extra += ["--mlflow-tracking-uri", postgres_database()]
    stack = Stack(tmp_path, ALL, *extra)
    started = subprocess.run(stack.up_args("--detach"), capture_output=True, text=True, timeout=180)
    members = stack.state()["members"] if (stack.data_dir / "mlops-stack.json").exists() else []
    cleanup.update(m["pid"] for m in members)
    assert started.returncode == 0, started.stderr
    assert [m["name"] for m in members] == ALL
    for service in ALL:
        assert f"{stack.url(service)}/docs" in started.stdout
        assert requests.get(stack.url(service) + "/health", timeout=5).status_code == 200
        assert (stack.data_dir / "logs" / f"{service}.log").exists()
    status = stack.run("status", "--data-dir", str(stack.data_dir))
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("healthy") == len(ALL)

    stopped = stack.down()
    assert stopped.returncode == 0, stopped.stderr
    assert live_processes_in_groups({m["pid"] for m in members}) == []
    assert not any(listening(port) for port in stack.ports.values())
    assert not (stack.data_dir / "mlops-stack.json").exists()
    after = stack.run("status", "--data-dir", str(stack.data_dir), *stack.flags()[2:])
    assert after.returncode == 1 and after.stdout.count("not running") == len(SERVICE_APPS)


def test_second_up_on_a_taken_port_names_it_and_starts_nothing(tmp_path, cleanup):
    first = Stack(tmp_path, ["simulator"])
    assert subprocess.run(first.up_args("--detach"), capture_output=True, timeout=120).returncode == 0
    cleanup.update(m["pid"] for m in first.state()["members"])
    try:
        second = subprocess.run(
            [*MLOPS, "up", *first.flags()[2:], "--data-dir", str(tmp_path / "other")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert f"port {first.ports['simulator']} (simulator)" in second.stderr
        assert "already in use" in second.stderr
        for service in ("ml", "tracking", "monitoring"):  # nothing else was started
            assert not listening(first.ports[service])
        assert not (tmp_path / "other").exists()
        assert requests.get(first.url("simulator") + "/health", timeout=5).status_code == 200
    finally:
        assert first.down().returncode == 0


class Foreground:
    """A foreground `mlops up` whose output is collected line by line."""

    def __init__(self, args: list[str]):
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not seen; output:\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        self.reader.join(10)
        return code


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_foreground_up_streams_prefixed_logs_and_stops_everything_on_a_signal(tmp_path, cleanup, signum):
    stack = Stack(tmp_path, ALL)
    up = Foreground(stack.up_args())
    try:
        up.wait_for("press Ctrl-C to stop")
        members = stack.state()["members"]
        cleanup.update(m["pid"] for m in members)
        for service in ALL:  # each service's own output, under its name
            assert any(line.startswith(f"{service:<10} | ") and "Listening at" in line for line in up.lines), service
        assert requests.get(stack.url("simulator") + "/root/simulator", timeout=5).status_code == 200
        up.wait_for("GET /root/simulator 200")
        assert any(line.startswith("simulator  | ") and "GET /root/simulator 200" in line for line in up.lines)
    finally:
        up.process.send_signal(signum)
        code = up.finish()
    assert code == 0, "\n".join(up.lines[-40:])
    assert live_processes_in_groups({m["pid"] for m in members}) == []
    assert not any(listening(stack.ports[s]) for s in ALL)
    assert not (stack.data_dir / "mlops-stack.json").exists()
    assert any("stopped simulator, ml, tracking, monitoring" in line for line in up.lines)


def test_a_killed_service_is_restarted_and_status_shows_its_restart(tmp_path, cleanup):
    stack = Stack(tmp_path, ["simulator", "ml"])
    up = Foreground(stack.up_args())
    try:
        up.wait_for("press Ctrl-C to stop")
        members = {m["name"]: m["pid"] for m in stack.state()["members"]}
        cleanup.update(members.values())
        os.killpg(members["ml"], signal.SIGKILL)
        killed_at = time.monotonic()
        up.wait_for("ml exited unexpectedly (killed by SIGKILL)")
        while requests_status(stack.url("ml") + "/health") != 200:
            # by itself, without a command (how fast is the chaos soak's figure, not a timed test)
            assert time.monotonic() - killed_at < 60, "ml did not answer again"
            time.sleep(0.05)
        up.wait_for("ml is healthy again")
        restarted = {m["name"]: m for m in stack.state()["members"]}
        cleanup.add(restarted["ml"]["pid"])
        assert restarted["ml"]["pid"] != members["ml"] and restarted["ml"]["restarts"] == 1
        status = stack.run("status", *stack.flags())
        assert status.returncode == 0, status.stdout
        ml_row = next(line for line in status.stdout.splitlines() if line.startswith("ml "))
        assert "healthy" in ml_row and " 1 " in ml_row and "killed by SIGKILL at" in ml_row
        assert requests_status(stack.url("simulator") + "/health") == 200  # the others went on
    finally:
        up.process.send_signal(signal.SIGTERM)
        code = up.finish()
    assert code == 0
    assert live_processes_in_groups(set(members.values()) | {restarted["ml"]["pid"]}) == []


def requests_status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


def test_a_detached_stack_restarts_a_killed_service_and_up_only_adds_a_missing_one(tmp_path, cleanup):
    stack = Stack(tmp_path, ["simulator"])
    started = subprocess.run(stack.up_args("--detach"), capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    assert "stop with: make down" in started.stdout
    state = stack.state()
    cleanup.update(m["pid"] for m in state["members"])
    supervisor = state["supervisor_pid"]
    try:
        assert "--supervise" in Path(f"/proc/{supervisor}/cmdline").read_bytes().decode()
        first = state["members"][0]["pid"]
        os.killpg(first, signal.SIGKILL)
        killed_at = time.monotonic()
        while requests_status(stack.url("simulator") + "/health") != 200:
            assert time.monotonic() - killed_at < 60, "simulator did not answer again"
            time.sleep(0.05)
        # a second `up` of a service already there says so and starts nothing; a missing one is added
        added = stack.run("up", "--detach", "--only", "simulator", "ml", *stack.flags())
        assert added.returncode == 0, added.stderr
        assert "already in the stack" in added.stderr and "simulator" in added.stderr
        assert "ml is healthy" in added.stderr
        assert requests_status(stack.url("ml") + "/health") == 200
        members = {m["name"]: m for m in stack.state()["members"]}
        cleanup.update(m["pid"] for m in members.values())
        assert members["simulator"]["restarts"] == 1 and members["simulator"]["pid"] != first
        log = (stack.data_dir / "logs" / "mlops.log").read_text()
        assert "simulator exited unexpectedly (killed by SIGKILL)" in log and "starting ml, as asked" in log
    finally:
        stopped = stack.down()
    assert stopped.returncode == 0, stopped.stderr
    groups = {first, supervisor} | {m["pid"] for m in members.values()}
    assert live_processes_in_groups(groups) == []
    assert not any(listening(stack.ports[s]) for s in ("simulator", "ml"))


# Moments (seconds after start) at which the signals reach a foreground `mlops up`: while Python
# starts, while gunicorn starts, while waiting for /health, once running; and bursts of signals.
SIGNAL_MOMENTS = [0.05, 0.3, 0.8, 1.5, 3.0, "running", "running-burst"]


@pytest.mark.parametrize("moment", SIGNAL_MOMENTS, ids=str)
def test_a_stop_signal_stops_the_stack_at_any_moment(tmp_path, cleanup, moment):
    stack = Stack(tmp_path, ["simulator"])
    up = Foreground(stack.up_args("--grace", "5"))
    rng = __import__("random").Random(str(moment))
    groups: set[int] = set()
    try:
        if isinstance(moment, float):
            time.sleep(moment)
        else:
            up.wait_for("press Ctrl-C to stop")
        if (stack.data_dir / "mlops-stack.json").exists():
            groups = {m["pid"] for m in stack.state()["members"]}
            cleanup.update(groups)
        signums = [signal.SIGINT, signal.SIGTERM]
        if moment == "running-burst":  # many signals at once, while it is already stopping
            for _ in range(50):
                up.process.send_signal(rng.choice(signums))
        else:
            up.process.send_signal(rng.choice(signums))
        code = up.finish(timeout=30)
    finally:
        if up.process.poll() is None:
            up.process.kill()
    assert code in (0, 1, -signal.SIGINT, -signal.SIGTERM), "\n".join(up.lines[-30:])
    # the state file written in the meantime names every group it started
    assert live_processes_in_groups(groups) == []
    assert not listening(stack.ports["simulator"])
    assert not (stack.data_dir / "mlops-stack.json").exists()


def test_down_stops_a_foreground_up(tmp_path, cleanup):
    stack = Stack(tmp_path, ["simulator"])
    up = Foreground(stack.up_args())
    try:
        up.wait_for("press Ctrl-C to stop")
        members = stack.state()["members"]
        cleanup.update(m["pid"] for m in members)
        assert stack.down().returncode == 0
        assert up.finish() == 0
    finally:
        if up.process.poll() is None:
            up.process.kill()
    assert live_processes_in_groups({m["pid"] for m in members}) == []
    assert not listening(stack.ports["simulator"])


def test_after_a_crashed_up_the_next_up_points_to_down_which_cleans_up(tmp_path, cleanup):
    stack = Stack(tmp_path, ["simulator"])
    up = Foreground(stack.up_args())
    up.wait_for("press Ctrl-C to stop")
    members = stack.state()["members"]
    cleanup.update(m["pid"] for m in members)
    up.process.kill()  # kill -9: no chance to stop its services, which keep their port
    up.finish()
    again = subprocess.run(stack.up_args(), capture_output=True, text=True, timeout=60)
    assert again.returncode == 1
    assert f"port {stack.ports['simulator']} (simulator)" in again.stderr and "mlops down" in again.stderr
    assert stack.down().returncode == 0
    assert live_processes_in_groups({m["pid"] for m in members}) == []
    assert not listening(stack.ports["simulator"])


def test_sqlite_default_serves_concurrent_writes_with_two_workers(tmp_path, cleanup):
    stack = Stack(tmp_path, ["simulator"], "--workers", "2")
    assert subprocess.run(stack.up_args("--detach"), capture_output=True, timeout=120).returncode == 0
    members = stack.state()["members"]
    cleanup.update(m["pid"] for m in members)
    try:
        assert len(live_processes_in_groups({members[0]["pid"]})) == 3  # master + 2 workers
        # the three sets written at once, by whichever worker gets each, while others read
        calls = [("POST", {"set_name": name}) for name in ("training", "testing", "production")] + [("GET", None)] * 9
        with ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(
                    lambda call: requests.request(
                        call[0], stack.url("simulator") + "/root/simulator", json=call[1], timeout=60
                    ),
                    calls,
                )
            )
        assert [a.status_code for a in answers] == [200] * len(calls), [a.text for a in answers]
        for _ in range(2):  # reloads replace a set, they never duplicate it
            reload = requests.post(
                stack.url("simulator") + "/root/simulator", json={"set_name": "training"}, timeout=60
            )
            assert reload.status_code == 200
        engine = create_engine(f"sqlite:///{stack.data_dir / 'dataset.db'}")
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            counts = dict(connection.execute(text("SELECT name, n_samples FROM datasets")).all())
            rows = connection.execute(text("SELECT count(*) FROM samples")).scalar()
        engine.dispose()
        assert counts == {"training": 106, "testing": 36, "production": 36}
        assert rows == 106 + 36 + 36  # every reload replaced its set, none duplicated
    finally:
        assert stack.down().returncode == 0


def test_serve_runs_one_service_as_gunicorn_in_the_foreground(tmp_path):
    port = free_port()
    serve = subprocess.Popen(
        [*MLOPS, "serve", "simulator", "--simulator-port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not listening(port) and time.monotonic() < deadline and serve.poll() is None:
            time.sleep(0.05)
        # listening is the master; the first answer waits for a worker to boot (long on a busy machine)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=60).status_code == 200
        # `serve` replaced itself by gunicorn: the pid we started is gunicorn's master
        assert "gunicorn" in Path(f"/proc/{serve.pid}/cmdline").read_bytes().decode(errors="replace")
        serve.terminate()
        assert serve.wait(30) == 0
        assert live_processes_in_groups({serve.pid}) == []
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)


def test_mlflow_ui_runs_on_the_same_store_and_stops_with_the_stack(tmp_path, cleanup):
    stack = Stack(tmp_path, ["simulator"], "--mlflow-ui", "--mlflow-ui-port", str(free_port()))
    started = subprocess.run(stack.up_args("--detach"), capture_output=True, text=True, timeout=180)
    members = {m["name"]: m for m in stack.state()["members"]} if (stack.data_dir / "mlops-stack.json").exists() else {}
    cleanup.update(m["pid"] for m in members.values())
    assert started.returncode == 0, started.stderr
    ui = members["mlflow-ui"]
    try:
        assert requests.get(ui["url"] + "/health", timeout=5).status_code == 200
        experiments = requests.get(ui["url"] + "/api/2.0/mlflow/experiments/search?max_results=10", timeout=10)
        assert experiments.status_code == 200
        assert (stack.data_dir / "mlflow.db").exists()  # the store under the data dir, as the tracking service's
        # only the server and its uvicorn: no job runner, no huey consumers
        assert len(live_processes_in_groups({ui["pid"]})) == 2
    finally:
        stopped = stack.down()
        assert stopped.returncode == 0
        assert "killed" not in stopped.stdout + stopped.stderr  # it stops on SIGTERM, within the grace period
    assert live_processes_in_groups({m["pid"] for m in members.values()}) == []
    assert not listening(ui["port"])
