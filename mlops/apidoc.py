"""Write docs/API.md from the four services' OpenAPI documents plus the hand-written examples below.

    python -m mlops.apidoc            # rewrite docs/API.md
    python -m mlops.apidoc --check    # exit 1 (and say so) if docs/API.md is not what it would write

Each service's app is built in-process (nothing is started or connected) and asked for its
/openapi.json, so the reference lists exactly the endpoints, fields, enumerations and statuses the
code validates with. Every example request is validated with the same request models, and every
endpoint must have an example: an endpoint, field or example that changes without this file
fails `--check` (tests/test_api_doc.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from mlops.kernel.config import Settings
from mlops.kernel.launch import SERVICE_APPS
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST as OPTIMIZATION
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL, WINE_SAMPLE
from mlops.kernel.web import Operation, _openapi_path
from mlops.monitoring.checks import TEST_PRESETS

DEFAULT_OUTPUT = Path("docs/API.md")
# Ids as the walkthrough shows them.
EXPERIMENT_ID = "1"
LR_RUN = "5f69f7ee0507453e9787991521adeb82"
RF_RUN = "2d8371356f1f4665b7697d732f5da3f3"
SVC_RUN = "0b9f23e1f0c046d39b39e4b0add4ac95"
JOB_ID = "0e4c3f8a9b2d4f6e8a1c3e5f7b9d2a4c"
RETRAIN_RUN = "015cf55562d04437ae22392bda4aed33"
ADOPTION_RUN = "2dbdf978bf7443cd9b09f2b2381112d4"
PIPELINE_B64 = "UEsDBBQAAAAAAGgvgl02SFtzgAAAAIAAAAATAAAAMTQwMDg4MDc2MTQ1ODcy...(abridged)"
LR_PARAMS = {"C": 0.1, "solver": "liblinear"}
GATE = {
    "accuracy": {"challenger": 1.0, "champion": 0.9722222222222222, "margin": 0.01,
                 "improvement": 0.02777777777777779, "passed": True},
    "f1_score": {"challenger": 1.0, "champion": 0.9722633744855966, "margin": 0.01,
                 "improvement": 0.027736625514403368, "passed": True},
}  # fmt: skip
GATE_REASON = "the challenger beats the champion on every gate metric (accuracy by +0.0278, f1_score by +0.0277)"
VERDICT = {
    "retraining_advised": True,
    "reasons": ["40 of 86 tests did not pass: production data differs from testing data, consider re-training"],
}
SERVED_CHAMPION = {
    "model_name": "LogisticRegression", "hyperparameters": LR_PARAMS, "version": 3,
    "set_at": "2026-12-02T05:59:16+00:00", "trained_at": "2026-12-02T05:59:16+00:00",
    "training_accuracy": 0.9859154929577465, "registered_model": "wine", "registered_version": "2",
    "run_id": RETRAIN_RUN, "training_dataset_id": 1,
}  # fmt: skip
ADOPTED_EVENT = {
    "sequence": 1, "action": "adopted", "champion": "1", "previous": None, "at": "2026-12-02T05:59:15+00:00",
    "by": "ML service training",
    "reason": "LogisticRegression trained through POST /root/ml (ML service version 2) is what the ML service serves",
    "run_id": ADOPTION_RUN,
}  # fmt: skip
PROMOTED_EVENT = {
    "sequence": 2, "action": "promoted", "champion": "2", "previous": "1", "at": "2026-12-02T05:59:16+00:00",
    "by": "retraining", "reason": f"monitoring verdict: retraining advised; {GATE_REASON}", "run_id": RETRAIN_RUN,
    "challenger": "2", "decision": "promoted", "gate": GATE,
    "held_out": {"testing": {"dataset_id": 2, "rows": 36}}, "verdict": VERDICT,
}  # fmt: skip
ABRIDGED = "…"


@dataclass(frozen=True)
class Example:
    """One request to an endpoint and the answer a real run gave (abridged where it says so)."""

    title: str
    response: Any
    body: Any = None
    query: str = ""
    status: int = 200
    # the path with its parameters filled in, for a path that has some (`{job_id}`)
    path: str = ""


@dataclass(frozen=True)
class ServiceApi:
    """A service's OpenAPI document and the operations (with request models) it was built from."""

    name: str
    document: dict[str, Any]
    operations: list[Operation]

    @property
    def base_url(self) -> str:
        return self.document["servers"][0]["url"]


def _not_loaded(name: str) -> dict[str, str]:
    return {
        "error": "Set not loaded",
        "message": f"The {name} set is not loaded yet: load it first with "
        f'POST /root/simulator {{"set_name": "{name}"}}',
    }


V2_METADATA = {
    "name": "wine", "versions": ["3"], "platform": "sklearn",
    "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}],
    "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}],
    "parameters": {"model_name": "RandomForest", "features": ", ".join(WINE_SAMPLE), "classes": "0, 1, 2"},
}  # fmt: skip
STATISTICS = {
    "duration": {"mean": 0.8801535793333338, "median": 0.4428061589999288, "std_dev": 0.6340676252920066,
                 "variance": 0.40204175344344445, "min": 0.4208832980000352, "max": 1.7767712810000376,
                 "mode": 1.7767712810000376, "iqr": 1.3558879830000024},
    "accuracy": {"mean": 0.9119496855345912, "median": 0.9150943396226415, "std_dev": 0.011766218197402329,
                 "variance": 0.00013844389066888172, "min": 0.8962264150943396, "max": 0.9245283018867925,
                 "mode": 0.9150943396226415, "iqr": 0.028301886792452824},
    "f1_score": ABRIDGED, "precision": ABRIDGED, "recall": ABRIDGED,
}  # fmt: skip
DATASETS = {
    "reference": {"set": "testing", "dataset_id": 2, "model_version": 3, "rows": 36, "rows_used": 36},
    "current": {"set": "production", "dataset_id": 3, "model_version": 3, "rows": 36, "rows_used": 36},
}
SCENARIO_TRUTH = {
    "size": 36, "rows_from": "training+production", "shift": {"alcohol": 1.0, "proline": 1.0}, "scale": {},
    "noise_sd": 0.0, "missing": {"rate": 0.1, "mechanism": "MCAR"}, "class_weights": None, "fouling": False,
    "feature_sd": {"alcohol": 0.8118265380058575, "proline": 314.9074742768491}, "feature_mean": {},
}  # fmt: skip
ALL_TESTS = list(TEST_PRESETS)
SUMMARY_MESSAGE = "41 of 86 tests did not pass: production data differs from testing data, consider re-training"


def _run_query(information: str, kind: str, run_id: str = LR_RUN) -> dict[str, str]:
    return {"experiment_id": EXPERIMENT_ID, "run_id": run_id, "request_information": information, "type": kind}


