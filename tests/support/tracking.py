"""Helpers of the tracking tests: the walkthrough's optimization and what it scores, and the settings of a tracking app."""

from __future__ import annotations

import copy
import uuid

from mlops.kernel.config import Settings
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST as WALKTHROUGH_OPTIMIZATION
from tests.support.processes import free_port

# What the walkthrough's LogisticRegression grid scores, cross-validated on the 106 training rows.
WALKTHROUGH_LR_ACCURACY = 98 / 106

# The walkthrough's statistics example (POST /root/tracking/experiments, "statistics", filter
# ["all"]): the five statistics of its three runs, to the last digit.
WALKTHROUGH_STATISTICS = {
    "duration": {
        "mean": 0.3225320180257161,
        "median": 0.22951197624206543,
        "std_dev": 0.24966742678439094,
        "variance": 0.06233382399713921,
        "min": 0.0740654468536377,
        "max": 0.6640186309814453,
        "mode": 0.6640186309814453,
        "iqr": 0.5899531841278076,
    },
    "accuracy": {
        "mean": 0.9088050314465409,
        "median": 0.9150943396226415,
        "std_dev": 0.016034652558467873,
        "variance": 0.0002571100826707803,
        "min": 0.8867924528301887,
        "max": 0.9245283018867925,
        "mode": 0.9150943396226415,
        "iqr": 0.037735849056603765,
    },
    "f1_score": {
        "mean": 0.9079266853127027,
        "median": 0.9145840674968364,
        "std_dev": 0.016324599192037065,
        "variance": 0.0002664925387806572,
        "min": 0.8854538500764916,
        "max": 0.9237421383647799,
        "mode": 0.9145840674968364,
        "iqr": 0.03828828828828834,
    },
    "precision": {
        "mean": 0.9108102003255284,
        "median": 0.9189476849854208,
        "std_dev": 0.016590439513733773,
        "variance": 0.0002752426832588589,
        "min": 0.8876836503450208,
        "max": 0.9257992656461439,
        "mode": 0.9189476849854208,
        "iqr": 0.03811561530112306,
    },
    "recall": {
        "mean": 0.9088050314465409,
        "median": 0.9150943396226415,
        "std_dev": 0.016034652558467873,
        "variance": 0.0002571100826707803,
        "min": 0.8867924528301887,
        "max": 0.9245283018867925,
        "mode": 0.9150943396226415,
        "iqr": 0.037735849056603765,
    },
}


def optimization(name: str | None = None, **changes) -> dict:
    """The walkthrough's optimization body under a fresh experiment name, with changes."""
    body = copy.deepcopy(WALKTHROUGH_OPTIMIZATION)
    body["experiment_name"] = name or f"wine_{uuid.uuid4().hex[:10]}"
    body.update(changes)
    return body


def backend_of(settings: Settings) -> str:
    """The kind of the settings' dataset database: sqlite or postgresql."""
    return "postgresql" if settings.dataset_db.startswith("postgresql") else "sqlite"


def tracking_settings_for(settings: Settings, mlflow_uri: str) -> Settings:
    """Settings for a tracking app: MLflow on the given store, two jobs, no ML service listening."""
    return settings.model_copy(
        update={"mlflow_tracking_uri": mlflow_uri, "n_jobs": 2, "ml_service_url": f"http://127.0.0.1:{free_port()}"}
    )


# The loop's tests: a weak model trained through the ML service (one shallow tree), which the
# champion is adopted from, and a retraining whose searched LogisticRegression beats it.
MANAGE = "/root/tracking/model_management"
WEAK_MODEL = {"model_name": "RandomForest", "hyperparameters": {"n_estimators": 1, "max_depth": 1}}
LR_RETRAINING = {
    "request_information": "retraining",
    "models": ["LogisticRegression"],
    "hyperparameters": {"LogisticRegression": {"C": [0.1, 1], "solver": ["liblinear"]}},
    "cv": 3,
}
