"""The walkthrough's request bodies, verbatim (its null is None): one copy for `mlops demo`, the
API docs, the benchmarks and the tests. Callers copy before changing them (`body | {...}`)."""

from __future__ import annotations

import copy
from typing import Any

OPTIMIZATION_REQUEST: dict[str, Any] = {
    "request_information": "optimization",
    "experiment_name": "wine_test_1",
    "experiment_description": "Grid Search Optimization - Cross Validation Performance",
    "experiment_owner": "Ale",
    "models": ["LogisticRegression", "RandomForest", "SVC"],
    "hyperparameters": {
        "LogisticRegression": {"C": [0.1, 1], "solver": ["liblinear"]},
        "RandomForest": {"n_estimators": [1, 3], "max_depth": [None, 3], "min_samples_split": [2, 5]},
        "SVC": {"C": [0.1, 10], "kernel": ["linear", "rbf"], "gamma": ["scale", "auto"]},
    },
    "scoring": "accuracy",
    "cv": 5,
}

# The walkthrough's alternative deployment: POST /root/ml/set_model
RANDOM_FOREST_MODEL: dict[str, Any] = {
    "model_name": "RandomForest",
    "hyperparameters": {"n_estimators": 100, "max_depth": 10, "min_samples_split": 2, "min_samples_leaf": 1},
}


def optimization_request(experiment_name: str) -> dict[str, Any]:
    """The walkthrough's optimization request (a fresh copy), logged under experiment_name."""
    return copy.deepcopy(OPTIMIZATION_REQUEST) | {"experiment_name": experiment_name}