# (service, METHOD, path) -> examples, in the walkthrough's words and with a real run's answers.
EXAMPLES: dict[tuple[str, str, str], list[Example]] = {
    ("simulator", "GET", "/root/simulator"): [
        Example(
            "Status, with the loaded sets and how production was drawn (its ground truth)",
            {
                "name": "simulator",
                "message": "Simulator",
                "sets": {
                    "training": {
                        "dataset_id": 1,
                        "rows": 106,
                        "loaded_at": "2026-12-02T05:40:50.612410+00:00",
                        "seed": None,
                        "scenario": None,
                    },
                    "testing": {
                        "dataset_id": 2,
                        "rows": 36,
                        "loaded_at": "2026-12-02T05:40:50.667868+00:00",
                        "seed": None,
                        "scenario": None,
                    },
                    "production": {
                        "dataset_id": 4,
                        "rows": 36,
                        "loaded_at": "2026-12-02T05:41:06.415314+00:00",
                        "seed": 7,
                        "scenario": SCENARIO_TRUTH,
                    },
                },
            },
        ),  # fmt: skip
        Example("Status, before any set is loaded", {"name": "simulator", "message": "Simulator", "sets": {}}),
    ],
    ("simulator", "POST", "/root/simulator"): [
        Example("Load the training set", {"message": "Load training set"}, body={"set_name": "training"}),
        Example("Load the fouled production set", {"message": "Load production set"}, body={"set_name": "production"}),
        Example(
            "A seeded production set with known faults: 36 clean rows, two features shifted by 1 sd, 10 % missing",
            {"message": "Load production set"},
            body={
                "set_name": "production",
                "seed": 7,
                "scenario": {"shift": {"alcohol": 1.0, "proline": 1.0}, "missing": {"rate": 0.1}},
            },
        ),  # fmt: skip
        Example(
            "A clean production set of 360 rows",
            {"message": "Load production set"},
            body={"set_name": "production", "size": 360, "seed": 1, "scenario": {}},
        ),
        Example(
            "A scenario with an unknown feature",
            {
                "error": "Invalid request",
                "message": "scenario.shift: unknown features 'alcool'; the features are alcohol, malic_acid, ash, "
                "alcalinity_of_ash, magnesium, total_phenols, flavanoids, nonflavanoid_phenols, "
                "proanthocyanins, color_intensity, hue, od280/od315_of_diluted_wines, proline (got dict)",
            },
            body={"set_name": "production", "scenario": {"shift": {"alcool": 1.0}}},
            status=400,
        ),  # fmt: skip
        Example(
            "An unknown set",
            {
                "error": "Invalid request",
                "message": "set_name: Input should be 'training', 'testing' or 'production' (got \"validation\")",
            },
            body={"set_name": "validation"},
            status=400,
        ),  # fmt: skip
    ],
    ("ml", "GET", "/root/ml"): [
        Example(
            "Status, with the deployed model",
            {
                "name": "ml_model",
                "message": "ML model",
                "model": {
                    "model_name": "RandomForest",
                    "hyperparameters": RANDOM_FOREST_MODEL["hyperparameters"],
                    "version": 3,
                    "set_at": "2026-11-26T18:04:12+00:00",
                    "trained_at": "2026-11-26T18:04:14+00:00",
                    "training_accuracy": 1.0,
                },
            },
        ),  # fmt: skip
        Example("Status, before any set_model", {"name": "ml_model", "message": "ML model", "model": None}),
    ],
    ("ml", "POST", "/root/ml"): [
        Example(
            "Train on the training set", {"message": "Score on training set: 100.00%"}, body={"dataset": "training"}
        ),
        Example(
            "Evaluate on the testing set", {"message": "Score on testing set: 97.22%"}, body={"dataset": "testing"}
        ),
        Example(
            "Evaluate on the production set",
            {"message": "Score on production set: 83.33%"},
            body={"dataset": "production"},
        ),
        Example(
            "Before any set_model",
            {
                "error": "No model set",
                "message": "No model is set yet: set one first with POST /root/ml/set_model "
                '{"model_name": ..., "hyperparameters": {...}}',
            },
            body={"dataset": "training"},
            status=409,
        ),
        Example(
            "Evaluating before training",
            {
                "error": "Model not trained",
                "message": "The deployed SVC model (version 1) is not trained yet: "
                'train it first with POST /root/ml {"dataset": "training"}',
            },
            body={"dataset": "testing"},
            status=409,
        ),
    ],
    ("ml", "POST", "/root/ml/set_model"): [
        Example(
            "Deploy a RandomForest",
            {"message": "Model successfully uploaded"},
            body=RANDOM_FOREST_MODEL,
        ),  # fmt: skip
        Example(
            "An unknown model",
            {"error": "Model not Found", "message": "Please Specify 'RandomForest', 'SVC' or 'LogisticRegression'"},
            body={"model_name": "XGBoost", "hyperparameters": {}},
            status=400,
        ),
        Example(
            "A misspelt hyperparameter",
            {
                "error": "Invalid hyperparameter",
                "message": "Unknown hyperparameter(s) for SVC: kernal. Valid: C, break_ties, cache_size, class_weight, "
                "coef0, decision_function_shape, degree, gamma, kernel, max_iter, probability, random_state, "
                "shrinking, tol, verbose",
            },
            body={"model_name": "SVC", "hyperparameters": {"kernal": "rbf"}},
            status=400,
        ),  # fmt: skip
    ],
    ("ml", "POST", "/root/ml/predict"): [
        Example(
            "Predict one wine (a list of records; MLflow's dataframe_split / dataframe_records work too)",
            {
                "predictions": [0],
                "probabilities": [[0.98, 0.01, 0.01]],
                "classes": [0, 1, 2],
                "model": {"model_name": "RandomForest", "version": 3, "registered_version": None},
            },
            body=[WINE_SAMPLE],
        ),  # fmt: skip
    ],
    ("ml", "POST", "/invocations"): [
        Example(
            "MLflow's dataframe_split (dataframe_records, instances and inputs work too)",
            {"predictions": [0]},
            body={"dataframe_split": {"columns": list(WINE_SAMPLE), "data": [list(WINE_SAMPLE.values())]}},
        ),
        Example(
            "Rows of the 13 values in order (TensorFlow Serving's `inputs`)",
            {"predictions": [0]},
            body={"inputs": [list(WINE_SAMPLE.values())]},
        ),  # fmt: skip
    ],
    ("ml", "GET", "/v2"): [
        Example("Server metadata", {"name": "mlops-ml", "version": "0.1.0", "extensions": ["binary_tensor_data"]}),
    ],
    ("ml", "GET", "/v2/health/live"): [Example("Alive", {"live": True})],
    ("ml", "GET", "/v2/health/ready"): [
        Example("A trained model is loaded", {"ready": True}),
        Example(
            "Before any model is trained",
            {
                "ready": False,
                "error": "No model set: No model is set yet: set one first with "
                'POST /root/ml/set_model {"model_name": ..., "hyperparameters": {...}}',
            },
            status=503,
        ),  # fmt: skip
    ],
    ("ml", "GET", "/v2/models/{model_name}"): [
        Example("The served model's tensors and version", V2_METADATA, path="/v2/models/wine"),
    ],
    ("ml", "GET", "/v2/models/{model_name}/versions/{version}"): [
        Example("The served version", V2_METADATA, path="/v2/models/wine/versions/3"),
        Example(
            "Another version",
            {"error": "Unknown version: Version 1 of 'wine' is not served; the served version is 3"},
            path="/v2/models/wine/versions/1",
            status=404,
        ),  # fmt: skip
    ],
    ("ml", "GET", "/v2/models/{model_name}/ready"): [
        Example("Ready", {"name": "wine", "ready": True}, path="/v2/models/wine/ready"),
    ],
    ("ml", "GET", "/v2/models/{model_name}/versions/{version}/ready"): [
        Example("Ready", {"name": "wine", "ready": True}, path="/v2/models/wine/versions/3/ready"),
    ],
    ("ml", "POST", "/v2/models/{model_name}/infer"): [
        Example(
            "One wine as a [1, 13] FP64 tensor (flat or nested by rows)",
            {
                "model_name": "wine",
                "model_version": "3",
                "id": "42",
                "outputs": [
                    {"name": "predict", "shape": [1], "datatype": "INT64", "data": [0]},
                    {"name": "predict_proba", "shape": [1, 3], "datatype": "FP64", "data": [0.98, 0.01, 0.01]},
                ],
            },
            body={
                "id": "42",
                "inputs": [
                    {"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": list(WINE_SAMPLE.values())}
                ],
            },
            path="/v2/models/wine/infer",
        ),  # fmt: skip
        Example(
            "The pandas content type: one tensor per feature; only the classes asked for",
            {
                "model_name": "wine",
                "model_version": "3",
                "outputs": [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [0]}],
            },
            body={
                "parameters": {"content_type": "pd"},
                "inputs": [
                    {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
                    for name, value in WINE_SAMPLE.items()
                ],
                "outputs": [{"name": "predict"}],
            },
            path="/v2/models/wine/infer",
        ),  # fmt: skip
        Example(
            "A tensor of the wrong shape",
            {
                "error": "Invalid request: input 'input-0': the shape must be [n, 13] (n rows of the features "
                "alcohol, malic_acid, ash, alcalinity_of_ash, magnesium, total_phenols, flavanoids, "
                "nonflavanoid_phenols, proanthocyanins, color_intensity, hue, od280/od315_of_diluted_wines, "
                "proline), got [1, 12]"
            },
            body={
                "inputs": [
                    {"name": "input-0", "shape": [1, 12], "datatype": "FP64", "data": list(WINE_SAMPLE.values())[:12]}
                ]
            },
            path="/v2/models/wine/infer",
            status=400,
        ),  # fmt: skip
    ],
    ("ml", "POST", "/v2/models/{model_name}/versions/{version}/infer"): [
        Example(
            "The served version, probabilities only",
            {
                "model_name": "wine",
                "model_version": "3",
                "outputs": [{"name": "predict_proba", "shape": [1, 3], "datatype": "FP64", "data": [0.98, 0.01, 0.01]}],
            },
            body={
                "inputs": [
                    {"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": [list(WINE_SAMPLE.values())]}
                ],
                "outputs": [{"name": "predict_proba"}],
            },
            path="/v2/models/wine/versions/3/infer",
        ),  # fmt: skip
    ],
    ("ml", "GET", "/root/ml/model"): [
        Example(
            "The served model and its pipeline (what tracking registers when it adopts a model trained here)",
            {"model": SERVED_CHAMPION, "format": "skops", "pipeline": PIPELINE_B64},
        ),
        Example(
            "Before any training",
            {
                "error": "No model set",
                "message": 'No model is set yet: set one first with POST /root/ml/set_model {"model_name": ..., '
                '"hyperparameters": {...}}',
            },
            status=409,
        ),  # fmt: skip
    ],
    ("ml", "PUT", "/root/ml/model"): [
        Example(
            "Serve a registered version (sent by tracking when the champion moves)",
            {"message": "Model installed", "model": SERVED_CHAMPION},
            body={
                "registered_model": "wine",
                "registered_version": "2",
                "run_id": RETRAIN_RUN,
                "model_name": "LogisticRegression",
                "hyperparameters": LR_PARAMS,
                "training_dataset_id": 1,
                "training_accuracy": 0.9859154929577465,
                "pipeline": PIPELINE_B64,
            },
        ),  # fmt: skip
    ],
    ("tracking", "POST", "/root/tracking/model_management"): [
        Example(
            "Optimization: grid search + cross-validation of three models, logged to MLflow",
            {
                "message": "Experiments retrieved successfully",
                "data": {
                    "experiment_id": EXPERIMENT_ID,
                    "run_ids": {"LogisticRegression": LR_RUN, "RandomForest": RF_RUN, "SVC": SVC_RUN},
                },
            },
            body=OPTIMIZATION,
            status=201,
        ),  # fmt: skip
        Example(
            "Setting: deploy a run's model to the ML service (its answer is relayed)",
            {"message": "Model successfully uploaded"},
            body={"request_information": "setting", "run_id": LR_RUN},
        ),
        Example(
            "Optimization in the background: answered at once with its job (GET its Location)",
            {
                "message": "Optimization accepted",
                "data": {
                    "job_id": JOB_ID,
                    "state": "queued",
                    "fits_done": 0,
                    "fits_total": 90,
                    "elapsed_seconds": 0.004,
                    "submitted_at": "2026-12-02 06:10:03",
                    "status_code": None,
                    "answer": None,
                },
            },
            body={**OPTIMIZATION, "wait": False},
            status=202,
        ),  # fmt: skip
        Example(
            "Retraining, triggered by monitoring's verdict: the challenger beats the champion, which it replaces",
            {
                "message": "Challenger promoted",
                "data": {
                    "decision": "promoted",
                    "reason": GATE_REASON,
                    "challenger": {
                        "version": "2",
                        "model_name": "LogisticRegression",
                        "hyperparameters": LR_PARAMS,
                        "run_id": RETRAIN_RUN,
                        "scores": {"accuracy": 1.0, "f1_score": 1.0, "precision": 1.0, "recall": 1.0},
                        "scores_by_set": {
                            "testing": {"accuracy": 1.0, "f1_score": 1.0, "precision": 1.0, "recall": 1.0}
                        },
                    },
                    "champion": {
                        "version": "1",
                        "model_name": "LogisticRegression",
                        "hyperparameters": LR_PARAMS,
                        "run_id": ADOPTION_RUN,
                        "scores": {
                            "accuracy": 0.9722222222222222,
                            "f1_score": 0.9722633744855966,
                            "precision": 0.974074074074074,
                            "recall": 0.9722222222222222,
                        },
                        "scores_by_set": {
                            "testing": {
                                "accuracy": 0.9722222222222222,
                                "f1_score": 0.9722633744855966,
                                "precision": 0.974074074074074,
                                "recall": 0.9722222222222222,
                            }
                        },
                    },
                    "margins": {"accuracy": 0.01, "f1_score": 0.01},
                    "gate": GATE,
                    "held_out": {"testing": {"dataset_id": 2, "rows": 36}},
                    "trained_on": {"training": 1, "production": 3},
                    "verdict": VERDICT,
                    "champion_now": "2",
                    "event": 2,
                    "experiment_id": "2",
                    "run_ids": {"LogisticRegression": RETRAIN_RUN},
                },
            },
            body={"request_information": "retraining", "include_production_labels": True, "verdict": VERDICT},
        ),  # fmt: skip
        Example(
            "Rollback: the champion goes back to the version that held it before",
            {
                "message": "Rolled back to version 1",
                "data": {
                    "champion": "1",
                    "previous": "2",
                    "event": {
                        "sequence": 3,
                        "action": "rolled_back",
                        "champion": "1",
                        "previous": "2",
                        "at": "2026-12-02T05:59:36+00:00",
                        "by": "rollback request",
                        "reason": "production complaints",
                        "run_id": ADOPTION_RUN,
                    },
                },
            },
            body={"request_information": "rollback", "reason": "production complaints"},
        ),  # fmt: skip
        Example(
            "Rollback with no earlier champion",
            {
                "error": "No earlier champion",
                "message": "Version 1 is the first champion: there is no earlier one to roll back to. Promote another "
                'version first (retraining, or {"request_information": "promotion", "version": ...})',
            },
            body={"request_information": "rollback"},
            status=409,
        ),  # fmt: skip
        Example(
            "Promotion of a registered version by hand (no gate)",
            {
                "message": "Version 2 is the champion",
                "data": {
                    "champion": "2",
                    "previous": "1",
                    "event": {
                        "sequence": 4,
                        "action": "requested",
                        "champion": "2",
                        "previous": "1",
                        "at": "2026-12-02T05:59:36+00:00",
                        "by": "promotion request",
                        "reason": "promotion requested",
                        "run_id": RETRAIN_RUN,
                    },
                },
            },
            body={"request_information": "promotion", "version": "2"},
        ),  # fmt: skip
        Example(
            "Optimization before the training set is loaded",
            _not_loaded("training"),
            body={"request_information": "optimization", "experiment_name": "wine_test_2", "models": ["SVC"]},
            status=409,
        ),
    ],
    ("tracking", "GET", "/root/tracking/jobs/{job_id}"): [
        Example(
            'An optimization sent with "wait": false, once done: the answer the blocking request gives',
            {
                "message": "Job retrieved",
                "data": {
                    "job_id": JOB_ID,
                    "state": "done",
                    "fits_done": 90,
                    "fits_total": 90,
                    "elapsed_seconds": 2.412,
                    "submitted_at": "2026-12-02 06:10:03",
                    "status_code": 201,
                    "answer": {
                        "message": "Experiments retrieved successfully",
                        "data": {
                            "experiment_id": EXPERIMENT_ID,
                            "run_ids": {"LogisticRegression": LR_RUN, "RandomForest": RF_RUN, "SVC": SVC_RUN},
                        },
                    },
                },
            },
            path=f"/root/tracking/jobs/{JOB_ID}",
        ),  # fmt: skip
        Example(
            "While it runs",
            {
                "message": "Job retrieved",
                "data": {
                    "job_id": JOB_ID,
                    "state": "running",
                    "fits_done": 35,
                    "fits_total": 90,
                    "elapsed_seconds": 0.93,
                    "submitted_at": "2026-12-02 06:10:03",
                    "status_code": None,
                    "answer": None,
                },
            },
            path=f"/root/tracking/jobs/{JOB_ID}",
        ),  # fmt: skip
        Example(
            "An unknown job",
            {"error": "Job not found", "message": "No optimization job 0123456789abcdef0123456789abcdef"},
            path="/root/tracking/jobs/0123456789abcdef0123456789abcdef",
            status=404,
        ),
    ],
    ("tracking", "GET", "/root/tracking/experiments"): [
        Example(
            "All active experiments",
            {
                "message": "Experiments retrieved successfully",
                "data": [
                    {"experiment_id": EXPERIMENT_ID, "name": "wine_test_1", "lifecycle_stage": "active", "run_count": 3}
                ],
            },
        ),
    ],
    ("tracking", "POST", "/root/tracking/experiments"): [
        Example(
            "general",
            {
                "message": "Information Retrieved",
                "data": {
                    "experiment_info": {
                        "experiment_id": EXPERIMENT_ID,
                        "experiment_name": "wine_test_1",
                        "artifact_location": "file:///srv/mlops/var/mlartifacts/1",
                        "lifecycle_stage": "active",
                        "tags": {
                            "description": "Grid Search Optimization - Cross Validation Performance",
                            "owner": "Ale",
                        },
                        "data_creation": "2026-11-26 18:04:00",
                        "last_updated": "2026-11-26 18:04:00",
                    },
                    "experiment_runs": {
                        "number_of_runs": 3,
                        "completed_runs": 3,
                        "failed_runs": 0,
                        "active_runs": 0,
                        "stopped_runs": 0,
                        "first_run_completed": "2026-11-26 18:04:00",
                        "last_run_completed": "2026-11-26 18:04:05",
                    },
                },
            },
            body={"experiment_id": EXPERIMENT_ID, "request_information": "general"},
        ),  # fmt: skip
        Example(
            "best_model: the run with the highest model_accuracy",
            {
                "message": "Best model and run retrieved successfully.",
                "data": {
                    "run_id": LR_RUN,
                    "run_name": "LogisticRegression Grid_Search_Opt and CV_Performance",
                    "model": "LogisticRegression",
                    "metrics": {"model_accuracy": 0.9245283018867925},
                },
            },
            body={"experiment_id": EXPERIMENT_ID, "request_information": "best_model", "filter": ["model_accuracy"]},
        ),  # fmt: skip
        Example(
            "statistics of every metric (abridged)",
            {"message": "Statistics Retrieved", "data": STATISTICS},
            body={"experiment_id": EXPERIMENT_ID, "request_information": "statistics", "filter": ["all"]},
        ),
        Example(
            "An unknown experiment",
            {"error": "Experiment not found", "message": "Experiment '999' not found (unknown or deleted)"},
            body={"experiment_id": "999", "request_information": "general"},
            status=404,
        ),
    ],
    ("tracking", "DELETE", "/root/tracking/experiments"): [
        Example(
            "Delete an experiment and its runs",
            {"message": "Experiment deleted successfully", "data": {"experiment_id": EXPERIMENT_ID}},
            query=f"experiment_id={EXPERIMENT_ID}",
        ),
    ],
    ("tracking", "GET", "/root/tracking/runs"): [
        Example(
            "The runs of an experiment, newest first (abridged)",
            {
                "message": "Experiment Runs Retrieved",
                "data": [
                    {
                        "run_id": SVC_RUN,
                        "status": "FINISHED",
                        "start_time": "2026-11-26 18:04:03",
                        "end_time": "2026-11-26 18:04:05",
                        "run_name": "SVC Grid_Search_Opt and CV_Performance",
                        "tags": {"model_type": "SVC", "experiment_type": "GridSearch_CrossValidation"},
                    },
                    ABRIDGED,
                ],
            },
            query=f"experiment_id={EXPERIMENT_ID}",
        ),  # fmt: skip
    ],
    ("tracking", "GET", "/root/tracking/model_management"): [
        Example(
            "The champion, what the ML service serves, and who moved the champion when and why",
            {
                "message": "Champion history retrieved",
                "data": {
                    "registered_model": "wine",
                    "alias": "champion",
                    "champion": {
                        "version": "2",
                        "run_id": RETRAIN_RUN,
                        "model_name": "LogisticRegression",
                        "hyperparameters": LR_PARAMS,
                        "champion_since": "2026-12-02T05:59:16+00:00",
                        "promoted_by": "retraining",
                    },
                    "served": SERVED_CHAMPION,
                    "in_step": True,
                    "rollback_to": "1",
                    "history": [ADOPTED_EVENT, PROMOTED_EVENT],
                },
            },
        ),  # fmt: skip
    ],
    ("tracking", "POST", "/root/tracking/runs"): [
        Example(
            "lineage: the registered versions a run logged, when they were champion, deployments, prediction batches",
            {
                "message": "Lineage Retrieved",
                "data": {
                    "run_id": RETRAIN_RUN,
                    "registered_versions": [
                        {
                            "registered_model": "LogisticRegression",
                            "version": "2",
                            "aliases": [],
                            "created": 1796191156316,
                        },
                        {"registered_model": "wine", "version": "2", "aliases": ["champion"], "created": 1796191156568},
                    ],
                    "champion_events": [PROMOTED_EVENT],
                    "deployments": [
                        {
                            "model_version": 3,
                            "model_name": "LogisticRegression",
                            "source": "champion",
                            "registered_model": "wine",
                            "registered_version": "2",
                            "run_id": RETRAIN_RUN,
                            "training_dataset_id": 1,
                            "deployed_at": "2026-12-02T05:59:16+00:00",
                        }
                    ],
                    "prediction_batches": [
                        {
                            "set_name": "testing",
                            "dataset_id": 2,
                            "rows": 36,
                            "accuracy": 1.0,
                            "model_version": 3,
                            "registered_model": "wine",
                            "registered_version": "2",
                            "run_id": RETRAIN_RUN,
                            "made_at": "2026-12-02T05:59:16+00:00",
                        }
                    ],
                },
            },
            body={"experiment_id": "2", "run_id": RETRAIN_RUN, "request_information": "lineage"},
        ),  # fmt: skip
        Example(
            "parameters / data",
            {"message": "Parameters Retrieved", "data": {"classes": "3", "features": "13", "samples": "106"}},
            body=_run_query("parameters", "data"),
        ),
        Example(
            "parameters / grid_search",
            {
                "message": "Parameters Retrieved",
                "data": {"C": "[0.1, 1]", "cv_folds": "5", "scoring": "accuracy", "solver": "['liblinear']"},
            },
            body=_run_query("parameters", "grid_search"),
        ),
        Example(
            "parameters / model",
            {"message": "Parameters Retrieved", "data": {"C": "0.1", "solver": "liblinear"}},
            body=_run_query("parameters", "model"),
        ),
        Example(
            "metrics / system",
            {"message": "Parameters Retrieved", "data": {"cpu_usage": 13.8, "execution_time": 0.4428061589999288}},
            body=_run_query("metrics", "system"),
        ),
        Example(
            "metrics / model",
            {
                "message": "Parameters Retrieved",
                "data": {
                    "accuracy": 0.9245283018867925,
                    "f1_score": 0.9237421383647798,
                    "precision": 0.9257992656461439,
                    "recall": 0.9245283018867925,
                },
            },
            body=_run_query("metrics", "model"),
        ),
        Example(
            "A deleted run",
            {"error": "Run not found", "message": f"Run '{LR_RUN}' not found in experiment '1' (unknown or deleted)"},
            body=_run_query("metrics", "model"),
            status=404,
        ),
    ],  # fmt: skip
    ("tracking", "DELETE", "/root/tracking/runs"): [
        Example(
            "Delete one run",
            {"message": "Run deleted successfully", "data": {"experiment_id": EXPERIMENT_ID, "run_id": LR_RUN}},
            query=f"experiment_id={EXPERIMENT_ID}&run_id={LR_RUN}",
        ),
    ],
    ("monitoring", "GET", "/root/monitoring"): [
        Example("Status", {"name": "monitoring", "message": "Monitoring"}),
    ],
    ("monitoring", "POST", "/root/monitoring"): [
        Example(
            "Evidently's report (abridged)",
            {
                "message": "Report of the production set (current) against the testing set (reference)",
                "data": {
                    "version": "0.7.23",
                    "metrics": [
                        {
                            "metric": "DatasetDriftMetric",
                            "result": {
                                "drift_share": 0.5,
                                "number_of_columns": 15,
                                "number_of_drifted_columns": 4,
                                "share_of_drifted_columns": 0.26666666666666666,
                                "dataset_drift": False,
                            },
                        },
                        ABRIDGED,
                    ],
                    "timestamp": "2026-11-26 18:04:21.105791",
                },
                "datasets": DATASETS,
                "notes": [],
            },
            body={"metric": "report"},
        ),  # fmt: skip
        Example(
            "The five test suites (abridged)",
            {
                "message": SUMMARY_MESSAGE,
                "data": {
                    "version": "0.7.23",
                    "tests": [
                        {
                            "name": "Share of Drifted Columns",
                            "description": "The drift is detected for 26.7% features (4 out of 15). The test threshold is lt=0.3",
                            "status": "SUCCESS",
                            "group": "data_drift",
                            "parameters": ABRIDGED,
                        },
                        ABRIDGED,
                    ],
                    "summary": {
                        "all_passed": False,
                        "total_tests": 86,
                        "success_tests": 45,
                        "failed_tests": 41,
                        "by_status": {"SUCCESS": 45, "FAIL": 41},
                    },
                    "timestamp": "2026-11-26 18:04:23.882911",
                },
                "tests": ALL_TESTS,
                "datasets": DATASETS,
                "notes": [],
            },
            body={"metric": "tests"},
        ),  # fmt: skip
        Example(
            "The summary of the chosen test suites: should the model be re-trained?",
            {
                "message": SUMMARY_MESSAGE,
                "data": {
                    "all_passed": False,
                    "total_tests": 86,
                    "success_tests": 45,
                    "failed_tests": 41,
                    "by_status": {"SUCCESS": 45, "FAIL": 41},
                },
                "tests": ALL_TESTS,
                "datasets": DATASETS,
                "notes": [],
            },
            body={"metric": "summary", "tests": dict.fromkeys(ALL_TESTS, True)},
        ),  # fmt: skip
        Example(
            "The re-training verdict on the walkthrough's production set (abridged: 2 of the 13 features)",
            {
                "message": "Re-training advised: missing values 0.0% -> 2.8% (rows with one: 0% -> 28%)",
                "data": {
                    "retraining_advised": True,
                    "rule": {
                        "false_alarm_level": 0.05,
                        "families": ["distribution shift", "missing values", "prediction drift", "quality drop"],
                        "level_per_family": 0.0125,
                        "combined_by": "Bonferroni across the families: advised when any check fires",
                        "features_adjusted_by": "Benjamini-Hochberg across the features",
                    },
                    "reasons": [
                        {
                            "check": "distribution shift",
                            "feature": "alcohol",
                            "fired": False,
                            "effect": {
                                "standardised_mean_difference": 0.6058337725585415,
                                "wasserstein_distance_sd": 0.6144275886432922,
                            },
                            "test": "Cramér-von Mises, two-sample (Evidently cramer_von_mises), on the values present",
                            "p_value": 0.04190191286690659,
                            "adjusted_p_value": 0.08389032517166864,
                            "threshold": 0.0125,
                            "sizes": {"reference": 36, "current": 35},
                        },
                        {
                            "check": "distribution shift",
                            "feature": "ash",
                            "fired": False,
                            "effect": {
                                "standardised_mean_difference": 0.47763576653398776,
                                "wasserstein_distance_sd": 0.5239808395817458,
                            },
                            "test": "Cramér-von Mises, two-sample (Evidently cramer_von_mises), on the values present",
                            "p_value": 0.00501790119801504,
                            "adjusted_p_value": 0.02174423852473184,
                            "threshold": 0.0125,
                            "sizes": {"reference": 36, "current": 35},
                        },
                        ABRIDGED,
                        {
                            "check": "missing values",
                            "fired": True,
                            "effect": {
                                "missing_share_reference": 0.0,
                                "missing_share_current": 0.027777777777777776,
                                "change": 0.027777777777777776,
                                "rows_with_missing_reference": 0.0,
                                "rows_with_missing_current": 0.2777777777777778,
                                "features_missing_current": {"alcohol": 0.027777777777777776, "…": "…"},
                            },
                            "test": "Fisher's exact, one-sided: more rows with a missing value in current",
                            "p_value": 0.0004740417747336613,
                            "threshold": 0.0125,
                            "sizes": {"reference": 36, "current": 36},
                        },
                        {
                            "check": "prediction drift",
                            "fired": False,
                            "effect": {
                                "total_variation_distance": 0.1388888888888889,
                                "class_shares_reference": {
                                    "0": 0.3611111111111111,
                                    "1": 0.3611111111111111,
                                    "2": 0.2777777777777778,
                                },
                                "class_shares_current": {"0": 0.5, "1": 0.2777777777777778, "2": 0.2222222222222222},
                            },
                            "test": "chi-square test of homogeneity of the predicted classes",
                            "statistic": 1.4199781829515348,
                            "p_value": 0.4916495606028587,
                            "threshold": 0.0125,
                            "sizes": {"reference": 36, "current": 36},
                        },
                        {
                            "check": "quality drop",
                            "fired": False,
                            "effect": {
                                "accuracy_reference": 0.9722222222222222,
                                "accuracy_current": 0.8333333333333334,
                                "change": -0.13888888888888884,
                                "change_interval": [-0.29283649571156006, 0.0050381019318852804],
                                "interval_level": 0.95,
                            },
                            "test": "Fisher's exact, one-sided: fewer correct predictions in current (true classes stored)",
                            "p_value": 0.05326703896317556,
                            "threshold": 0.0125,
                            "sizes": {"reference": 36, "current": 36},
                        },
                    ],
                },
                "reference": "testing",
                "datasets": DATASETS,
                "notes": [],
            },
            body={"metric": "verdict"},
        ),  # fmt: skip
        Example(
            "The verdict against training and testing together (more rows, more power)",
            {
                "message": "No re-training advised: none of the 16 checks found production different from the "
                "reference (false-alarm level 5%)",
                "data": {"retraining_advised": False, "rule": ABRIDGED, "reasons": [ABRIDGED]},
                "reference": "training+testing",
                "datasets": DATASETS
                | {"training": {"set": "training", "dataset_id": 1, "model_version": 3, "rows": 106, "rows_used": 106}},
                "notes": [],
            },
            body={"metric": "verdict", "reference": "training+testing"},
        ),  # fmt: skip
        Example(
            "An unknown reference",
            {
                "error": "Invalid request",
                "message": "reference: Input should be 'testing' or 'training+testing' (got \"production\")",
            },
            body={"metric": "verdict", "reference": "production"},
            status=400,
        ),  # fmt: skip
        Example("Before the testing set is loaded", _not_loaded("testing"), body={"metric": "report"}, status=409),
    ],
    ("monitoring", "GET", "/root/monitoring/report.html"): [
        Example("Open it in a browser: Evidently's report as a self-contained HTML page", "<!DOCTYPE html>…"),
    ],
    ("monitoring", "GET", "/root/monitoring/tests.html"): [
        Example("Two of the test suites as an HTML page", "<!DOCTYPE html>…", query="tests=data_drift,data_quality"),
        Example(
            "An unknown test suite",
            {
                "error": "Invalid request",
                "message": "tests: unknown tests 'foo'; give a comma-separated list of some of 'data_drift', "
                "'data_quality', 'data_stability', 'no_target_performance', 'multi_class_classification'",
            },
            query="tests=foo",
            status=400,
        ),  # fmt: skip
    ],
}

