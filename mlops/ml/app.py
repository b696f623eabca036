"""The ML service's HTTP API (port 5001)."""

from __future__ import annotations

import base64
from typing import Any

import pandas as pd
from flask import Flask, request

from mlops.kernel.accept_queue import requests_queued
from mlops.kernel.config import Settings
from mlops.kernel.errors import BadRequest
from mlops.kernel.web.factory import create_service_app
from mlops.kernel.web.operations import Answer, ApiBlueprint
from mlops.kernel.web.state import EXTENSION, current_settings, dataset_engine, service_resources, service_state
from mlops.ml.change_signal import ChangeSignal
from mlops.ml.deployment import DeployedModel, RegisteredPipeline, read_deployed, read_served_pipeline
from mlops.ml.examples import (
    INSTALL_MODEL_EXAMPLES,
    INVOCATIONS_EXAMPLES,
    PREDICT_EXAMPLES,
    SERVED_MODEL_EXAMPLES,
    SET_MODEL_EXAMPLES,
    STATUS_EXAMPLES,
    USE_MODEL_EXAMPLES,
)
from mlops.ml.inference_routes import protocol
from mlops.ml.kept_pipeline import KeptPipeline
from mlops.ml.metrics import counted_inference, loaded_model_gauge, record_set_predicted
from mlops.ml.pipeline import (
    Prediction,
    columns_frame,
    evaluate,
    features_frame,
    install_champion,
    predict,
    records_frame,
    set_model,
    train,
)
from mlops.ml.pipeline_cache import PipelineCache
from mlops.ml.readiness import READY_CHECKS, model_readiness
from mlops.ml.schemas import (
    MAX_MODEL_BYTES,
    InstallModel,
    InvocationInputs,
    InvocationInstances,
    InvocationPredictions,
    InvocationRows,
    Message,
    MlStatus,
    ModelInstalled,
    Predictions,
    PredictRows,
    RecordRows,
    ServedModel,
    SetModel,
    SplitRows,
    UseModel,
)

bp = ApiBlueprint("ml", __name__)


def describe_model(model: DeployedModel | None) -> dict[str, Any] | None:
    """Shape the deployed model as GET /root/ml shows it."""
    if model is None:
        return None
    return {
        "model_name": model.model_name,
        "hyperparameters": model.hyperparameters,
        "version": model.version,
        "set_at": model.set_at.isoformat(timespec="seconds"),
        "trained_at": model.trained_at.isoformat(timespec="seconds") if model.trained_at else None,
        "training_accuracy": model.training_accuracy,
        "registered_model": model.registered_model,
        "registered_version": model.registered_version,
        "run_id": model.run_id,
        "training_dataset_id": model.training_dataset_id,
    }


@bp.operation(
    "/root/ml",
    "GET",
    responses={200: Answer("The component, and the deployed model (null if none)", MlStatus)},
    examples=STATUS_EXAMPLES,
)
def status():
    """Name the component and say which model is deployed and when it was trained."""
    with dataset_engine().connect() as connection:
        model = read_deployed(connection)
    return {"name": "ml_model", "message": "ML model", "model": describe_model(model)}


@bp.operation(
    "/root/ml/set_model",
    "POST",
    body=SetModel,
    responses={200: Answer("Model deployed (untrained)", Message), 400: "Unknown model or invalid hyperparameter"},
    examples=SET_MODEL_EXAMPLES,
)
def deploy(body: SetModel):
    """Deploy a model with its hyperparameters, replacing the current one; it must be trained next."""
    set_model(dataset_engine(), service_resources(PipelineCache), body.model_name, body.hyperparameters)
    return {"message": "Model successfully uploaded"}


@bp.operation(
    "/root/ml",
    "POST",
    body=UseModel,
    responses={200: Answer("Score on the set", Message), 409: "No model set, model not trained or set not loaded"},
    examples=USE_MODEL_EXAMPLES,
)
def use(body: UseModel):
    """Train the deployed model on the training set, or evaluate it on testing/production; store the predictions."""
    if body.dataset == "training":
        score = train(dataset_engine(), service_resources(PipelineCache))
    else:
        score = evaluate(dataset_engine(), service_resources(PipelineCache), body.dataset)
    record_set_predicted(service_state().metrics, score.model, score.set_name, score.rows)
    return {"message": f"Score on {score.set_name} set: {score.accuracy * 100:.2f}%"}


PREDICT_ERRORS = {
    400: "Wrong features or values, or too many rows",
    409: "No trained model",
    413: "Body over MLOPS_MAX_BODY_BYTES",
}


@bp.operation(
    "/root/ml/predict",
    "POST",
    body=PredictRows,
    responses={
        200: Answer(
            "Predicted classes (and probabilities); `degraded` says why, when the model answered while the dataset "
            "DB was down",
            Predictions,
        ),
        **PREDICT_ERRORS,
    },
    examples=PREDICT_EXAMPLES,
)
def predict_rows(body: PredictRows):
    """Predict the class of one or many rows of features with the trained model."""
    prediction = counted_prediction(body.root)
    answer: dict[str, Any] = {"predictions": prediction.predicted}
    if prediction.probabilities is not None:
        answer["probabilities"] = prediction.probabilities
    answer["classes"] = prediction.classes
    answer["model"] = {
        "model_name": prediction.model.model_name,
        "version": prediction.model.version,
        "registered_version": prediction.model.registered_version,
    }
    if prediction.degraded is not None:
        answer["degraded"] = prediction.degraded
    return answer


