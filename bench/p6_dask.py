"""P6 Dask: the grid search on a 2-process Dask cluster against local threads, on the same cores.

The tracking service's own search (mlops.tracking.optimize.search_model, every model of the
grid in turn) runs with its fits on local threads (joblib's threading backend, n_jobs=-1) and on
a Dask cluster of two single-threaded worker processes started here (`dask scheduler`, `dask
worker`), alternated, for two grids: the walkthrough's (90 fits) and one of 2,000 fits (the
largest MLOPS_GRID_MAX_FITS allows). The tasks the scheduler ran are counted. For the pitfall the
issue names, the walkthrough's grid also runs once on joblib's plain dask backend, which sends
every RandomForest tree to the cluster as a task of its own.

Goals: Dask <= 1.3x local threads on the same cores; tasks <= fits + 10.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

from bench.harness import Config, Goal, Result, median, say, table, timed
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST

RATIO_GOAL = 1.3
EXTRA_TASKS_GOAL = 10

# 2,000 fits: (20 + 60 + 320) candidates x 5 folds, fits of a few milliseconds each, as the
# walkthrough's are; RandomForest's 60 candidates are where nested parallelism would show.
BIG_GRID = {
    "models": ["LogisticRegression", "RandomForest", "SVC"],
    "hyperparameters": {
        "LogisticRegression": {"C": [round(0.05 * i, 2) for i in range(1, 21)], "solver": ["liblinear"]},
        "RandomForest": {
            "n_estimators": [5, 10, 20],
            "max_depth": [None, 2, 3, 4, 5],
            "min_samples_split": [2, 3, 4, 5],
        },
        "SVC": {
            "C": [0.1 * 2**i for i in range(16)],
            "gamma": ["scale", "auto", 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
            "kernel": ["rbf", "linear"],
        },
    },
    "cv": 5,
}
QUICK_GRID = {
    "models": ["LogisticRegression", "RandomForest"],
    "hyperparameters": {
        "LogisticRegression": {"C": [0.1, 1], "solver": ["liblinear"]},
        "RandomForest": {"n_estimators": [3, 5]},
    },
    "cv": 3,
}


def run(config: Config) -> Result:
    from tests.support.dask_processes import DaskProcesses

    result = Result("p6")
    grids = {"walkthrough": _request(OPTIMIZATION_REQUEST)} if not config.quick else {"quick": _request(QUICK_GRID)}
    if not config.quick:
        grids["2,000 fits"] = _request(BIG_GRID)
    # the 2,000-fit grid takes minutes per pair on a busy 2-core machine: one pair of it
    repeats = {"walkthrough": 3, "2,000 fits": 1, "quick": 1}
    rows, figures = [], {}
    with tempfile.TemporaryDirectory(dir=config.work_dir) as directory, DaskProcesses(Path(directory)) as cluster:
        training = _training()
        say(
            f"p6: Dask cluster {cluster.address}: 2 worker processes x 1 thread; local: threads, n_jobs=-1 on {os.cpu_count()} cores"
        )
        for name, request in grids.items():
            fits = _fits(request)
            searches = _searches(request)
            if not rows:
                # warm-up of both arms: imports and first fits, here and in the workers
                _search(searches, training, None)
                _on_cluster(cluster.address, searches, training)
            local_times, dask_times, tasks = [], [], []
            for _ in range(repeats[name]):
                local_times.append(timed(lambda searches=searches: _search(searches, training, None))[0])
                seconds, count = _on_cluster(cluster.address, searches, training)
                dask_times.append(seconds)
                tasks.append(count)
            local, dask = median(local_times), median(dask_times)
            load = os.getloadavg()[0]
            figures[name] = {
                "fits": fits,
                "local_s": local_times,
                "dask_s": dask_times,
                "tasks": tasks,
                "ratio": dask / local,
                "load_average_1min_after": load,
            }
            rows.append(
                [name, fits, local, dask, f"{dask / local:.2f}x", max(tasks), f"{max(tasks) / fits:.3f}", f"{load:.1f}"]
            )
            say(
                f"p6: {name}: {fits} fits, local {local:.2f} s, Dask {dask:.2f} s = {dask / local:.2f}x, {max(tasks)} tasks (load {load:.1f})"
            )
        if not config.quick:
            name = "walkthrough"
            seconds, count = _on_cluster(cluster.address, _searches(grids[name]), training, plain=True)
            figures["plain_dask_backend"] = {
                "grid": name,
                "seconds": seconds,
                "tasks": count,
                "fits": _fits(grids[name]),
            }
            rows.append(
                [
                    f"{name}, joblib's plain dask backend",
                    _fits(grids[name]),
                    "",
                    seconds,
                    f"{seconds / median(figures[name]['local_s']):.2f}x",
                    count,
                    f"{count / _fits(grids[name]):.1f}",
                    f"{os.getloadavg()[0]:.1f}",
                ]
            )
            say(
                f"p6: plain dask backend on the {name} grid: {seconds:.2f} s, {count} tasks for {_fits(grids[name])} fits"
            )
    say(
        table(
            [
                "grid",
                "fits",
                "local threads s (median)",
                "Dask 2 processes s (median)",
                "Dask / local",
                "tasks",
                "tasks per fit",
                "load 1 min",
            ],
            rows,
        )
    )
    result.figures = figures
    for name in grids:
        figure = figures[name]
        result.goals.append(
            Goal(f"{name} grid on Dask / local threads", figure["ratio"], RATIO_GOAL, "x", at_most=True)
        )
        result.goals.append(
            Goal(
                f"{name} grid tasks - fits",
                max(figure["tasks"]) - figure["fits"],
                EXTRA_TASKS_GOAL,
                "tasks",
                at_most=True,
            )
        )
    return result


def _request(changes: dict):
    from mlops.tracking.schemas import OptimizationRequest

    body = copy.deepcopy(OPTIMIZATION_REQUEST)
    body.update(copy.deepcopy(changes))
    return OptimizationRequest.model_validate(body)


def _fits(request) -> int:
    from mlops.tracking.plan import fit_count

    return fit_count(request)


def _searches(request):
    from mlops.kernel.config import Settings
    from mlops.tracking.plan import plan_searches

    searches = plan_searches(request, Settings())
    return [(search, request.cv) for search in searches]


def _training():
    from mlops.simulator.splits import load_split

    return load_split("training")


def _search(searches, training, cluster) -> list:
    from mlops.tracking.optimize import search_model

    return [
        search_model(search, training.features, training.target, scoring="accuracy", cv=cv, n_jobs=-1, cluster=cluster)
        for search, cv in searches
    ]


def _on_cluster(address: str, searches, training, *, plain: bool = False) -> tuple[float, int]:
    """Seconds for the searches with their fits on the cluster (connection included), and how
    many tasks the scheduler ran meanwhile."""
    from distributed import get_task_stream

    from mlops.tracking.cluster import connected

    def search():
        with connected(address) as client, get_task_stream(client) as stream:
            if plain:
                _plain_dask(searches, training, client)
            else:
                _search(searches, training, client)
        return len(stream.data)

    return timed(search)


def _plain_dask(searches, training, client) -> None:
    """GridSearchCV under joblib's own dask backend (the pitfall): every joblib call is a task."""
    from joblib import parallel_config
    from sklearn.model_selection import GridSearchCV

    from mlops.kernel.catalogue import build_estimator

    with parallel_config(backend="dask", client=client):
        for search, cv in searches:
            GridSearchCV(build_estimator(search.model_name), search.grid, cv=cv, n_jobs=-1).fit(
                training.features.to_numpy(), training.target.to_numpy()
            )