INTRODUCTION = """\
# API reference

<!-- Generated by `python -m mlops.apidoc` from the services' OpenAPI documents and the examples in
mlops/apidoc.py. Do not edit by hand: tests/test_api_doc.py fails when this file differs. -->

Four services, each a small JSON API. The walkthrough (Postman collection in `postman/`, the same
with curl in `scripts/walkthrough.sh`) uses them in this order: simulator → tracking → ML model →
monitoring. Each service also describes itself: `GET /openapi.json` (OpenAPI 3.1) and `GET /docs`
(a browsable page).

| service | default base URL | what it does |
|---|---|---|
| simulator | `http://127.0.0.1:5004` | loads the wine training / testing / production sets into the dataset DB |
| ML model | `http://127.0.0.1:5001` | sets a model, trains it, evaluates it (stores predictions), predicts |
| tracking | `http://127.0.0.1:5002` | grid search + CV logged to MLflow, queries, deletion, deployment |
| monitoring | `http://127.0.0.1:5003` | Evidently report / test suites / summary, and the re-training verdict, of production against testing |

## Conventions

- **JSON in, JSON out.** A request body must be JSON with `Content-Type: application/json`.
  Unknown fields are refused (400), so a typo never passes silently; enumerations (set names,
  model names, `request_information`, `type`, `metric`) list the accepted values when wrong.
- **Errors** are always `{"error": <what went wrong>, "message": <what to do>}`:

  | status | when |
  |---|---|
  | 400 | invalid JSON, a missing, unknown or invalid field, an invalid grid or hyperparameter |
  | 401 | `MLOPS_API_TOKEN` is set and the request lacks `Authorization: Bearer <token>` |
  | 404 | unknown (or deleted) experiment or run; unknown path |
  | 405 | a method the path does not have |
  | 409 | a step is missing first: the set is not loaded, no model is set or trained, the sets are not evaluated |
  | 413 | the body is larger than `MLOPS_MAX_BODY_BYTES` |
  | 415 | the body is not sent as `application/json` |
  | 500 | a fault of ours (logged with its traceback) |
  | 502 | another service answered something that is not JSON |
  | 503 | the dataset DB, the MLflow store or another service is unreachable; retry shortly |

- **Authentication** is off by default. With `MLOPS_API_TOKEN` set, every write (and every read
  too with `MLOPS_PROTECT_READS=true`) needs `Authorization: Bearer <token>`; `/health` stays open.
- **Health.** `GET /health` on every service answers 200
  `{"status": "ok", "service": "tracking", "database": "ok", "mlflow": "ok"}` when the service and
  its dependencies answer, else 503 with `"status": "unavailable"` plus `error` and `message`
  naming what is down.
- **Metrics.** `GET /metrics` on every service answers Prometheus' text format, summed over the
  service's workers: requests and latency by endpoint rule and status, and each service's own
  (predictions by model version, grid-search fits, verdicts by outcome, rows loaded by set), under
  MLServer's names where it has them. [metrics.md](metrics.md) lists every metric with an example
  query.

## The loop: champion, retraining, rollback

The ML service serves the **champion**: the version of the registered model `wine` (in MLflow's
model registry) that the `champion` alias points at. Tracking moves the alias and gives the ML
service that version's pipeline (`PUT /root/ml/model`); every ML worker swaps to it on its next
request, without a restart, and every prediction answer names the version it came from
(`model.registered_version`).

1. `POST /root/monitoring {"metric": "verdict"}` says whether retraining is advised, and why.
2. `POST /root/tracking/model_management {"request_information": "retraining", "verdict": ...}`
   searches again (by default the champion's own models and grids; `include_production_labels`
   adds the labelled production rows), registers the best model as a new version (the
   challenger), scores challenger and champion on the same held-out rows (testing, and
   production when it was not trained on), and promotes the challenger only if it scores at least
   champion + margin on every metric of `gate` (default accuracy and f1_score, 0.01 each).
   The answer gives `decision` (`promoted` or `kept`), both models' scores, the margins and the
   verdict; the decision is also tagged on the versions and logged on the run in MLflow.
3. `{"request_information": "rollback"}` moves the champion back to the version that held it
   before; `{"request_information": "promotion", "version": "3"}` promotes a version by hand.
4. `GET /root/tracking/model_management` lists the champion, what the ML service serves, and
   every move (who, when, why); `POST /root/tracking/runs {"request_information": "lineage"}` tells
   which versions, deployments and prediction batches came from a run.

`setting`, `set_model` and training through `POST /root/ml` work as the walkthrough shows: they
change the ML service's model directly. Such a model is not overwritten; the next retraining,
promotion or rollback first registers it as a new version and makes it the champion
("adopted"). A 409 names the step to run first (no champion yet, no earlier champion, a set not
loaded); a grid over `MLOPS_GRID_MAX_FITS` is a 400.

The examples use the default base URLs and the ids of the walkthrough; answers are a real run's
(abridged where marked `…`).
"""


