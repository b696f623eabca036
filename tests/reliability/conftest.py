"""Shared pieces of the reliability suites: short/long form, which services exist, a throwaway
PostgreSQL cluster, listening sockets of a process, JSON error checks, and the figures each suite
records (printed at the end of the run; docs/reliability.md keeps them)."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from mlops.walkthrough import OPTIMIZATION_REQUEST as WALKTHROUGH_OPTIMIZATION
from mlops.walkthrough import RANDOM_FOREST_MODEL as WALKTHROUGH_MODEL
from tests.processes import free_port

# The default form of every suite is short enough for `make test`; the long form (the figures in
# docs/reliability.md) runs with MLOPS_RELIABILITY_LONG=1.
LONG = os.environ.get("MLOPS_RELIABILITY_LONG", "").lower() not in ("", "0", "false", "no")
ALL_SERVICES = ("simulator", "ml", "tracking", "monitoring")
FIGURES_KEY = pytest.StashKey[list]()


def pick(short, long):
    """The short-form value, or the long-form one under MLOPS_RELIABILITY_LONG=1."""
    return long if LONG else short


def service_landed(service: str) -> bool:
    """Whether the service's package exists in this tree yet (several are built in parallel)."""
    module = {"ml": "mlops.ml_service.app"}.get(service, f"mlops.{service}.app")
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def require_services(*services: str) -> None:
    """Skip the test while one of these services has not landed in the tree."""
    missing = [s for s in services if not service_landed(s)]
    if missing:
        pytest.skip(f"service(s) not in the tree yet: {', '.join(missing)}")


def landed_services() -> list[str]:
    return [s for s in ALL_SERVICES if service_landed(s)]


def assert_json_error(response: requests.Response, *statuses: int) -> dict:
    """Assert the answer is an error in the suite's one shape, {"error", "message"}, and return it."""
    where = f"{response.request.method} {response.url} -> {response.status_code}: {response.text[:300]!r}"
    if statuses:
        assert response.status_code in statuses, where
    else:
        assert 400 <= response.status_code < 600, where
    assert response.headers.get("Content-Type", "").startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict), where
    assert {"error", "message"} <= set(body), where
    assert isinstance(body["error"], str) and body["error"], where
    assert isinstance(body["message"], str) and body["message"], where
    return body


# --- figures -------------------------------------------------------------------------------------


def pytest_configure(config):
    config.stash[FIGURES_KEY] = []


@pytest.fixture
def record_figures(request):
    """Record a suite's figures (requests sent, failures, recoveries, time to recover, ...)."""

    def record(suite: str, **figures) -> None:
        entry = {"suite": suite, "test": request.node.nodeid, "form": "long" if LONG else "short", **figures}
        request.config.stash[FIGURES_KEY].append(entry)
        path = os.environ.get("MLOPS_RELIABILITY_FIGURES")
        if path:  # one JSON line per suite, for docs/reliability.md
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")

    return record


def pytest_terminal_summary(terminalreporter, config):
    figures = config.stash.get(FIGURES_KEY, [])
    if not figures:
        return
    terminalreporter.section("reliability figures")
    for entry in figures:
        rest = {k: v for k, v in entry.items() if k not in ("suite", "test")}
        terminalreporter.write_line(f"{entry['suite']}: {json.dumps(rest)}")


