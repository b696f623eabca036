"""Services started side by side and brought to the walkthrough's state, and the walkthrough sent
to them as the user sends it."""

from __future__ import annotations

import requests
from sqlalchemy import func, select

from mlops.kernel.db import datasets, deployed_model, make_engine, predictions, samples
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST as WALKTHROUGH_OPTIMIZATION
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL as WALKTHROUGH_MODEL
from mlops.kernel.walkthrough import SUMMARY_REQUEST
from tests.support.reliability import ALL_SERVICES

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


def call(method: str, url: str, *, expect: int | tuple[int, ...] = 200, timeout: float = 120, **kwargs) -> dict:
    """Send one request and insist on the status; return the JSON body."""
    response = requests.request(method, url, timeout=timeout, **kwargs)
    expected = (expect,) if isinstance(expect, int) else expect
    assert response.status_code in expected, f"{method} {url} -> {response.status_code}: {response.text[:500]}"
    return response.json()


def start_stack(start_service, settings, services=None, **start_options) -> dict:
    """Start the given (default: all four) services side by side; return {service: ServiceProcess}."""
    from concurrent.futures import ThreadPoolExecutor

    services = list(services or ALL_SERVICES)
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
        for information, kind in (
            ("parameters", "data"),
            ("parameters", "grid_search"),
            ("parameters", "model"),
            ("metrics", "system"),
            ("metrics", "model"),
        ):
            answer = call(
                "POST",
                tracking + "/root/tracking/runs",
                json={
                    "experiment_id": experiment_id,
                    "run_id": run_id,
                    "request_information": information,
                    "type": kind,
                },
            )
            if kind == "data":
                assert answer["data"] == {"classes": "3", "features": "13", "samples": "106"}
        if "ml" in stack:
            deployed = call(
                "POST",
                tracking + "/root/tracking/model_management",
                json={"request_information": "setting", "run_id": run_id},
            )
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
            summary = call("POST", monitoring, json=SUMMARY_REQUEST)
            seen["summary"] = summary
    if "tracking" in stack:
        tracking = stack["tracking"].url
        run_id = seen["run_ids"]["SVC"]
        call(
            "DELETE",
            tracking + "/root/tracking/runs",
            params={"experiment_id": seen["experiment_id"], "run_id": run_id},
        )
        call(
            "POST",
            tracking + "/root/tracking/runs",
            expect=404,
            json={
                "experiment_id": seen["experiment_id"],
                "run_id": run_id,
                "request_information": "metrics",
                "type": "model",
            },
        )
        call("DELETE", tracking + "/root/tracking/experiments", params={"experiment_id": seen["experiment_id"]})
    return seen


def stored_state(url: str) -> dict:
    """Per set (n_samples, samples rows, predictions rows), and the deployed model."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            sets = {}
            for row in connection.execute(select(datasets.c.id, datasets.c.name, datasets.c.n_samples)):
                counts = [
                    connection.execute(select(func.count()).where(table.c.dataset_id == row.id)).scalar_one()
                    for table in (samples, predictions)
                ]
                sets[row.name] = (row.n_samples, *counts)
            model = connection.execute(
                select(deployed_model.c.version, deployed_model.c.model_name, deployed_model.c.trained_at)
            ).all()
        return {"sets": sets, "model": model}
    finally:
        engine.dispose()


def tracking_runs(stack: dict) -> list | None:
    """Every experiment's runs as tracking lists them (None without tracking)."""
    if "tracking" not in stack:
        return None
    url = stack["tracking"].url
    experiments = call("GET", url + "/root/tracking/experiments")["data"]
    return [
        call("GET", url + "/root/tracking/runs", params={"experiment_id": e["experiment_id"]}, expect=(200, 404))
        for e in experiments
    ]
