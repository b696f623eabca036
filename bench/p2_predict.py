"""P2 online prediction: the ML service against MLServer 1.7 (mlserver-sklearn, Open Inference
Protocol V2) and `mlflow models serve`, serving the same trained pipeline on the same machine,
with the same keep-alive load, alternated so that all of them see the same background load.

The ML service trains the walkthrough's RandomForest. Its stored pipeline is saved with joblib for
MLServer's scikit-learn runtime (in a virtualenv of its own that this benchmark creates: MLServer's
dependencies differ from ours) and as an MLflow model for MLflow's scoring server. Each server gets
bodies of 1 and of 100 testing rows in its own protocol, and the same bodies go to our endpoint for
that protocol:

- `mlserver` and `ours v2`: `POST /v2/models/wine/infer`, an FP64 [n, 13] tensor, output `predict`;
- `mlflow` and `ours invocations`: `POST /invocations`, MLflow's `dataframe_split`;
- `ours predict`: our own `POST /root/ml/predict` with the `dataframe_split` body (classes and
  probabilities);
- `ours threads` (the configuration before this benchmark's change, kept to show the difference):
  the ML service under gunicorn's threaded workers with keep-alive, `POST /root/ml/predict`.

All answer the same classes (checked first). Each run also measures the CPU time each request cost
the server (its whole process group: our gunicorn master and workers, MLServer's process, MLflow's
and its uvicorn) and the load generator: a figure that contention on a shared machine bends far
less than requests per second. The load is wrk (2 threads, 8 keep-alive connections,
10 s) where it is installed (`apt-get install wrk`), else bench/load.py's Python client (same
shape, weaker: it shares the 2 cores with the servers). Three runs each, alternated.

Goals, for each payload, in the WORST of the three rounds (each of our runs against the reference's
run of the same round, measured back to back): `ours v2` >= 5x MLServer's requests/s and p99 <= 1/3
of MLServer's; `ours invocations` >= 3x MLflow's requests/s and p99 <= 1/3 of its.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import requests

from bench.harness import (
    Config,
    Goal,
    Result,
    bench_settings,
    call,
    free_port,
    group_cpu_seconds,
    profiled,
    say,
    services,
    stop,
    table,
)
from bench.load import run_load
from bench.p4_scale import WALKTHROUGH_MODEL
from mlops.kernel.launch import gunicorn_command, settings_environment

CONNECTIONS = 8
RUNS = 3
MLSERVER_VERSION = "1.7.1"
SKLEARN_VERSION = metadata.version("scikit-learn")  # MLServer's must load our joblib file
# MLServer's own virtualenv (its dependencies differ from ours), kept between runs; `make clean` leaves it.
MLSERVER_DIR = Path(tempfile.gettempdir()) / f"mlops-bench-mlserver-{MLSERVER_VERSION}-sklearn-{SKLEARN_VERSION}"
WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")
V2_PATH = "/v2/models/wine/infer"


@dataclass(frozen=True)
class Target:
    """One server endpoint under load, and the body of each payload it gets."""

    name: str
    url: str
    bodies: dict[str, bytes]
    leader: int  # the server's process group, for profiles


@dataclass(frozen=True)
class Run:
    """What one load run against one target measured."""

    target: str
    payload: str
    attempt: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    load_average: float
    server_cpu_us: float  # CPU time of the server's processes per answered request
    client_cpu_us: float  # the load generator's


def run(config: Config) -> Result:
    """Serve the same model four ways and load each with the same payloads, alternated."""
    seconds = 1.0 if config.quick else 10.0
    runs = 1 if config.quick else RUNS
    result = Result("p2")
    wrk = shutil.which("wrk")
    say(f"p2: load from {'wrk ' + wrk if wrk else 'bench/load.py (wrk not installed: apt-get install wrk)'}")
    with tempfile.TemporaryDirectory(dir=config.work_dir) as data_dir:
        data_dir = Path(data_dir)
        settings = bench_settings(data_dir)
        with services(settings, ["simulator", "ml"]) as running:
            simulator, ml = running["simulator"].url, running["ml"].url
            for set_name in ("training", "testing"):
                call("POST", simulator + "/root/simulator", json={"set_name": set_name})
            call("POST", ml + "/root/ml/set_model", json=WALKTHROUGH_MODEL)
            call("POST", ml + "/root/ml", json={"dataset": "training"})
            pipeline, version = stored_pipeline(settings.dataset_db)
            rows = testing_rows(settings.dataset_db)
            split = {name: split_body(values) for name, values in rows.items()}
            v2 = {name: v2_body(values) for name, values in rows.items()}
            # --quick leaves MLServer out unless its virtualenv exists: creating it downloads packages.
            mlserver_python = mlserver_venv(MLSERVER_DIR, create=not config.quick)
            with (
                threaded_ml_service(settings, data_dir) as threaded,
                mlserver(mlserver_python, pipeline, version, data_dir) as mlserver_server,
                mlflow_serve(pipeline, data_dir) as mlflow_server,
            ):
                ours = running["ml"].process.pid
                targets = [
                    Target("ours v2", ml + V2_PATH, v2, ours),
                    Target("ours invocations", ml + "/invocations", split, ours),
                    Target("mlflow", mlflow_server.url + "/invocations", split, mlflow_server.process.pid),
                    Target("ours predict", ml + "/root/ml/predict", split, ours),
                    Target("ours threads", threaded.url + "/root/ml/predict", split, threaded.process.pid),
                ]
                if mlserver_server is not None:
                    targets.insert(
                        1, Target("mlserver", mlserver_server.url + V2_PATH, v2, mlserver_server.process.pid)
                    )
                else:
                    say("p2: MLServer left out (--quick and no virtualenv at " + str(MLSERVER_DIR) + ")")
                same_answers(targets, list(rows))
                for target in targets:  # every worker loads its pipeline and imports what it needs
                    for body in target.bodies.values():
                        load(wrk, target.url, body, seconds=min(seconds, 3.0), timeout=60)
                measured: list[Run] = []
                for attempt in range(1, runs + 1):
                    for payload in rows:
                        for target in targets:
                            with profiled(
                                f"p2-{payload.replace(' ', '')}-{target.name.replace(' ', '-')}",
                                {target.name.replace(" ", "-"): target.leader},
                                config.profile and attempt == runs,
                            ):
                                measured.append(measure(wrk, target, payload, attempt, seconds))
                            say(describe(measured[-1]))
    say(
        table(
            [
                "payload",
                "server",
                "run",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "load",
                "server CPU µs/req",
                "wrk CPU µs/req",
            ],
            [
                [
                    r.payload,
                    r.target,
                    str(r.attempt),
                    r.requests_per_s,
                    r.p50_ms,
                    r.p99_ms,
                    str(r.errors),
                    r.load_average,
                    r.server_cpu_us,
                    r.client_cpu_us,
                ]
                for r in measured
            ],
        )
    )
    result.figures = {
        "load_generator": "wrk" if wrk else "bench/load.py",
        "connections": CONNECTIONS,
        "seconds_per_run": seconds,
        "mlserver": mlserver_versions(mlserver_python) if mlserver_python else None,
        "runs": [r.__dict__ for r in measured],
    }
    present = {r.target for r in measured}
    for payload in rows:
        for ours, theirs, speedup in (("ours v2", "mlserver", 5.0), ("ours invocations", "mlflow", 3.0)):
            if theirs not in present:
                continue
            # each of our runs against theirs of the same round, measured back to back; the worst round counts
            pairs = paired(measured, ours, theirs, payload)
            throughput = min(o.requests_per_s / t.requests_per_s for o, t in pairs)
            p99 = max(o.p99_ms / t.p99_ms for o, t in pairs)
            result.goals.append(
                Goal(f"{payload} {ours} vs {theirs}, worst round, req/s", throughput, speedup, "x", False)
            )
            result.goals.append(Goal(f"{payload} {ours} vs {theirs}, worst round, p99", p99, 1 / 3, "x", True))
    return result


def paired(runs: list[Run], ours: str, theirs: str, payload: str) -> list[tuple[Run, Run]]:
    """Our run and theirs of each round, for one payload."""
    by_round = {(r.target, r.attempt): r for r in runs if r.payload == payload}
    rounds = sorted({r.attempt for r in runs})
    return [(by_round[(ours, n)], by_round[(theirs, n)]) for n in rounds]


def describe(r: Run) -> str:
    return (
        f"p2: run {r.attempt} {r.payload:>8} {r.target:>16}: {r.requests_per_s:8.1f} req/s, "
        f"p50 {r.p50_ms:6.1f} ms, p99 {r.p99_ms:6.1f} ms, {r.errors} errors, load {r.load_average:.2f}, "
        f"CPU per request: server {r.server_cpu_us:.0f} µs, load generator {r.client_cpu_us:.0f} µs"
    )


def measure(wrk: str | None, target: Target, payload: str, attempt: int, seconds: float) -> Run:
    """One load run: requests/s, latency percentiles, errors, the load average before it, and the
    CPU time per answered request of the server and of the load generator (wrk, a child process)."""
    load_average = os.getloadavg()[0]
    server_before, client_before = group_cpu_seconds(target.leader), _children_cpu_seconds()
    figures = load(wrk, target.url, target.bodies[payload], seconds=seconds, timeout=10)
    server, client = group_cpu_seconds(target.leader) - server_before, _children_cpu_seconds() - client_before
    answered = max(1, figures["requests"] - figures["errors"])
    return Run(
        target.name,
        payload,
        attempt,
        load_average=load_average,
        server_cpu_us=server / answered * 1e6,
        client_cpu_us=client / answered * 1e6 if wrk else 0.0,  # bench/load.py runs in this process
        **figures,
    )


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load(wrk: str | None, url: str, body: bytes, *, seconds: float, timeout: float) -> dict:
    """Closed-loop keep-alive load on url: wrk if installed, else bench/load.py."""
    if wrk is None:
        measured = run_load(url, body, concurrency=CONNECTIONS, seconds=seconds)
        return {
            "requests_per_s": measured.throughput,
            "p50_ms": measured.percentile_ms(50),
            "p99_ms": measured.percentile_ms(99),
            "requests": measured.requests,
            "errors": measured.errors,
        }
    with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
        body_file.write(body)
        body_file.flush()
        command = [
            wrk,
            "-t2",
            f"-c{CONNECTIONS}",
            f"-d{seconds:g}s",
            f"--timeout={timeout:g}s",
            "-s",
            str(WRK_SCRIPT),
            url,
        ]
        output = subprocess.run(
            command, env={**os.environ, "BODY_FILE": body_file.name}, capture_output=True, text=True, check=True
        ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    errors = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "requests_per_s": (figures["requests"] - figures["status_errors"]) / figures["seconds"],
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "requests": figures["requests"],
        "errors": errors,
    }


# --- the model and the bodies ------------------------------------------------------------------


def stored_pipeline(dataset_db: str):
    """The ML service's trained pipeline as stored in the dataset DB, and its version."""
    from sqlalchemy import select

    from mlops.kernel.db import deployed_model, make_engine
    from mlops.ml.pipeline_cache import load_pipeline

    engine = make_engine(dataset_db)
    with engine.connect() as connection:
        stored, version = connection.execute(select(deployed_model.c.pipeline, deployed_model.c.version)).one()
    engine.dispose()
    return load_pipeline(stored), version


