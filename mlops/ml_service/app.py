"""The ML service's HTTP API (port 5001)."""

from __future__ import annotations

import base64
import json
from importlib import metadata
from typing import Any

import pandas as pd
from flask import Flask, Response, request

from mlops.kernel.config import Settings
from mlops.kernel.errors import BadRequest, Conflict, UnsupportedMediaType
from mlops.kernel.web.factory import create_service_app
from mlops.kernel.web.operations import ApiBlueprint
from mlops.kernel.web.parsing import request_body, validate
from mlops.kernel.web.state import current_settings, dataset_engine, service_resources, service_state
from mlops.ml_service import inference_protocol as v2
from mlops.ml_service.change_signal import ChangeSignal
from mlops.ml_service.deployment import DeployedModel, RegisteredPipeline, read_deployed, read_served_pipeline
from mlops.ml_service.metrics import counted_inference, record_set_predicted
from mlops.ml_service.pipeline import (
    columns_frame,
    evaluate,
    features_frame,
    install_champion,
    predict,
    predict_with,
    records_frame,
    served_pipeline,
    set_model,
    train,
)
from mlops.ml_service.pipeline_cache import PipelineCache
from mlops.ml_service.schemas import (
    MAX_MODEL_BYTES,
    InferenceRequest,
    InstallModel,
    InvocationInputs,
    InvocationInstances,
    InvocationRows,
    PredictRows,
    RecordRows,
    SetModel,
    SplitRows,
    UseModel,
)

bp = ApiBlueprint("ml", __name__)
# The Open Inference Protocol's routes, apart so that their errors take the protocol's shape.
protocol = ApiBlueprint("inference_protocol", __name__)


def pipeline_cache() -> PipelineCache:
    """Return this app's cache of the trained pipeline."""
    return service_resources(PipelineCache)


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


@bp.operation("/root/ml", "GET", responses={200: "The component, and the deployed model (null if none)"})
def status():
    """Name the component and say which model is deployed and when it was trained."""
    with dataset_engine().connect() as connection:
        model = read_deployed(connection)
    return {"name": "ml_model", "message": "ML model", "model": describe_model(model)}


@bp.operation(
    "/root/ml/set_model",
    "POST",
    body=SetModel,
    responses={200: "Model deployed (untrained)", 400: "Unknown model or invalid hyperparameter"},
)
def deploy(body: SetModel):
    """Deploy a model with its hyperparameters, replacing the current one; it must be trained next."""
    set_model(dataset_engine(), pipeline_cache(), body.model_name, body.hyperparameters)
    return {"message": "Model successfully uploaded"}


@bp.operation(
    "/root/ml",
    "POST",
    body=UseModel,
    responses={200: "Score on the set", 409: "No model set, model not trained or set not loaded"},
)
def use(body: UseModel):
    """Train the deployed model on the training set, or evaluate it on testing/production; store the predictions."""
    if body.dataset == "training":
        score = train(dataset_engine(), pipeline_cache())
    else:
        score = evaluate(dataset_engine(), pipeline_cache(), body.dataset)
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
        200: "Predicted classes (and probabilities); `degraded` says why, when the model answered while the dataset DB was down",
        **PREDICT_ERRORS,
    },
)
def predict_rows(body: PredictRows):
    """Predict the class of one or many rows of features with the trained model."""
    with counted_inference(service_state().metrics, pipeline_cache()) as inference:
        prediction = inference.answered(predict(dataset_engine(), pipeline_cache(), rows_frame(body.root)))
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
        200: 'The predicted classes, as MLflow\'s scoring server answers: {"predictions": [...]}',
        **PREDICT_ERRORS,
    },
)
def invocations(body: InvocationRows):
    """Predict rows sent in any input format of MLflow's scoring server (`mlflow models serve`)."""
    with counted_inference(service_state().metrics, pipeline_cache()) as inference:
        prediction = inference.answered(predict(dataset_engine(), pipeline_cache(), rows_frame(body.root)))
    return {"predictions": prediction.predicted}


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


# --- Open Inference Protocol (V2) ---------------------------------------------------------------


@protocol.after_request
def protocol_error_shape(response: Response) -> Response:
    """Answer errors as the protocol says, {"error": "..."}: our error title and message in one string."""
    if response.status_code >= 400 and response.is_json:
        answer = response.get_json(silent=True)
        if isinstance(answer, dict) and "message" in answer:
            response.set_data(json.dumps({"error": f"{answer['error']}: {answer['message']}"}))
    return response


def read_inference_request(model: type[InferenceRequest]) -> InferenceRequest:
    """Read an inference request: JSON, or a JSON header and binary tensor data (Inference-Header-Content-Length)."""
    if request.mimetype not in ("", "application/json", "application/octet-stream"):
        raise UnsupportedMediaType(
            "Send the inference request as JSON (Content-Type: application/json), or a JSON header and "
            f"binary tensor data (Content-Type: application/octet-stream, {v2.HEADER_LENGTH})"
        )
    body = v2.split_infer_body(request_body(), request.headers.get(v2.HEADER_LENGTH))
    parsed = validate(model, body.header)
    parsed._binary = body.binary
    return parsed


@protocol.operation("/v2", "GET", responses={200: "Server name, version and protocol extensions"})
def server_metadata():
    """Describe this inference server (Open Inference Protocol)."""
    return {"name": "mlops-ml", "version": metadata.version("mlops-microservices"), "extensions": v2.EXTENSIONS}


@protocol.operation("/v2/health/live", "GET", responses={200: "The server is alive"})
def server_live():
    """Say the server is alive (Open Inference Protocol liveness)."""
    return {"live": True}


