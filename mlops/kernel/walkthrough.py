"""The walkthrough's request bodies, verbatim (its null is None), and the wine sample the docs and
tests predict: one copy for the services' OpenAPI examples, `mlops demo`, the API docs, the
benchmarks and the tests. Callers copy before changing them (`body | {...}`)."""

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

# The tags its experiment is logged with (tracking's optimize tags description and owner), as the
# walkthrough's experiment information shows them.
EXPERIMENT_TAGS: dict[str, str] = {
    "description": OPTIMIZATION_REQUEST["experiment_description"],
    "owner": OPTIMIZATION_REQUEST["experiment_owner"],
}

# The walkthrough's alternative deployment: POST /root/ml/set_model
RANDOM_FOREST_MODEL: dict[str, Any] = {
    "model_name": "RandomForest",
    "hyperparameters": {"n_estimators": 100, "max_depth": 10, "min_samples_split": 2, "min_samples_leaf": 1},
}


# The walkthrough's last monitoring request: the summary of all five test presets.
SUMMARY_REQUEST: dict[str, Any] = {
    "metric": "summary",
    "tests": {
        "data_drift": True,
        "data_quality": True,
        "data_stability": True,
        "no_target_performance": True,
        "multi_class_classification": True,
    },
}

# One wine, its 13 features by the API's names: what the docs' and the tests' predictions send.
WINE_SAMPLE: dict[str, float] = {
    "alcohol": 13.2,
    "malic_acid": 1.78,
    "ash": 2.14,
    "alcalinity_of_ash": 11.2,
    "magnesium": 100.0,
    "total_phenols": 2.65,
    "flavanoids": 2.76,
    "nonflavanoid_phenols": 0.26,
    "proanthocyanins": 1.28,
    "color_intensity": 4.38,
    "hue": 1.05,
    "od280/od315_of_diluted_wines": 3.4,
    "proline": 1050.0,
}


def optimization_request(experiment_name: str) -> dict[str, Any]:
    """The walkthrough's optimization request (a fresh copy), logged under experiment_name."""
    return copy.deepcopy(OPTIMIZATION_REQUEST) | {"experiment_name": experiment_name}