def build_service_apis(settings: Settings | None = None) -> list[ServiceApi]:
    """Build each service's app in-process and read its /openapi.json."""
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings or Settings(data_dir=Path(data_dir))
        apis = []
        for service, spec in SERVICE_APPS.items():
            module, factory = spec.removesuffix("()").split(":")
            app = getattr(importlib.import_module(module), factory)(settings)
            response = app.test_client().get("/openapi.json")
            if response.status_code != 200:
                raise RuntimeError(f"{service}: GET /openapi.json answered {response.status_code}")
            apis.append(ServiceApi(service, response.get_json(), list(app.extensions["mlops"].operations)))
        return apis


def check_examples(apis: list[ServiceApi]) -> list[str]:
    """Problems with EXAMPLES: endpoints without one, examples of no endpoint, requests the models refuse."""
    problems = []
    operations = {(api.name, op.method, _openapi_path(op.rule)): op for api in apis for op in api.operations}
    documented = {
        (api.name, method.upper(), path): set(item["responses"]) for api in apis
        for path, method, item in _operations(api.document)
    }  # fmt: skip
    for key in operations.keys() - EXAMPLES.keys():
        problems.append(f"no example for {' '.join(key)}: add one to EXAMPLES in mlops/apidoc.py")
    for key in EXAMPLES.keys() - operations.keys():
        problems.append(f"an example for {' '.join(key)}, which no service has")
    for key, examples in EXAMPLES.items():
        op = operations.get(key)
        if op is None:
            continue
        for example in examples:
            found = _request_problems(op, example)
            if str(example.status) not in documented.get(key, set()):
                found.append(f"answers {example.status}, a status the endpoint does not document")
            problems += [f"{' '.join(key)} example {example.title!r}: {p}" for p in found]
    return sorted(problems)


