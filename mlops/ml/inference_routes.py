"""The ML service's Open Inference Protocol (V2) routes: server and model metadata, health and
readiness, inference (the protocol's logic: inference_protocol.py)."""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from flask import Response, request

from mlops.kernel.errors import UnsupportedMediaType
from mlops.kernel.web.operations import JSON, Answer, ApiBlueprint
from mlops.kernel.web.parsing import request_body, validate
from mlops.kernel.web.state import dataset_engine, service_resources, service_state
from mlops.ml import inference_protocol as v2
from mlops.ml.examples import (
    V2_INFER_EXAMPLES,
    V2_LIVE_EXAMPLES,
    V2_MODEL_EXAMPLES,
    V2_MODEL_READY_EXAMPLES,
    V2_READY_EXAMPLES,
    V2_SERVER_EXAMPLES,
    V2_VERSION_EXAMPLES,
    V2_VERSION_INFER_EXAMPLES,
    V2_VERSION_READY_EXAMPLES,
)
from mlops.ml.metrics import counted_inference
from mlops.ml.pipeline import predict_with, served_pipeline
from mlops.ml.pipeline_cache import PipelineCache
from mlops.ml.protocol_schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ProtocolError,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from mlops.ml.readiness import model_readiness

# The Open Inference Protocol's routes, apart so that their errors take the protocol's shape.
protocol = ApiBlueprint("inference_protocol", __name__, error_model=ProtocolError)


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


@protocol.operation(
    "/v2",
    "GET",
    responses={200: Answer("Server name, version and protocol extensions", ServerMetadata)},
    examples=V2_SERVER_EXAMPLES,
)
def server_metadata():
    """Describe this inference server (Open Inference Protocol)."""
    return {"name": "mlops-ml", "version": metadata.version("mlops-microservices"), "extensions": v2.EXTENSIONS}


@protocol.operation(
    "/v2/health/live", "GET", responses={200: Answer("The server is alive", ServerLive)}, examples=V2_LIVE_EXAMPLES
)
def server_live():
    """Say the server is alive (Open Inference Protocol liveness)."""
    return {"live": True}


@protocol.operation(
    "/v2/health/ready",
    "GET",
    responses={
        200: Answer(
            "A trained model is loaded in this worker (`degraded` says why if it answers without the database)",
            ServerReady,
        ),
        503: "No trained model loaded: the error says what is missing",
    },
    examples=V2_READY_EXAMPLES,
)
def server_ready():
    """Say whether the server can infer: a trained model is loaded in the worker that answers (Open Inference
    Protocol readiness)."""
    answer, status = _model_ready(None)
    del answer["name"]
    return answer, status


def _model_ready(version: str | None) -> tuple[dict[str, Any], int]:
    """Whether this worker can infer with the served model (of this version): 200 (saying
    `degraded` if it does so without the database), or 503 saying what is missing."""
    readiness = model_readiness(dataset_engine(), service_resources(PipelineCache))
    if readiness.model is None:
        return {"name": v2.MODEL_NAME, "ready": False, "error": readiness.detail}, 503
    v2.check_model(v2.MODEL_NAME, version, readiness.model)
    answer: dict[str, Any] = {"name": v2.MODEL_NAME, "ready": True}
    if readiness.degraded is not None:
        answer["degraded"] = readiness.degraded
    return answer, 200


MODEL_ERRORS = {404: "Unknown model or version", 409: "No trained model"}


@protocol.operation(
    "/v2/models/<model_name>",
    "GET",
    responses={200: Answer("The model's inputs, outputs and versions", ModelMetadata), **MODEL_ERRORS},
    examples=V2_MODEL_EXAMPLES,
)
def model_metadata(model_name: str):
    """Describe the served model: its input tensor, its outputs and its version."""
    return _model_metadata(model_name, None)


@protocol.operation(
    "/v2/models/<model_name>/versions/<version>",
    "GET",
    responses={200: Answer("The model's inputs, outputs and versions", ModelMetadata), **MODEL_ERRORS},
    examples=V2_VERSION_EXAMPLES,
)
def model_version_metadata(model_name: str, version: str):
    """Describe one version of the served model (only the served version is known)."""
    return _model_metadata(model_name, version)


def _model_metadata(model_name: str, version: str | None) -> dict[str, Any]:
    v2.check_model(model_name, version, None)
    model, compiled = served_pipeline(dataset_engine(), service_resources(PipelineCache))
    v2.check_model(model_name, version, model)
    return v2.model_metadata(model, compiled)


@protocol.operation(
    "/v2/models/<model_name>/ready",
    "GET",
    responses={200: Answer("Ready", ModelReady), 404: "Unknown model", 503: "No trained model"},
    examples=V2_MODEL_READY_EXAMPLES,
)
def model_ready(model_name: str):
    """Say whether the model can predict."""
    v2.check_model(model_name, None, None)
    return _model_ready(None)


@protocol.operation(
    "/v2/models/<model_name>/versions/<version>/ready",
    "GET",
    responses={200: Answer("Ready", ModelReady), 404: "Unknown model or version", 503: "No trained model"},
    examples=V2_VERSION_READY_EXAMPLES,
)
def model_version_ready(model_name: str, version: str):
    """Say whether this version of the model can predict (it must be the served version)."""
    v2.check_model(model_name, None, None)
    return _model_ready(version)


INFER_RESPONSES = {
    200: Answer(
        "The outputs predict (classes) and predict_proba (class probabilities), as JSON or binary tensor data "
        "(its JSON header first, Inference-Header-Content-Length bytes long)",
        InferenceResponse,
        (JSON, "application/octet-stream"),
    ),
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
    examples=V2_INFER_EXAMPLES,
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
    examples=V2_VERSION_INFER_EXAMPLES,
)
def infer_version(model_name: str, version: str, body: InferenceRequest):
    """Predict with this version of the model (it must be the served version)."""
    return _infer(model_name, version, body)


def _infer(model_name: str, version: str | None, body: InferenceRequest) -> Response:
    v2.check_model(model_name, version, None)
    with counted_inference(service_state().metrics, service_resources(PipelineCache)) as inference:
        rows = v2.request_frame(body, body._binary)
        model, compiled, degraded = service_resources(PipelineCache).serving_pipeline(dataset_engine())
        v2.check_model(model_name, version, model)
        prediction = inference.answered(predict_with(model, compiled, rows, degraded=degraded))
        answer = v2.infer_answer(body, prediction, compiled)
    data, headers = answer.body()
    return Response(data, headers=headers)