# --- listening sockets ---------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (gunicorn's master and its workers)."""
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children_file = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            children = [int(c) for c in children_file.read_text().split()]
        except OSError:
            continue
        tree += children
        frontier += children
    return tree


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs that pid or its children listen on, read from /proc."""
    inodes = set()
    for member in process_tree(pid):
        fd_dir = Path(f"/proc/{member}/fd")
        try:
            links = [os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)]
        except OSError:
            continue
        inodes |= {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
    found = set()
    for table, decode in (("/proc/net/tcp", _ipv4), ("/proc/net/tcp6", _ipv6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A = LISTEN
                address, port = local.split(":")
                found.add((decode(address), int(port, 16)))
    return found


def _ipv4(hex_address: str) -> str:
    return ".".join(str(b) for b in reversed(bytes.fromhex(hex_address)))


def _ipv6(hex_address: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # /proc prints each 32-bit word in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


# --- a throwaway PostgreSQL cluster ---------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl live (Debian keeps them out of PATH)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent  # /usr/local/bin may hold a link to initdb alone
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster of our own in a temporary folder, on its own port.

    PostgreSQL refuses to run as root; CI runs as root, so the cluster then belongs to the
    `postgres` user and every command runs as that user.
    """

    bin_dir: Path
    root: Path
    port: int
    run_as: str | None = None
    log: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 60) -> str:
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        self.log.append(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `fast` ends open sessions (clients see their connection drop)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop")

    def create_database(self, name: str) -> str:
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A running PostgreSQL cluster that this test may stop and start (never the shared server)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    run_as = None
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        run_as = "postgres"
    root.chmod(0o700)
    cluster = ThrowawayPostgres(bin_dir, root, free_port(), run_as)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


# --- the services, started and brought to the walkthrough's state --------------------------------

# The walkthrough's RandomForest, small enough to train in a blink.
MODEL = {"model_name": "RandomForest", "hyperparameters": {"n_estimators": 20, "max_depth": 5, "random_state": 42}}
# A small optimization: two models, a few fits each, so a test can afford to run it.
SMALL_OPTIMIZATION = {
    "request_information": "optimization",
    "experiment_name": "reliability",
    "experiment_description": "reliability suite",
    "experiment_owner": "tests",
    "models": ["LogisticRegression", "RandomForest"],
    "hyperparameters": {
        "LogisticRegression": {"C": [0.1, 1], "solver": ["liblinear"]},
        "RandomForest": {"n_estimators": [3, 5], "max_depth": [None, 3]},
    },
    "scoring": "accuracy",
    "cv": 3,
}
WINE_ROW = {
    "alcohol": 13.2, "malic_acid": 1.78, "ash": 2.14, "alcalinity_of_ash": 11.2, "magnesium": 100.0,
    "total_phenols": 2.65, "flavanoids": 2.76, "nonflavanoid_phenols": 0.26, "proanthocyanins": 1.28,
    "color_intensity": 4.38, "hue": 1.05, "od280/od315_of_diluted_wines": 3.4, "proline": 1050.0,
}


def call(method: str, url: str, *, expect: int | tuple[int, ...] = 200, timeout: float = 120, **kwargs) -> dict:
    """Send one request and insist on the status; return the JSON body."""
    response = requests.request(method, url, timeout=timeout, **kwargs)
    expected = (expect,) if isinstance(expect, int) else expect
    assert response.status_code in expected, f"{method} {url} -> {response.status_code}: {response.text[:500]}"
    return response.json()


def start_stack(start_service, settings, services=None, **start_options) -> dict:
    """Start the given (default: every landed) services side by side; return {service: ServiceProcess}."""
    from concurrent.futures import ThreadPoolExecutor

    services = list(services or landed_services())
    with ThreadPoolExecutor(len(services)) as pool:
        futures = {s: pool.submit(start_service, s, settings, **start_options) for s in services}
    return {s: future.result() for s, future in futures.items()}


def stop_stack(processes) -> None:
    """Stop services side by side (each may wait a few seconds for idle keep-alive connections)."""
    import gc

    gc.collect()  # finished responses in reference cycles still hold their keep-alive connections
    processes = list(processes)
    for process in processes:
        if process.process and process.process.poll() is None:
            process.process.terminate()
    for process in processes:
        process.stop()


def bring_to_walkthrough_state(stack: dict, *, optimize: bool = False) -> dict:
    """Load the three sets, deploy + train a model, evaluate testing and production, warm monitoring;
    with `optimize`, also run a small optimization in tracking. Return what was made."""
    made: dict = {}
    simulator = stack["simulator"].url
    for set_name in ("training", "testing", "production"):
        call("POST", simulator + "/root/simulator", json={"set_name": set_name})
    if "ml" in stack:
        ml = stack["ml"].url
        call("POST", ml + "/root/ml/set_model", json=MODEL)
        for dataset in ("training", "testing", "production"):
            call("POST", ml + "/root/ml", json={"dataset": dataset})
        made["model"] = call("GET", ml + "/root/ml")["model"]
    if "monitoring" in stack and "ml" in stack:
        made["summary"] = call("POST", stack["monitoring"].url + "/root/monitoring", json={"metric": "summary"})
    if optimize and "tracking" in stack:
        made["optimization"] = call(
            "POST", stack["tracking"].url + "/root/tracking/model_management", json=SMALL_OPTIMIZATION, expect=201
        )["data"]
    return made


# --- clients sending a mix of requests ------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One kind of request the clients send."""

    name: str
    method: str
    url: str
    json: object = None
    needs_db: bool = True


@dataclass(frozen=True)
class Answer:
    """What one request got: a status and body, or the exception if none came."""

    probe: Probe
    started: float
    ended: float
    status: int | None
    body: object
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Clients:
    """Threads sending requests until stopped: one per lane, each lane a list of probes sent
    round-robin (a lane of its own keeps a write from racing with itself, where that is not the
    point of the test)."""

    def __init__(self, lanes: list[list[Probe]], *, timeout: float = 60, pause: float = 0.0,
                 pauses: list[float] | None = None):
        import threading

        self.lanes, self.timeout = [lane for lane in lanes if lane], timeout
        self.pauses = pauses or [pause] * len(lanes)
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            # lanes with the same probes start at different ones
            threading.Thread(target=self._run, args=(lane, self.lanes[:i].count(lane), self.pauses[i]), daemon=True)
            for i, lane in enumerate(self.lanes)
        ]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 10)
        return self.answers

    def _run(self, lane: list[Probe], offset: int, pause: float) -> None:
        import time

        session = requests.Session()
        i = offset
        while not self._stop.is_set():
            probe = lane[i % len(lane)]
            i += 1
            started = time.monotonic()
            try:
                response = session.request(probe.method, probe.url, json=probe.json, timeout=self.timeout)
                try:
                    body = response.json()
                except ValueError:
                    body = response.text[:500]
                answer = Answer(probe, started, time.monotonic(), response.status_code, body)
            except requests.RequestException as error:
                answer = Answer(probe, started, time.monotonic(), None, None, f"{type(error).__name__}: {error}")
                session = requests.Session()
            with self._lock:
                self.answers.append(answer)
            if pause:
                time.sleep(pause)

    def since(self, moment: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.started >= moment]


