"""Helpers of the tracking tests: the walkthrough's optimization and what it scores, and the settings of a tracking app."""

from __future__ import annotations

import copy
import uuid

from mlops.kernel.config import Settings
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST as WALKTHROUGH_OPTIMIZATION
from tests.support.processes import free_port

# What the walkthrough's LogisticRegression grid scores, cross-validated on the 106 training rows.
WALKTHROUGH_LR_ACCURACY = 98 / 106


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
