"""Examples of the tracking service's queries (experiments, runs): the routes declare them (app.py,
examples=), and the OpenAPI document and docs/API.md show them."""

from __future__ import annotations

from mlops.kernel.examples import ABRIDGED, RETRAIN_RUN, Example
from mlops.kernel.walkthrough import EXPERIMENT_TAGS
from mlops.tracking.example_run import (
    EXPERIMENT_ID,
    LR_RUN,
    PROMOTED_EVENT,
    STATISTICS,
    SVC_RUN,
    run_query,
)

EXPERIMENT_LIST_EXAMPLES = [
    Example(
        "All active experiments",
        {
            "message": "Experiments retrieved successfully",
            "data": [
                {"experiment_id": EXPERIMENT_ID, "name": "wine_test_1", "lifecycle_stage": "active", "run_count": 3}
            ],
        },
    ),
]

EXPERIMENT_QUERY_EXAMPLES = [
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
                    "tags": EXPERIMENT_TAGS,
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
    ),
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
    ),
    Example(
        "statistics of every metric (abridged)",
        {"message": "Statistics Retrieved", "data": STATISTICS},
        body={"experiment_id": EXPERIMENT_ID, "request_information": "statistics", "filter": ["all"]},
    ),
    Example(
        "An unknown experiment",
        body={"experiment_id": "999", "request_information": "general"},
        status=404,
    ),
]

EXPERIMENT_DELETE_EXAMPLES = [
    Example(
        "Delete an experiment and its runs",
        {"message": "Experiment deleted successfully", "data": {"experiment_id": EXPERIMENT_ID}},
        query=f"experiment_id={EXPERIMENT_ID}",
    ),
]

RUN_LIST_EXAMPLES = [
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
    ),
]

RUN_QUERY_EXAMPLES = [
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
    ),
    Example(
        "parameters / data",
        {"message": "Parameters Retrieved", "data": {"classes": "3", "features": "13", "samples": "106"}},
        body=run_query("parameters", "data"),
    ),
    Example(
        "parameters / grid_search",
        {
            "message": "Parameters Retrieved",
            "data": {"C": "[0.1, 1]", "cv_folds": "5", "scoring": "accuracy", "solver": "['liblinear']"},
        },
        body=run_query("parameters", "grid_search"),
    ),
    Example(
        "parameters / model",
        {"message": "Parameters Retrieved", "data": {"C": "0.1", "solver": "liblinear"}},
        body=run_query("parameters", "model"),
    ),
    Example(
        "metrics / system",
        {"message": "Parameters Retrieved", "data": {"cpu_usage": 13.8, "execution_time": 0.4428061589999288}},
        body=run_query("metrics", "system"),
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
        body=run_query("metrics", "model"),
    ),
    Example(
        "A run the experiment does not have (deleted, or of another experiment)",
        body=run_query("metrics", "model") | {"experiment_id": "0"},
        status=404,
    ),
]

RUN_DELETE_EXAMPLES = [
    Example(
        "Delete one run",
        {"message": "Run deleted successfully", "data": {"experiment_id": EXPERIMENT_ID, "run_id": LR_RUN}},
        query=f"experiment_id={EXPERIMENT_ID}&run_id={LR_RUN}",
    ),
]