def is_json_error(answer: Answer, status: int) -> bool:
    """Whether the answer is `status` with the {"error", "message"} body."""
    body = answer.body
    return (
        answer.status == status
        and isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("message"), str)
        and bool(body["message"])
    )


def describe(answer: Answer) -> str:
    return (f"{answer.probe.name}: {answer.status or answer.failure} after {answer.seconds:.2f}s: "
            f"{str(answer.body)[:200]}")


# --- the walkthrough, as the user runs it -----------------------------------------------------------

ALL_TESTS = dict.fromkeys(
    ("data_drift", "data_quality", "data_stability", "no_target_performance", "multi_class_classification"), True
)


def run_walkthrough(stack: dict, *, experiment_name: str = "wine_test_1") -> dict:
    """Send the walkthrough's requests (for the services running) and check their answers."""
    seen: dict = {}
    simulator = stack["simulator"].url
    for set_name in ("training", "testing"):
        assert call("POST", simulator + "/root/simulator", json={"set_name": set_name}) == {
            "message": f"Load {set_name} set"
        }
    if "tracking" in stack:
        tracking = stack["tracking"].url
        body = WALKTHROUGH_OPTIMIZATION | {"experiment_name": experiment_name}
        created = call("POST", tracking + "/root/tracking/model_management", json=body, expect=201)
        assert created["message"] == "Experiments retrieved successfully"
        experiment_id, run_ids = created["data"]["experiment_id"], created["data"]["run_ids"]
        assert set(run_ids) == {"LogisticRegression", "RandomForest", "SVC"}
        seen |= {"experiment_id": experiment_id, "run_ids": run_ids}
        listed = call("GET", tracking + "/root/tracking/experiments")["data"]
        assert {"experiment_id": experiment_id, "run_count": 3}.items() <= next(
            e for e in listed if e["experiment_id"] == experiment_id
        ).items()
        runs = call("GET", tracking + "/root/tracking/runs", params={"experiment_id": experiment_id})["data"]
        assert sorted(r["run_id"] for r in runs) == sorted(run_ids.values())
        assert {r["status"] for r in runs} == {"FINISHED"}
        for query in (
            {"request_information": "general"},
            {"request_information": "best_model", "filter": ["model_accuracy"]},
            {"request_information": "statistics", "filter": ["all"]},
        ):
            call("POST", tracking + "/root/tracking/experiments", json={"experiment_id": experiment_id, **query})
        run_id = run_ids["LogisticRegression"]
        for information, kind in (("parameters", "data"), ("parameters", "grid_search"), ("parameters", "model"),
                                  ("metrics", "system"), ("metrics", "model")):
            answer = call("POST", tracking + "/root/tracking/runs", json={
                "experiment_id": experiment_id, "run_id": run_id, "request_information": information, "type": kind})
            if kind == "data":
                assert answer["data"] == {"classes": "3", "features": "13", "samples": "106"}
        if "ml" in stack:
            deployed = call("POST", tracking + "/root/tracking/model_management",
                            json={"request_information": "setting", "run_id": run_id})
            assert deployed == {"message": "Model successfully uploaded"}
            assert call("GET", stack["ml"].url + "/root/ml")["model"]["model_name"] == "LogisticRegression"
    if "ml" in stack:
        ml = stack["ml"].url
        assert call("POST", ml + "/root/ml/set_model", json=WALKTHROUGH_MODEL) == {
            "message": "Model successfully uploaded"
        }
        assert call("POST", ml + "/root/ml", json={"dataset": "training"})["message"].startswith(
            "Score on training set: "
        )
        testing = call("POST", ml + "/root/ml", json={"dataset": "testing"})["message"]
        assert testing.startswith("Score on testing set: ") and float(testing.split(": ")[1].rstrip("%")) >= 90
        call("POST", simulator + "/root/simulator", json={"set_name": "production"})
        production = call("POST", ml + "/root/ml", json={"dataset": "production"})["message"]
        assert production.startswith("Score on production set: ")
        seen["scores"] = (testing, production)
        if "monitoring" in stack:
            monitoring = stack["monitoring"].url + "/root/monitoring"
            call("POST", monitoring, json={"metric": "report"})
            call("POST", monitoring, json={"metric": "tests"})
            summary = call("POST", monitoring, json={"metric": "summary", "tests": ALL_TESTS})
            seen["summary"] = summary
    if "tracking" in stack:
        tracking = stack["tracking"].url
        run_id = seen["run_ids"]["SVC"]
        call("DELETE", tracking + "/root/tracking/runs", params={"experiment_id": seen["experiment_id"], "run_id": run_id})
        call("POST", tracking + "/root/tracking/runs", expect=404, json={
            "experiment_id": seen["experiment_id"], "run_id": run_id, "request_information": "metrics", "type": "model"})
        call("DELETE", tracking + "/root/tracking/experiments", params={"experiment_id": seen["experiment_id"]})
    return seen
