"""How the tracking service names what it logs to MLflow: run names, tags, and the prefixes of
params and metrics (the run endpoints strip them again)."""

from __future__ import annotations

from typing import Any, Literal

RUN_NAME = "{model} Grid_Search_Opt and CV_Performance"
EXPERIMENT_TYPE = "GridSearch_CrossValidation"
# Tags of each optimization run: the model searched, and the kind of experiment.
MODEL_TYPE_TAG, EXPERIMENT_TYPE_TAG = "model_type", "experiment_type"
# Which process runs a run ("<host>:<pid>"), so that a run whose process died can be ended later.
PROCESS_TAG = "mlops.process"
# MLflow's own tags (mlflow.runName, ...) and ours (mlops.process) are not the user's.
SYSTEM_TAG_PREFIXES = ("mlflow.", "mlops.")
# The artifact path of the best estimator inside its run, as in runs:/<run_id>/model.
MODEL_ARTIFACT = "model"

MODEL_PREFIX, DATA_PREFIX, GRID_PREFIX, SYSTEM_PREFIX = "model_", "data_", "grid_search_", "system_"
MODEL_METRICS = ("model_accuracy", "model_f1_score", "model_precision", "model_recall")
# The kinds of params and metrics the run endpoints tell apart, by prefix.
PARAMETER_PREFIXES = {"data": DATA_PREFIX, "grid_search": GRID_PREFIX, "model": MODEL_PREFIX}
METRIC_PREFIXES = {"system": SYSTEM_PREFIX, "model": MODEL_PREFIX}
ParameterKind = Literal[tuple(PARAMETER_PREFIXES)]
MetricKind = Literal[tuple(METRIC_PREFIXES)]


def run_name(model_name: str) -> str:
    """The name of the run that searches model_name."""
    return RUN_NAME.format(model=model_name)


def run_tags(model_name: str) -> dict[str, str]:
    """The tags of the run that searches model_name."""
    return {MODEL_TYPE_TAG: model_name, EXPERIMENT_TYPE_TAG: EXPERIMENT_TYPE}


def unprefixed(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The values whose name starts with prefix, prefix stripped, sorted by name."""
    return {key[len(prefix) :]: values[key] for key in sorted(values) if key.startswith(prefix)}
