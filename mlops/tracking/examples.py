"""Examples of the tracking service's operations, in the walkthrough's words: the routes declare
them (app.py, examples=), and the OpenAPI document and docs/API.md show them (the queries of
experiments and runs: query_examples.py)."""

from __future__ import annotations

from mlops.kernel.examples import LR_PARAMS, RETRAIN_RUN, SERVED_CHAMPION, Example
from mlops.kernel.walkthrough import OPTIMIZATION_REQUEST as OPTIMIZATION
from mlops.tracking.example_run import (
    ADOPTED_EVENT,
    ADOPTION_RUN,
    EXPERIMENT_ID,
    GATE,
    GATE_REASON,
    JOB_ID,
    LR_RUN,
    PROMOTED_EVENT,
    RF_RUN,
    SVC_RUN,
    VERDICT,
)

MODEL_MANAGEMENT_EXAMPLES = [
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
    ),
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
    ),
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
                    "scores_by_set": {"testing": {"accuracy": 1.0, "f1_score": 1.0, "precision": 1.0, "recall": 1.0}},
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
    ),
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
    ),
    Example(
        "Rollback before there is a champion",
        body={"request_information": "rollback"},
        status=409,
    ),
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
    ),
    Example(
        "Optimization before the training set is loaded",
        body={"request_information": "optimization", "experiment_name": "wine_test_2", "models": ["SVC"]},
        status=409,
    ),
]

JOB_EXAMPLES = [
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
    ),
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
    ),
    Example(
        "An unknown job",
        path="/root/tracking/jobs/0123456789abcdef0123456789abcdef",
        status=404,
    ),
]

CHAMPION_EXAMPLES = [
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
    ),
]
