"""Keeping the registry and the ML service in step: reconcile (repair an interrupted move, push
the alias's version), adoption of a model trained through the ML service, the background sync."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from dataclasses import dataclass
from typing import Any

from mlops.kernel.db import FEATURES
from mlops.kernel.errors import Unavailable, UpstreamError
from mlops.kernel.pipelines import PipelineRefused, load_pipeline
from mlops.tracking.champion.loop import (
    ADOPTION_EXPERIMENT_ID,
    ADOPTION_EXPERIMENT_TYPE,
    ADOPTION_RUN_NAME,
    ML_MODEL_PATH,
    REGISTERED_MODEL,
    Loop,
    ModelSpec,
    move,
    push,
    served_model,
    serves,
    unexpected_reply,
)
from mlops.tracking.deploy import ML_SERVICE, call_ml
from mlops.tracking.mlflow import registry, writes
from mlops.tracking.mlflow.naming import DATA_PREFIX, EXPERIMENT_TYPE_TAG, MODEL_PREFIX, MODEL_TYPE_TAG
from mlops.tracking.mlflow.registry import ModelVersionRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sync:
    """The champion and the served model after a reconcile."""

    champion: ModelVersionRecord | None
    served: dict[str, Any] | None
    action: str  # none, alias restored, pushed, adopted, waiting for adoption, waiting for training


def reconcile(loop: Loop, *, adopt: bool = False) -> Sync:
    """Bring the alias in line with the history and the ML service in line with the alias; with
    `adopt`, first register a model trained through the ML service and make it the champion."""
    with loop.lock():
        return _reconcile(loop, adopt=adopt)


def _reconcile(loop: Loop, *, adopt: bool) -> Sync:
    backend = loop.backend
    events = registry.history(backend, REGISTERED_MODEL)
    champion = registry.get_champion(backend, REGISTERED_MODEL)
    action = "none"
    if events and (champion is None or champion.version != events[-1]["champion"]) and events[-1]["champion"]:
        # A move was recorded but the crash came before the alias followed: complete it.
        version = registry.get_version(backend, REGISTERED_MODEL, events[-1]["champion"])
        registry.point_champion(backend, REGISTERED_MODEL, version.version, {})
        log.warning("champion alias restored to version %s (its move was interrupted)", version.version)
        champion, action = registry.get_version(backend, REGISTERED_MODEL, version.version), "alias restored"
    served = served_model(loop)
    if served is not None and served.get("trained_at") is not None and served.get("registered_version") is None:
        if not adopt:  # a person's newer work: adopted by the next move, never overwritten
            return Sync(champion, served, "waiting for adoption")
        champion = _adopt(loop, served, champion)
        return Sync(champion, served_model(loop), "adopted")
    if served is not None and served.get("trained_at") is None:
        return Sync(champion, served, "waiting for training")
    if champion is not None and not serves(served, champion):
        served = push(loop, champion)
        action = "pushed"
    return Sync(champion, served, action)


def _adopt(loop: Loop, served: dict[str, Any], champion: ModelVersionRecord | None) -> ModelVersionRecord:
    """Register the model trained through the ML service as a new version and make it the champion."""
    import pandas as pd

    reply = call_ml(loop.settings, "GET", ML_MODEL_PATH, action="give its trained model")
    if reply.status != 200:
        raise unexpected_reply(reply, "give its trained model")
    try:
        pipeline_bytes = base64.b64decode(reply.body["pipeline"], validate=True)
        pipeline = load_pipeline(pipeline_bytes)
    except (KeyError, binascii.Error, PipelineRefused) as error:
        raise UpstreamError(
            f"The {ML_SERVICE} gave a model that cannot be registered: {error}", error=f"{ML_SERVICE} error"
        ) from None
    model = reply.body["model"]
    if model["version"] != served["version"]:  # trained again meanwhile: the next reconcile adopts that one
        return champion
    backend = loop.backend
    name, hyperparameters = model["model_name"], model["hyperparameters"]
    run_id = writes.start_run(
        backend,
        ADOPTION_EXPERIMENT_ID,
        ADOPTION_RUN_NAME.format(model=name),
        {
            MODEL_TYPE_TAG: name,
            EXPERIMENT_TYPE_TAG: ADOPTION_EXPERIMENT_TYPE,
            "mlops.ml_service_version": str(model["version"]),
        },
    )
    try:
        params = {f"{MODEL_PREFIX}{key}": str(value) for key, value in hyperparameters.items()}
        params[f"{DATA_PREFIX}training_dataset_id"] = str(model.get("training_dataset_id"))
        metrics = (
            {"model_training_accuracy": model["training_accuracy"]}
            if model.get("training_accuracy") is not None
            else {}
        )
        writes.log_params_and_metrics(backend, run_id, params, metrics)
        sample = pd.DataFrame([[0.0] * len(FEATURES)], columns=list(FEATURES))
        version = writes.log_model(
            backend,
            ADOPTION_EXPERIMENT_ID,
            run_id,
            pipeline,
            REGISTERED_MODEL,
            features=sample,
            artifact_name="pipeline",
            version_tags=ModelSpec(
                name, hyperparameters, model.get("training_dataset_id"), model.get("training_accuracy")
            ).as_tags(),
        )
    except BaseException as error:
        writes.end_run(backend, run_id, error)
        raise
    writes.end_run(backend, run_id)
    registered = registry.get_version(backend, REGISTERED_MODEL, version)
    reason = (
        f"{name} trained through POST /root/ml (ML service version {model['version']}) is what the ML service serves"
    )
    move(loop, registered, champion, action="adopted", by="ML service training", reason=reason, adopts=model["version"])
    return registry.get_version(backend, REGISTERED_MODEL, version)


def reconcile_or_log(loop: Loop) -> None:
    """Reconcile (and adopt) before a move; an ML service that does not answer is fine here (the move says so)."""
    try:
        _reconcile(loop, adopt=True)
    except (Unavailable, UpstreamError) as error:
        log.warning("could not reconcile before moving the champion: %s", error.message)


def start_sync(loop: Loop) -> threading.Thread | None:
    """Reconcile now and every MLOPS_CHAMPION_SYNC_SECONDS in a daemon thread (0: never)."""
    interval = loop.settings.champion_sync_seconds
    if interval <= 0:
        return None

    def run() -> None:
        last_problem = None
        while True:
            try:
                sync = reconcile(loop)
                if sync.action in ("alias restored", "pushed"):
                    log.info(
                        "champion sync: %s (champion %s)", sync.action, sync.champion.version if sync.champion else None
                    )
                last_problem = None
            except Exception as error:  # logged once per distinct problem; the next round retries
                problem = getattr(error, "message", None) or str(error)
                if problem != last_problem:
                    log.warning("champion sync: %s", problem)
                last_problem = problem
            stop.wait(interval)

    stop = threading.Event()
    thread = threading.Thread(target=run, name="champion-sync", daemon=True)
    thread.start()
    return thread
