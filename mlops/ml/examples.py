"""Examples of the ML service's operations, in the walkthrough's words: the routes declare them
(app.py, inference_routes.py: examples=), and the OpenAPI document and docs/API.md show them."""

from __future__ import annotations

from mlops.kernel.examples import LR_PARAMS, RETRAIN_RUN, SERVED_CHAMPION, Example, Given
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL, WINE_SAMPLE

PIPELINE_B64 = "UEsDBBQAAAAAAGgvgl02SFtzgAAAAIAAAAATAAAAMTQwMDg4MDc2MTQ1ODcy...(abridged)"
V2_METADATA = {
    "name": "wine",
    "versions": ["3"],
    "platform": "sklearn",
    "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}],
    "outputs": [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ],
    "parameters": {"model_name": "RandomForest", "features": ", ".join(WINE_SAMPLE), "classes": "0, 1, 2"},
}

STATUS_EXAMPLES = [
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
                # deployed with set_model, not pushed by the tracking service: no registry fields
                "registered_model": None,
                "registered_version": None,
                "run_id": None,
                "training_dataset_id": None,
            },
        },
    ),
    Example("Status, before any set_model", {"name": "ml_model", "message": "ML model", "model": None}),
]

USE_MODEL_EXAMPLES = [
    Example("Train on the training set", {"message": "Score on training set: 100.00%"}, body={"dataset": "training"}),
    Example("Evaluate on the testing set", {"message": "Score on testing set: 97.22%"}, body={"dataset": "testing"}),
    Example(
        "Evaluate on the production set",
        {"message": "Score on production set: 83.33%"},
        body={"dataset": "production"},
    ),
    Example(
        "Before any set_model",
        body={"dataset": "training"},
        status=409,
    ),
    Example(
        "Evaluating before training",
        body={"dataset": "testing"},
        status=409,
        given=(Given("ml", "POST", "/root/ml/set_model", {"model_name": "SVC", "hyperparameters": {}}),),
    ),
]

SET_MODEL_EXAMPLES = [
    Example(
        "Deploy a RandomForest",
        {"message": "Model successfully uploaded"},
        body=RANDOM_FOREST_MODEL,
    ),
    Example(
        "An unknown model",
        body={"model_name": "XGBoost", "hyperparameters": {}},
        status=400,
    ),
    Example(
        "A misspelt hyperparameter",
        body={"model_name": "SVC", "hyperparameters": {"kernal": "rbf"}},
        status=400,
    ),
]

PREDICT_EXAMPLES = [
    Example(
        "Predict one wine (a list of records; MLflow's dataframe_split / dataframe_records work too)",
        {
            "predictions": [0],
            "probabilities": [[0.98, 0.01, 0.01]],
            "classes": [0, 1, 2],
            "model": {"model_name": "RandomForest", "version": 3, "registered_version": None},
        },
        body=[WINE_SAMPLE],
    ),
]

INVOCATIONS_EXAMPLES = [
    Example(
        "MLflow's dataframe_split (dataframe_records, instances and inputs work too)",
        {"predictions": [0]},
        body={"dataframe_split": {"columns": list(WINE_SAMPLE), "data": [list(WINE_SAMPLE.values())]}},
    ),
    Example(
        "Rows of the 13 values in order (TensorFlow Serving's `inputs`)",
        {"predictions": [0]},
        body={"inputs": [list(WINE_SAMPLE.values())]},
    ),
]

V2_SERVER_EXAMPLES = [
    Example("Server metadata", {"name": "mlops-ml", "version": "0.1.0", "extensions": ["binary_tensor_data"]}),
]

V2_LIVE_EXAMPLES = [Example("Alive", {"live": True})]

V2_READY_EXAMPLES = [
    Example("A trained model is loaded", {"ready": True}),
    Example(
        "Before any model is trained",
        status=503,
    ),
]

V2_MODEL_EXAMPLES = [
    Example("The served model's tensors and version", V2_METADATA, path="/v2/models/wine"),
]

V2_VERSION_EXAMPLES = [
    Example("The served version", V2_METADATA, path="/v2/models/wine/versions/3"),
    Example(
        "Another version",
        path="/v2/models/wine/versions/1",
        status=404,
        given=(
            Given("simulator", "POST", "/root/simulator", {"set_name": "training"}),
            Given("ml", "POST", "/root/ml/set_model", RANDOM_FOREST_MODEL),
            Given("ml", "POST", "/root/ml", {"dataset": "training"}),
        ),
    ),
]

V2_MODEL_READY_EXAMPLES = [
    Example("Ready", {"name": "wine", "ready": True}, path="/v2/models/wine/ready"),
]

V2_VERSION_READY_EXAMPLES = [
    Example("Ready", {"name": "wine", "ready": True}, path="/v2/models/wine/versions/3/ready"),
]

V2_INFER_EXAMPLES = [
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
            "inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": list(WINE_SAMPLE.values())}],
        },
        path="/v2/models/wine/infer",
    ),
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
                {"name": name, "shape": [1], "datatype": "FP64", "data": [value]} for name, value in WINE_SAMPLE.items()
            ],
            "outputs": [{"name": "predict"}],
        },
        path="/v2/models/wine/infer",
    ),
    Example(
        "A tensor of the wrong shape",
        body={
            "inputs": [
                {"name": "input-0", "shape": [1, 12], "datatype": "FP64", "data": list(WINE_SAMPLE.values())[:12]}
            ]
        },
        path="/v2/models/wine/infer",
        status=400,
    ),
]

V2_VERSION_INFER_EXAMPLES = [
    Example(
        "The served version, probabilities only",
        {
            "model_name": "wine",
            "model_version": "3",
            "outputs": [{"name": "predict_proba", "shape": [1, 3], "datatype": "FP64", "data": [0.98, 0.01, 0.01]}],
        },
        body={
            "inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP64", "data": [list(WINE_SAMPLE.values())]}],
            "outputs": [{"name": "predict_proba"}],
        },
        path="/v2/models/wine/versions/3/infer",
    ),
]

SERVED_MODEL_EXAMPLES = [
    Example(
        "The served model and its pipeline (what tracking registers when it adopts a model trained here)",
        {"model": SERVED_CHAMPION, "format": "skops", "pipeline": PIPELINE_B64},
    ),
    Example(
        "Before any training",
        status=409,
    ),
]

INSTALL_MODEL_EXAMPLES = [
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
    ),
]