def _request_problems(op: Operation, example: Example) -> list[str]:
    """Why this example's request is not one the operation takes (an example of a 4xx may be invalid)."""
    problems = []
    if (example.body is None) != (op.body is None):
        problems.append("has a body" if op.body is None else "needs a body")
    if example.query and op.query is None:
        problems.append("has a query string the endpoint does not read")
    if example.status == 400:
        return problems  # examples of invalid requests are meant to fail validation
    try:
        if op.body is not None and example.body is not None:
            op.body.model_validate_json(json.dumps(example.body))
        if op.query is not None:
            op.query.model_validate(dict(parse_qsl(example.query)))
    except ValidationError as error:
        problems.append(f"the request model refuses it: {error.errors(include_url=False)}")
    return problems


def render(apis: list[ServiceApi]) -> str:
    """docs/API.md: the introduction, a table of contents, then every endpoint of every service."""
    out = [INTRODUCTION, "## Endpoints\n", "| service | method | path | what it does |", "|---|---|---|---|"]
    for api in apis:
        for path, method, item in _operations(api.document):
            anchor = _anchor(f"{method.upper()} {path}")
            out.append(f"| {api.name} | {method.upper()} | [`{path}`](#{anchor}) | {_cell(item['summary'])} |")
    out.append("")
    for api in apis:
        title = api.document["info"]["title"]
        out.append(f"## {title} service (`{api.base_url}`)\n")
        for path, method, item in _operations(api.document):
            out += _render_operation(api, path, method, item)
    return "\n".join(out).rstrip() + "\n"


