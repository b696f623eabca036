"""Deploying a run's best model: its model type and hyperparameters, sent to the ML service."""

from __future__ import annotations

import math
import re
from typing import Any

from mlops.kernel.clients import ServiceReply, call_service
from mlops.kernel.config import Settings
from mlops.kernel.errors import Conflict, UpstreamError
from mlops.tracking.mlflow import MlflowBackend, RunRecord, reads
from mlops.tracking.mlflow.naming import MODEL_PREFIX, MODEL_TYPE_TAG, unprefixed

ML_SERVICE = "ML service"
SET_MODEL_PATH = "/root/ml/set_model"
_INTEGER = re.compile(r"[+-]?\d+")


def parse_param_value(text: str) -> Any:
    """A logged param's text back to the value it was: None, bool, int, float, else the text."""
    if text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    # "nan" / "inf" are not JSON numbers; such a text stays text.
    return number if math.isfinite(number) else text


def model_of_run(run: RunRecord) -> dict[str, Any]:
    """The {model_name, hyperparameters} body that deploys this run's best model."""
    if run.status != "FINISHED" or MODEL_TYPE_TAG not in run.tags:
        raise Conflict(
            f"Run {run.run_id} is {run.status} and has no model to deploy: deploy a FINISHED optimization run "
            "(GET /root/tracking/runs?experiment_id=... lists them)",
            error="Run has no model",
        )
    hyperparameters = {key: parse_param_value(value) for key, value in unprefixed(run.params, MODEL_PREFIX).items()}
    return {"model_name": run.tags[MODEL_TYPE_TAG], "hyperparameters": hyperparameters}


def deploy_run(backend: MlflowBackend, settings: Settings, run_id: str) -> ServiceReply:
    """Send the run's model to the ML service's set_model and return its answer.

    The ML service's 2xx/4xx answers and a 503 (its database down) are relayed as they are; a
    refused token or any other 5xx is a fault between the services, a 502 here.
    """
    body = model_of_run(reads.get_run(backend, run_id))
    return call_ml(settings, "POST", SET_MODEL_PATH, body, action="set the model")


def call_ml(settings: Settings, method: str, path: str, body: Any = None, *, action: str) -> ServiceReply:
    """One request to the ML service; its 2xx/4xx/503 answers are returned, anything else is a 502
    naming the action (or a 503 if it cannot be reached)."""
    reply = call_service(
        ML_SERVICE,
        method,
        settings.ml_url + path,
        json=body,
        timeout=settings.request_timeout,
        token=settings.api_token,
    )
    if not isinstance(reply.body, dict):
        raise UpstreamError(
            f"The {ML_SERVICE} answered {reply.status} with a JSON {type(reply.body).__name__}, not an object",
            error=f"{ML_SERVICE} error",
        )
    if reply.status in (401, 403):  # not the caller's fault: the services' tokens differ
        raise UpstreamError(
            f"The {ML_SERVICE} refused the tracking service's token (HTTP {reply.status}): give both "
            "services the same MLOPS_API_TOKEN",
            error=f"{ML_SERVICE} error",
        )
    if reply.status >= 500 and reply.status != 503:
        raise UpstreamError(
            f"The {ML_SERVICE} failed to {action} (HTTP {reply.status}): {reply.body.get('message', reply.body)}",
            error=f"{ML_SERVICE} error",
        )
    return reply