def testing_rows(dataset_db: str) -> dict[str, np.ndarray]:
    """The first testing row, and 100 testing rows."""
    from mlops.kernel.datasets import read_set
    from mlops.kernel.db import make_engine

    engine = make_engine(dataset_db)
    with engine.connect() as connection:
        features = read_set(connection, "testing").features
    engine.dispose()
    values = features.to_numpy()
    return {"1 row": values[:1], "100 rows": values[np.arange(100) % len(values)]}


def split_body(values: np.ndarray) -> bytes:
    from mlops.kernel.db import FEATURES

    return json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": values.tolist()}}).encode()


def v2_body(values: np.ndarray) -> bytes:
    tensor = {"name": "input-0", "shape": list(values.shape), "datatype": "FP64", "data": values.ravel().tolist()}
    return json.dumps({"inputs": [tensor], "outputs": [{"name": "predict"}]}).encode()


def classes(answer: dict) -> list:
    """The predicted classes of any of the answers."""
    if "outputs" in answer:
        return next(o["data"] for o in answer["outputs"] if o["name"] == "predict")
    return answer["predictions"]


def same_answers(targets: list[Target], payloads: list[str]) -> None:
    """Check every server predicts the same classes (the same model), or stop the benchmark."""
    for payload in payloads:
        answers = {}
        for target in targets:
            response = requests.post(
                target.url, data=target.bodies[payload], headers={"Content-Type": "application/json"}, timeout=120
            )
            response.raise_for_status()
            answers[target.name] = classes(response.json())
        if len({json.dumps(a) for a in answers.values()}) != 1:
            raise RuntimeError(f"the servers disagree on {payload}: {answers}")