def _operations(document: dict[str, Any]):
    for path, methods in document["paths"].items():
        for method, item in methods.items():
            yield path, method, item


def _render_operation(api: ServiceApi, path: str, method: str, item: dict[str, Any]) -> list[str]:
    schemas = api.document["components"]["schemas"]
    out = [f"### {method.upper()} {path}\n", item["summary"] + "\n"]
    for where in ("path", "query"):
        parameters = [p for p in item.get("parameters", []) if p["in"] == where]
        if not parameters:
            continue
        out += [f"**{where.title()} parameters**\n", "| name | type | required | description |", "|---|---|---|---|"]
        for parameter in parameters:
            schema = parameter["schema"]
            required = "yes" if parameter["required"] else "no"
            kind, notes = _cell(describe(schema, [])), _cell(_notes(schema))
            out.append(f"| `{parameter['name']}` | {kind} | {required} | {notes} |")
        out.append("")
    if "requestBody" in item:
        ref = item["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        out += _render_body(_ref_name(ref), schemas)
    out += ["**Responses**\n", "| status | meaning |", "|---|---|"]
    for status, response in sorted(item["responses"].items()):
        out.append(f"| {status} | {_cell(response['description'])} |")
    out.append("")
    for example in EXAMPLES.get((api.name, method.upper(), path), []):
        out += _render_example(api.base_url, path, method.upper(), example)
    return out


def _render_body(name: str, schemas: dict[str, Any]) -> list[str]:
    """The request body's fields; a union lists each of its shapes, nested objects follow their parent."""
    schema = schemas[name]
    out = [f"**Request body** (`{name}`): {schema.get('description', '')}\n"]
    if "oneOf" in schema:
        chooser = schema.get("discriminator", {}).get("propertyName")
        out.append(f"One of these, chosen by `{chooser}`:\n" if chooser else "Any of these shapes:\n")
        for variant in schema["oneOf"]:
            if "$ref" in variant:
                out += _render_object(_ref_name(variant["$ref"]), schemas, chooser)
            else:
                description = variant.get("description", "")
                out.append(f"- {describe(variant, [])}" + (f": {description}" if description else ""))
        if not all("$ref" in v for v in schema["oneOf"]):
            out.append("")
        return out
    return out + _render_object(name, schemas, None, heading=False)


def _render_object(name: str, schemas: dict[str, Any], chooser: str | None, *, heading: bool = True) -> list[str]:
    schema = schemas[name]
    out = []
    if heading:
        const = schema.get("properties", {}).get(chooser or "", {}).get("const")
        label = f'`"{const}"` (`{name}`)' if const is not None else f"`{name}`"
        out.append(f"- {label}: {schema.get('description', '')}\n")
    nested: list[str] = []
    out += ["| field | type | required | description |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for field, definition in schema.get("properties", {}).items():
        out.append(
            f"| `{field}` | {_cell(describe(definition, nested))} | {'yes' if field in required else 'no'} "
            f"| {_cell(_notes(definition))} |"
        )
    out.append("")
    for name_ in dict.fromkeys(nested):
        out += [f"`{name_}`: {schemas[name_].get('description', '')}\n"]
        out += _render_object(name_, schemas, None, heading=False)
    return out


def describe(schema: dict[str, Any], nested: list[str]) -> str:
    """A JSON schema as a short phrase: `string, one of "a", "b"`, `array of integer (1-3 items)`."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        nested.append(name)
        return f"`{name}` object (below)"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    for union in ("anyOf", "oneOf"):
        if union in schema:
            parts = [describe(s, nested) for s in schema[union] if s.get("type") != "null"]
            if any(s.get("type") == "null" for s in schema[union]):
                parts.append("null")
            return _alternatives(list(dict.fromkeys(parts)))
    kind = schema.get("type")
    if kind == "array":
        items = describe(schema.get("items", {}), nested)
        items = f"({items})" if " or " in re.sub(r"\([^()]*\)", "", items) else items
        return f"array of {items}{_bounds(schema, 'minItems', 'maxItems', 'items')}"
    if kind == "object":
        if "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
            values = describe(schema["additionalProperties"], nested)
            keys = "feature name" if "propertyNames" in schema else "name"
            return f"object: {keys} → {values}{_bounds(schema, 'minProperties', 'maxProperties', 'keys')}"
        return "object"
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if kind == "integer" and (low, high) == (-(2**63), 2**63 - 1):
            return "integer"
        if low is not None and high is not None:
            return f"{kind}, {low} to {high}"
        if low is not None:
            return f"{kind} ≥ {low}"
        return kind + (f" ≤ {high}" if high is not None else "")
    if kind == "string":
        return "string" + _bounds(schema, "minLength", "maxLength", "characters")
    return kind or "any JSON value"


def _alternatives(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _bounds(schema: dict[str, Any], low_key: str, high_key: str, unit: str) -> str:
    low, high = schema.get(low_key), schema.get(high_key)
    if low is not None and low == high:
        return f" (exactly {low} {unit})"
    if low is not None and high is not None:
        return f" ({low}-{high} {unit})"
    if high is not None:
        return f" (at most {high} {unit})"
    if low is not None:
        return f" (at least {low} {unit})"
    return ""


def _notes(schema: dict[str, Any]) -> str:
    notes = [schema["description"]] if "description" in schema else []
    if "default" in schema and schema["default"] is not None:
        notes.append(f"default `{json.dumps(schema['default'])}`")
    return "; ".join(notes)


def _render_example(base_url: str, path: str, method: str, example: Example) -> list[str]:
    url = base_url + (example.path or path) + (f"?{example.query}" if example.query else "")
    command = " ".join(shlex.quote(part) for part in ["curl"] + ([] if method == "GET" else ["-X", method]) + [url])
    if example.body is not None:
        command += " \\\n  -H 'Content-Type: application/json' -d " + shlex.quote(_json(example.body))
    html = isinstance(example.response, str)
    return [
        f"**Example: {example.title}**\n",
        "```sh",
        command,
        "```\n",
        f"answers {example.status}:\n",
        "```html" if html else "```json",
        example.response if html else _json(example.response),
        "```\n",
    ]


def _json(value: Any, indent: int = 0, column: int = 0, width: int = 100) -> str:
    """JSON laid out for reading: a value that fits its line stays on it, else its items are indented.

    indent is the indentation of the value's own lines, column where on its first line it starts."""
    line = json.dumps(value, ensure_ascii=False)
    if column + len(line) <= width or not isinstance(value, (dict, list)) or not value:
        return line
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            prefix = f"{pad}{json.dumps(key, ensure_ascii=False)}: "
            items.append(prefix + _json(item, indent + 2, len(prefix), width))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _json(item, indent + 2, len(pad), width) for item in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) docs/API.md."""
    parser = argparse.ArgumentParser(prog="python -m mlops.apidoc", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="default: docs/API.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not what would be written")
    args = parser.parse_args(argv)
    logging.getLogger("mlops").setLevel(logging.WARNING)  # no access-log lines for our own /openapi.json calls
    apis = build_service_apis()
    problems = check_examples(apis)
    if problems:
        print("mlops.apidoc: the examples do not match the services:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    text = render(apis)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `python -m mlops.apidoc`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