@bp.operation(
    "/invocations",
    "POST",
    body=InvocationRows,
    responses={
        200: Answer(
            'The predicted classes, as MLflow\'s scoring server answers: {"predictions": [...]}', InvocationPredictions
        ),
        **PREDICT_ERRORS,
    },
    examples=INVOCATIONS_EXAMPLES,
)
def invocations(body: InvocationRows):
    """Predict rows sent in any input format of MLflow's scoring server (`mlflow models serve`)."""
    prediction = counted_prediction(body.root)
    return {"predictions": prediction.predicted}


def counted_prediction(rows: Any) -> Prediction:
    """Predict the rows of any accepted predict body, counted in the inference metrics."""
    cache = service_resources(PipelineCache)
    with counted_inference(service_state().metrics, cache) as inference:
        return inference.answered(predict(dataset_engine(), cache, rows_frame(rows)))


def rows_frame(rows: Any) -> pd.DataFrame:
    """The rows of any accepted predict body as a frame of FEATURES (NaN where missing)."""
    if isinstance(rows, SplitRows):
        return columns_frame(rows.dataframe_split.columns, rows.dataframe_split.data)
    if isinstance(rows, RecordRows):
        return records_frame(rows.dataframe_records)
    if isinstance(rows, (InvocationInstances, InvocationInputs)):
        tensor = rows.instances if isinstance(rows, InvocationInstances) else rows.inputs
        if isinstance(tensor, dict):  # columns
            lengths = {len(values) for values in tensor.values()}
            if len(lengths) > 1:
                raise BadRequest(
                    "the columns have different lengths: " + ", ".join(f"{k} {len(v)}" for k, v in tensor.items()),
                    error="Invalid features",
                )
            return columns_frame(list(tensor), list(zip(*tensor.values(), strict=True)))
        if isinstance(tensor[0], dict):
            return records_frame(tensor)
        return features_frame(tensor)  # rows of the 13 values in FEATURES' order
    return records_frame([rows] if isinstance(rows, dict) else rows)


@bp.before_request
def allow_large_models():
    """Let a pushed pipeline be larger than MLOPS_MAX_BODY_BYTES."""
    if request.endpoint == f"{bp.name}.install_model":
        request.max_content_length = max(MAX_MODEL_BYTES, current_settings().max_body_bytes)


@bp.operation(
    "/root/ml/model",
    "GET",
    responses={
        200: Answer("The served model and its trained pipeline (skops, base64)", ServedModel),
        409: "No trained model",
    },
    examples=SERVED_MODEL_EXAMPLES,
)
def served_model():
    """Give the served model's trained pipeline, for the tracking service to register it."""
    with dataset_engine().connect() as connection:
        model, pipeline_bytes = read_served_pipeline(connection)
    return {"model": describe_model(model), "format": "skops", "pipeline": base64.b64encode(pipeline_bytes).decode()}


@bp.operation(
    "/root/ml/model",
    "PUT",
    body=InstallModel,
    responses={
        200: Answer("The pushed version is served (every worker swaps to it on its next request)", ModelInstalled),
        400: "Invalid request, or the pipeline is not one of the catalogue's",
    },
    examples=INSTALL_MODEL_EXAMPLES,
)
def install_model(body: InstallModel):
    """Serve a registered model version's pipeline, pushed by the tracking service (the champion)."""
    try:
        pipeline_bytes = base64.b64decode(body.pipeline, validate=True)
    except ValueError:  # binascii.Error, or a str with characters outside ASCII
        raise BadRequest("pipeline: not base64", error="Invalid model") from None
    pushed = RegisteredPipeline(pipeline_bytes=pipeline_bytes, **body.model_dump(exclude={"pipeline"}))
    model, changed = install_champion(dataset_engine(), service_resources(PipelineCache), pushed)
    message = "Model installed" if changed else "Model already served"
    return {"message": message, "model": describe_model(model)}


def create_app(settings: Settings | None = None) -> Flask:
    """Build the ML service's app."""
    settings = settings or Settings.from_env()
    return create_service_app(
        "ml",
        "ML model",
        settings,
        [bp, protocol],
        ready_checks=READY_CHECKS,
        resources=lambda state: PipelineCache(
            kept=KeptPipeline.under(settings.data_dir, settings.dataset_db),
            on_loaded=loaded_model_gauge(state.metrics),
            signal=ChangeSignal.beside(settings.data_dir, settings.dataset_db),
            requests_queued=requests_queued,
        ),
    )


def warm_up(app: Flask) -> None:
    """Start loading the served model into this worker as it boots (gunicorn_config calls this):
    from the database, or from the copy kept beside the data while the database is down."""
    state = app.extensions[EXTENSION]
    state.resources.warm_up(lambda: model_readiness(state.engine, state.resources))