# --- the servers -------------------------------------------------------------------------------


@dataclass
class Server:
    """A server process in its own process group, answering `ready_url` once up."""

    process: subprocess.Popen
    url: str


@contextmanager
def server(
    command: list[str],
    url: str,
    ready_path: str,
    log_path: Path,
    *,
    env: dict | None = None,
    cwd: Path | None = None,
    timeout: float = 180.0,
) -> Iterator[Server]:
    """Start command, wait until url + ready_path answers 200, stop its process group at the end."""
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(url + ready_path, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command[:3])} did not answer {ready_path} in {timeout:.0f} s")
            time.sleep(0.2)
        yield Server(process, url)
    finally:
        stop(process)


@contextmanager
def threaded_ml_service(settings, data_dir: Path) -> Iterator[Server]:
    """A second ML service on the same database, under gunicorn's threaded workers with keep-alive
    (4 threads each, as many workers as the ML service): how it ran before the sync workers."""
    port = free_port()
    command = gunicorn_command("ml", settings)
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    at = command.index("--worker-class")
    command[at : at + 2] = ["--worker-class", "gthread", "--threads", "4"]
    with server(
        command, f"http://127.0.0.1:{port}", "/health", data_dir / "ml-threads.log", env=settings_environment(settings)
    ) as started:
        yield started


