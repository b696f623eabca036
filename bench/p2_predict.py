"""P2 online prediction: POST /root/ml/predict against `mlflow models serve --env-manager local`
serving the same trained model, on the same machine, with the same client and payloads.

The ML service trains the walkthrough's RandomForest; its stored pipeline (skops) is saved as an
MLflow model and served by MLflow's own scoring server. Both get MLflow's `dataframe_split`
payloads of 1 and of 100 testing rows from the same closed-loop load generator (keep-alive
connections on loopback); the runs alternate ours / MLflow's twice to spread the machine's noise.

Goals: throughput >= 3x MLflow's, p99 latency <= 1/3 of MLflow's (both payloads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from bench.harness import Config, Goal, Result, bench_settings, call, free_port, profiled, say, services, stop, table
from bench.load import LoadResult, run_load
from bench.p4_scale import WALKTHROUGH_MODEL

CONCURRENCY = 8


def run(config: Config) -> Result:
    """Serve the same model both ways and load each with the same payloads."""
    seconds = 1.0 if config.quick else 10.0
    result = Result("p2")
    with tempfile.TemporaryDirectory(dir=config.work_dir) as data_dir:
        data_dir = Path(data_dir)
        settings = bench_settings(data_dir)
        with services(settings, ["simulator", "ml"]) as running:
            simulator, ml = running["simulator"].url, running["ml"].url
            for set_name in ("training", "testing"):
                call("POST", simulator + "/root/simulator", json={"set_name": set_name})
            call("POST", ml + "/root/ml/set_model", json=WALKTHROUGH_MODEL)
            call("POST", ml + "/root/ml", json={"dataset": "training"})
            model_dir = save_as_mlflow_model(settings.dataset_db, data_dir / "mlflow-model")
            payloads = testing_payloads(settings.dataset_db)
            server = mlflow_serve(model_dir, data_dir)
            with server as mlflow_url:
                mlflow_pid = [server.process.pid]
                targets = {"ours": ml + "/root/ml/predict", "mlflow": mlflow_url + "/invocations"}
                same_answers(targets, payloads)
                rows = []
                for payload_name, body in payloads.items():
                    measured = {name: [] for name in targets}
                    for attempt in range(2):
                        for name, url in targets.items():
                            leaders = (
                                {"ml": running["ml"].process.pid} if name == "ours" else {"mlflow-serve": mlflow_pid[0]}
                            )
                            with profiled(
                                f"p2-{payload_name.replace(' ', '')}", leaders, config.profile and attempt == 1
                            ):
                                measured[name].append(run_load(url, body, concurrency=CONCURRENCY, seconds=seconds / 2))
                    for name in targets:
                        merged = merge(measured[name])
                        figures = {
                            "payload": payload_name,
                            "server": name,
                            "requests_per_s": merged.throughput,
                            "rows_per_s": merged.throughput * (1 if payload_name == "1 row" else 100),
                            "p50_ms": merged.percentile_ms(50),
                            "p99_ms": merged.percentile_ms(99),
                            "requests": merged.requests,
                            "errors": merged.errors,
                        }
                        rows.append(figures)
                        say(
                            f"p2: {payload_name:>8} {name:>6}: {figures['requests_per_s']:8.1f} req/s, "
                            f"p50 {figures['p50_ms']:6.1f} ms, p99 {figures['p99_ms']:6.1f} ms, {merged.errors} errors"
                        )
    say(
        table(
            ["payload", "server", "req/s", "rows/s", "p50 ms", "p99 ms", "errors"],
            [
                [
                    r["payload"],
                    r["server"],
                    r["requests_per_s"],
                    r["rows_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    str(r["errors"]),
                ]
                for r in rows
            ],
        )
    )
    result.figures = {"concurrency": CONCURRENCY, "seconds_per_server_and_payload": seconds, "runs": rows}
    for payload_name in payloads:
        ours = next(r for r in rows if r["payload"] == payload_name and r["server"] == "ours")
        theirs = next(r for r in rows if r["payload"] == payload_name and r["server"] == "mlflow")
        result.goals.append(
            Goal(
                f"{payload_name} throughput vs MLflow",
                ours["requests_per_s"] / theirs["requests_per_s"],
                3.0,
                "x",
                at_most=False,
            )
        )
        result.goals.append(
            Goal(f"{payload_name} p99 vs MLflow", ours["p99_ms"] / theirs["p99_ms"], 1 / 3, "x", at_most=True)
        )
    return result


def merge(results: list[LoadResult]) -> LoadResult:
    """Several runs against one server as one."""
    return LoadResult(
        sum(r.requests for r in results),
        sum(r.errors for r in results),
        sum(r.seconds for r in results),
        np.concatenate([r.latencies for r in results]),
    )


def save_as_mlflow_model(dataset_db: str, path: Path) -> Path:
    """Save the ML service's trained pipeline (as stored in the dataset DB) as an MLflow model."""
    import mlflow.sklearn
    from sqlalchemy import select

    from mlops.kernel.catalogue import TRUSTED_TYPES
    from mlops.kernel.db import deployed_model, make_engine
    from mlops.ml_service.deployment import load_pipeline

    engine = make_engine(dataset_db)
    with engine.connect() as connection:
        stored = connection.execute(select(deployed_model.c.pipeline)).scalar_one()
    engine.dispose()
    mlflow.sklearn.save_model(
        load_pipeline(stored),
        str(path),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(TRUSTED_TYPES),
        pip_requirements=["scikit-learn", "skops"],
    )
    return path


def testing_payloads(dataset_db: str) -> dict[str, bytes]:
    """MLflow `dataframe_split` bodies of the first testing row and of 100 testing rows."""
    from mlops.kernel.datasets import read_set
    from mlops.kernel.db import make_engine

    engine = make_engine(dataset_db)
    with engine.connect() as connection:
        features = read_set(connection, "testing").features
    engine.dispose()
    hundred = features.iloc[np.arange(100) % len(features)]

    def body(frame) -> bytes:
        return json.dumps(
            {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}
        ).encode()

    return {"1 row": body(features.iloc[:1]), "100 rows": body(hundred)}


def same_answers(targets: dict[str, str], payloads: dict[str, bytes]) -> None:
    """Check both servers predict the same classes (the same model), or stop the benchmark."""
    for body in payloads.values():
        answers = {}
        for name, url in targets.items():
            response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
            response.raise_for_status()
            answers[name] = response.json()["predictions"]
        if answers["ours"] != answers["mlflow"]:
            raise RuntimeError(f"the two servers disagree: {answers}")


class mlflow_serve:
    """`mlflow models serve --env-manager local` on a free loopback port, stopped on exit."""

    def __init__(self, model_dir: Path, data_dir: Path):
        self.model_dir, self.log_path = model_dir, data_dir / "mlflow-serve.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> str:
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        # MLflow runs `uvicorn` from PATH: the venv's
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": (self.model_dir.parent / "mlruns").as_uri(),
        }
        self.process = subprocess.Popen(
            [
                mlflow,
                "models",
                "serve",
                "-m",
                str(self.model_dir),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(url + "/ping", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            time.sleep(0.1)
        stop(self.process)
        raise RuntimeError("mlflow models serve did not answer /ping in 120 s")

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            stop(self.process)
