"""P1 tracking overhead: the walkthrough's optimization request, end to end over HTTP, against the
bare in-process sequential compute of the same grid (GridSearchCV + cross_val_predict, n_jobs=1)
on the same training rows, measured alternately in the same run.

Where the time goes: each run's own `system_execution_time` (the service's search and
cross-validation of one model) is read back from MLflow; the rest of the request is reading the
set, MLflow bookkeeping and logging the models.

Goal: request time <= 1.0x the bare compute (the first request after start is shown apart: it
also creates MLflow's store if the warm-up has not yet).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from bench.harness import Config, Goal, Result, bench_settings, call, median, profiled, say, services, table, timed
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST as WALKTHROUGH_OPTIMIZATION


def run(config: Config) -> Result:
    """Alternate bare compute and HTTP requests; compare the medians."""
    request = copy.deepcopy(WALKTHROUGH_OPTIMIZATION)
    repeats = 1 if config.quick else 5
    if config.quick:
        request["models"] = ["LogisticRegression"]
        request["hyperparameters"] = {"LogisticRegression": request["hyperparameters"]["LogisticRegression"]}
    result = Result("p1")
    with tempfile.TemporaryDirectory(dir=config.work_dir) as data_dir:
        settings = bench_settings(Path(data_dir))
        with services(settings, ["simulator", "tracking"]) as running:
            simulator, tracking = running["simulator"].url, running["tracking"].url
            call("POST", simulator + "/root/simulator", json={"set_name": "training"})
            bare_times, request_times, answers = [], [], []
            for attempt in range(repeats + 1):
                per_model = bare_compute(request)
                bare_s = sum(per_model.values())
                with profiled(
                    "p1-request", {"tracking": running["tracking"].process.pid}, config.profile and attempt == 1
                ):
                    request_s, answer = timed(
                        lambda: call(
                            "POST", tracking + "/root/tracking/model_management", json=request, expect=(200, 201)
                        )
                    )
                say(
                    f"p1: try {attempt}: bare {bare_s:.2f} s ({', '.join(f'{m} {s:.2f}' for m, s in per_model.items())}), request {request_s:.2f} s"
                )
                if attempt == 0:
                    first = {"bare_s": bare_s, "request_s": request_s}
                    continue
                bare_times.append(bare_s)
                request_times.append(request_s)
                answers.append(answer)
            in_runs = searches_logged(settings.mlflow_uri, answers[-1])
    bare, request_s = median(bare_times), median(request_times)
    searched = sum(in_runs.values())
    say(
        table(
            ["what", "seconds"],
            [
                ["bare GridSearchCV + cross_val_predict, n_jobs=1 (median)", bare],
                ["optimization request over HTTP (median)", request_s],
                ["  of which search + CV inside the service (last request)", searched],
                ["  of which the rest: read set, MLflow runs, params, models", request_s - searched],
                ["first request after start", first["request_s"]],
            ],
        )
    )
    result.figures = {
        "repeats": repeats,
        "bare_s": bare_times,
        "request_s": request_times,
        "first": first,
        "service_search_s_by_model": in_runs,
    }
    result.goals = [Goal("optimization request / bare compute", request_s / bare, 1.0, "x", at_most=True)]
    return result


def bare_compute(request: dict) -> dict[str, float]:
    """The same grid searches and cross-validations, in this process, one core; seconds per model."""
    from sklearn.model_selection import GridSearchCV, cross_val_predict

    from mlops.kernel.catalogue import build_estimator
    from mlops.simulator.splits import load_split

    training = load_split("training")
    X, y = training.features, training.target
    seconds = {}
    for model in request["models"]:

        def search(model=model):
            grid = GridSearchCV(
                build_estimator(model),
                request["hyperparameters"][model],
                scoring=request["scoring"],
                cv=request["cv"],
                n_jobs=1,
            )
            grid.fit(X, y)
            cross_val_predict(grid.best_estimator_, X, y, cv=request["cv"], n_jobs=1)

        seconds[model], _ = timed(search)
    return seconds


def searches_logged(mlflow_uri: str, answer: dict) -> dict[str, float]:
    """Each run's own system_execution_time, as the service logged it to MLflow."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    run_ids = answer["data"]["run_ids"]
    return {
        model: client.get_run(run_id).data.metrics.get("system_execution_time", float("nan"))
        for model, run_id in run_ids.items()
    }