@protocol.operation(
    "/v2/health/ready",
    "GET",
    responses={200: "The model is ready", 503: "No trained model, or its store is unavailable"},
)
def server_ready():
    """Say whether the server can predict: a trained model is loaded (Open Inference Protocol readiness)."""
    answer, status = _model_ready(None)
    del answer["name"]
    return answer, status


def _model_ready(version: str | None) -> tuple[dict[str, Any], int]:
    """Whether the served model (of this version) can predict: 200, or 503 saying why not."""
    try:
        model, _ = served_pipeline(dataset_engine(), pipeline_cache())
    except Conflict as error:
        return {"name": v2.MODEL_NAME, "ready": False, "error": f"{error.error}: {error.message}"}, 503
    v2.check_model(v2.MODEL_NAME, version, model)
    return {"name": v2.MODEL_NAME, "ready": True}, 200


MODEL_ERRORS = {404: "Unknown model or version", 409: "No trained model"}


@protocol.operation(
    "/v2/models/<model_name>", "GET", responses={200: "The model's inputs, outputs and versions", **MODEL_ERRORS}
)
def model_metadata(model_name: str):
    """Describe the served model: its input tensor, its outputs and its version."""
    return _model_metadata(model_name, None)


@protocol.operation(
    "/v2/models/<model_name>/versions/<version>",
    "GET",
    responses={200: "The model's inputs, outputs and versions", **MODEL_ERRORS},
)
def model_version_metadata(model_name: str, version: str):
    """Describe one version of the served model (only the served version is known)."""
    return _model_metadata(model_name, version)


def _model_metadata(model_name: str, version: str | None) -> dict[str, Any]:
    v2.check_model(model_name, version, None)
    model, compiled = served_pipeline(dataset_engine(), pipeline_cache())
    v2.check_model(model_name, version, model)
    return v2.model_metadata(model, compiled)


@protocol.operation(
    "/v2/models/<model_name>/ready", "GET", responses={200: "Ready", 404: "Unknown model", 503: "No trained model"}
)
def model_ready(model_name: str):
    """Say whether the model can predict."""
    v2.check_model(model_name, None, None)
    return _model_ready(None)


@protocol.operation(
    "/v2/models/<model_name>/versions/<version>/ready",
    "GET",
    responses={200: "Ready", 404: "Unknown model or version", 503: "No trained model"},
)
def model_version_ready(model_name: str, version: str):
    """Say whether this version of the model can predict (it must be the served version)."""
    v2.check_model(model_name, None, None)
    return _model_ready(version)


INFER_RESPONSES = {
    200: "The outputs predict (classes) and predict_proba (class probabilities), as JSON or binary tensor data",
    400: "Wrong tensor, features or values",
    404: "Unknown model or version",
    409: "No trained model",
    413: "Body over MLOPS_MAX_BODY_BYTES",
    415: "Neither JSON nor binary tensor data",
}


@protocol.operation(
    "/v2/models/<model_name>/infer",
    "POST",
    body=InferenceRequest,
    reader=read_inference_request,
    responses=INFER_RESPONSES,
)
def infer(model_name: str, body: InferenceRequest):
    """Predict an [n, 13] FP64 tensor of features (or one tensor per feature, content_type "pd")."""
    return _infer(model_name, None, body)


@protocol.operation(
    "/v2/models/<model_name>/versions/<version>/infer",
    "POST",
    body=InferenceRequest,
    reader=read_inference_request,
    responses=INFER_RESPONSES,
)
def infer_version(model_name: str, version: str, body: InferenceRequest):
    """Predict with this version of the model (it must be the served version)."""
    return _infer(model_name, version, body)


def _infer(model_name: str, version: str | None, body: InferenceRequest) -> Response:
    v2.check_model(model_name, version, None)
    with counted_inference(service_state().metrics, pipeline_cache()) as inference:
        rows = v2.request_frame(body, body._binary)
        model, compiled, degraded = pipeline_cache().serving_pipeline(dataset_engine())
        v2.check_model(model_name, version, model)
        prediction = inference.answered(predict_with(model, compiled, rows, degraded=degraded))
        answer = v2.infer_answer(body, prediction, compiled)
    data, headers = answer.body()
    return Response(data, headers=headers)


@bp.before_request
def allow_large_models():
    """Let a pushed pipeline be larger than MLOPS_MAX_BODY_BYTES."""
    if request.endpoint == f"{bp.name}.install_model":
        request.max_content_length = max(MAX_MODEL_BYTES, current_settings().max_body_bytes)


@bp.operation(
    "/root/ml/model",
    "GET",
    responses={200: "The served model and its trained pipeline (skops, base64)", 409: "No trained model"},
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
        200: "The pushed version is served (every worker swaps to it on its next request)",
        400: "Invalid request, or the pipeline is not one of the catalogue's",
    },
)
def install_model(body: InstallModel):
    """Serve a registered model version's pipeline, pushed by the tracking service (the champion)."""
    try:
        pipeline_bytes = base64.b64decode(body.pipeline, validate=True)
    except ValueError:  # binascii.Error, or a str with characters outside ASCII
        raise BadRequest("pipeline: not base64", error="Invalid model") from None
    pushed = RegisteredPipeline(pipeline_bytes=pipeline_bytes, **body.model_dump(exclude={"pipeline"}))
    model, changed = install_champion(dataset_engine(), pipeline_cache(), pushed)
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
        resources=lambda state: PipelineCache(signal=ChangeSignal.beside(settings.data_dir, settings.dataset_db)),
    )