def mlserver_venv(path: Path, *, create: bool) -> Path | None:
    """The python of a virtualenv with MLServer, its scikit-learn runtime and our scikit-learn (to
    load our pipeline), made once at `path` and reused; None if there is none and `create` is false."""
    python = path / "bin" / "python"
    marker = path / ".installed"
    if not marker.exists():
        if not create:
            return None
        say(f"p2: creating {path} (MLServer {MLSERVER_VERSION}; a few minutes the first time)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"mlserver=={MLSERVER_VERSION}", f"mlserver-sklearn=={MLSERVER_VERSION}", f"scikit-learn=={SKLEARN_VERSION}"],
            capture_output=True, text=True,
        )  # fmt: skip  # the pip command line, its words as typed
        if installed.returncode != 0:
            raise RuntimeError(f"installing MLServer failed:\n{installed.stdout[-3000:]}{installed.stderr[-3000:]}")
        marker.touch()
    return python


def mlserver_versions(python: Path) -> dict[str, str]:
    """The versions of what matters in MLServer's virtualenv."""
    code = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "['mlserver', 'mlserver-sklearn', 'scikit-learn', 'numpy', 'pandas', 'uvloop', 'uvicorn', 'fastapi']}))"
    )
    return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)


@contextmanager
def mlserver(python: Path | None, pipeline, version: int, data_dir: Path) -> Iterator[Server | None]:
    """MLServer serving the pipeline as the model `wine`, from its main process (parallel_workers 0:
    its inference worker processes crash at start on this Python with uvloop installed)."""
    if python is None:
        yield None
        return
    import joblib

    model_dir = data_dir / "mlserver-model"
    model_dir.mkdir()
    joblib.dump(pipeline, model_dir / "model.joblib")
    http, grpc, metrics = free_port(), free_port(), free_port()
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "wine",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": str(version)},
            }
        )
    )
    (model_dir / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http,
                "grpc_port": grpc,
                "metrics_port": metrics,
                "parallel_workers": 0,
                "debug": False,
            }
        )
    )
    command = [str(python.with_name("mlserver")), "start", str(model_dir)]
    with server(
        command,
        f"http://127.0.0.1:{http}",
        "/v2/models/wine/ready",
        data_dir / "mlserver.log",
        env={"PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        cwd=model_dir,
    ) as started:
        yield started


@contextmanager
def mlflow_serve(pipeline, data_dir: Path) -> Iterator[Server]:
    """`mlflow models serve --env-manager local` (uvicorn, 1 worker: its default) of the pipeline."""
    import mlflow.sklearn

    from mlops.kernel.catalogue import TRUSTED_TYPES

    model_dir = data_dir / "mlflow-model"
    mlflow.sklearn.save_model(
        pipeline,
        str(model_dir),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(TRUSTED_TYPES),
        pip_requirements=["scikit-learn", "skops"],
    )
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    # MLflow runs `uvicorn` from PATH: the venv's
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": (data_dir / "mlruns").as_uri(),
    }
    command = [
        mlflow,
        "models",
        "serve",
        "-m",
        str(model_dir),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with server(command, f"http://127.0.0.1:{port}", "/ping", data_dir / "mlflow-serve.log", env=env) as started:
        yield started
