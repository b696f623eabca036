"""The champion: which registered version the ML service serves, how it moves (promotion,
rollback, adoption of a model trained through the ML service) and how the registry and the ML
service are kept in step.

Source of truth: MLflow. The champion's history (events on the registered model) is written
first, then the `champion` alias follows it, then the ML service is given the alias's version
(PUT /root/ml/model, which stores the pipeline with its registered version in the dataset DB; every
ML worker swaps to it on its next request). A crash between any two steps is repaired by
`reconcile`, which tracking runs when it starts, every MLOPS_CHAMPION_SYNC_SECONDS, and before
every request that moves the champion: the alias is moved to the latest event's version, and the
ML service is given the alias's version if it serves another one.

The one exception is a model trained through the ML service itself (set_model or setting, then
POST /root/ml {"dataset": "training"}): that is a person's decision made on the ML service, so it
is never overwritten; the next move (retraining, promotion, rollback) first registers it as a new
version and makes it the champion ("adopted"). An untrained model set on the ML service is left
alone too (its training is next).

Moves are serialized by a file lock in the data dir (every tracking worker of one host).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, or_, select

from mlops.kernel.config import Settings
from mlops.kernel.db import FEATURES, model_deployments, prediction_batches
from mlops.kernel.errors import Conflict, Unavailable, UpstreamError
from mlops.kernel.pipelines import PipelineRefused, load_pipeline
from mlops.tracking.deploy import ML_SERVICE, call_ml
from mlops.tracking.mlflow import MlflowBackend, registry, writes
from mlops.tracking.mlflow.naming import DATA_PREFIX, EXPERIMENT_TYPE_TAG, MODEL_PREFIX, MODEL_TYPE_TAG
from mlops.tracking.mlflow.registry import ModelVersionRecord
from mlops.tracking.mlflow.store import file_lock

log = logging.getLogger(__name__)

# The registered model whose `champion` alias the ML service serves (the V2 protocol's model name too).
REGISTERED_MODEL = "wine"
ML_STATUS_PATH, ML_MODEL_PATH = "/root/ml", "/root/ml/model"
# What each registered version carries, so that it can be pushed without loading it first.
SPEC_TAGS = ("mlops.model_name", "mlops.hyperparameters", "mlops.training_dataset_id", "mlops.training_accuracy")
# Models trained through the ML service are logged in MLflow's Default experiment (id 0), which
# the experiment listing leaves out, so the walkthrough's answers do not change.
ADOPTION_EXPERIMENT_ID = "0"
ADOPTION_RUN_NAME = "{model} trained by the ML service"
ADOPTION_EXPERIMENT_TYPE = "MLServiceTraining"
# What moved the champion: the gate, a promotion request, adoption of an ML service training, a rollback.
FORWARD_ACTIONS = ("promoted", "requested", "adopted")
ANY_CHAMPION = object()
ROLLBACK_HINT = 'POST /root/tracking/model_management {"request_information": "rollback"}'


@dataclass(frozen=True)
class Loop:
    """What the champion's functions work with: MLflow, the dataset DB and the settings."""

    backend: MlflowBackend
    engine: Engine
    settings: Settings

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialize the champion's moves among this host's tracking workers."""
        path = self.settings.data_dir.resolve() / "champion.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path):
            yield


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def spec_tags(
    model_name: str, hyperparameters: dict[str, Any], training_dataset_id: int | None, accuracy: float | None
) -> dict[str, str]:
    """The tags that let a registered version be pushed to the ML service as it is."""
    return {
        "mlops.model_name": model_name,
        "mlops.hyperparameters": json.dumps(hyperparameters),
        "mlops.training_dataset_id": "" if training_dataset_id is None else str(training_dataset_id),
        "mlops.training_accuracy": "" if accuracy is None else repr(accuracy),
    }


# --- what the ML service serves ---------------------------------------------------------------


def served_model(loop: Loop) -> dict[str, Any] | None:
    """The ML service's deployed model as GET /root/ml shows it (None if none is set)."""
    reply = call_ml(loop.settings, "GET", ML_STATUS_PATH, action="tell its model")
    if reply.status != 200:
        raise _unexpected(reply, "tell its model")
    return reply.body.get("model")


def serves(served: dict[str, Any] | None, version: ModelVersionRecord | None) -> bool:
    """Whether the ML service's model is this registered version."""
    if version is None or served is None or served.get("trained_at") is None:
        return False
    return (served.get("registered_model"), served.get("registered_version")) == (version.name, version.version)


def push(loop: Loop, version: ModelVersionRecord, *, adopts_version: int | None = None) -> dict[str, Any]:
    """Give the ML service a registered version's pipeline to serve; return its model as it now is."""
    tags = version.tags
    missing = [tag for tag in SPEC_TAGS if tag not in tags]
    if missing:
        raise Conflict(
            f"Version {version.version} of {version.name!r} was not registered by this service (no {missing[0]} "
            "tag) and cannot be served: promote a version logged by retraining or adopted from the ML service",
            error="Version not servable",
        )
    body = {
        "registered_model": version.name,
        "registered_version": version.version,
        "run_id": version.run_id,
        "model_name": tags["mlops.model_name"],
        "hyperparameters": json.loads(tags["mlops.hyperparameters"]),
        "training_dataset_id": int(tags["mlops.training_dataset_id"]) if tags["mlops.training_dataset_id"] else None,
        "training_accuracy": float(tags["mlops.training_accuracy"]) if tags["mlops.training_accuracy"] else None,
        "pipeline": base64.b64encode(registry.pipeline_bytes(loop.backend, version)).decode(),
        "adopts_version": adopts_version,
    }
    reply = call_ml(loop.settings, "PUT", ML_MODEL_PATH, body, action="serve the champion")
    if reply.status != 200:
        raise _unexpected(reply, "serve the champion")
    log.info("the ML service serves %s version %s (%s)", version.name, version.version, reply.body.get("message"))
    return reply.body["model"]


def _unexpected(reply, action: str) -> Exception:
    message = reply.body.get("message", reply.body) if isinstance(reply.body, dict) else reply.body
    if reply.status == 503:
        return Unavailable(
            f"The {ML_SERVICE} could not {action} right now: {message}", error=f"{ML_SERVICE} unavailable"
        )
    return UpstreamError(
        f"The {ML_SERVICE} refused to {action} (HTTP {reply.status}): {message}", error=f"{ML_SERVICE} error"
    )


# --- keeping the registry and the ML service in step --------------------------------------------


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
        raise _unexpected(reply, "give its trained model")
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
            version_tags=spec_tags(
                name, hyperparameters, model.get("training_dataset_id"), model.get("training_accuracy")
            ),
        )
    except BaseException as error:
        writes.end_run(backend, run_id, error)
        raise
    writes.end_run(backend, run_id)
    registered = registry.get_version(backend, REGISTERED_MODEL, version)
    reason = (
        f"{name} trained through POST /root/ml (ML service version {model['version']}) is what the ML service serves"
    )
    _move(
        loop, registered, champion, action="adopted", by="ML service training", reason=reason, adopts=model["version"]
    )
    return registry.get_version(backend, REGISTERED_MODEL, version)


# --- moving the champion ------------------------------------------------------------------------


def _move(
    loop: Loop,
    version: ModelVersionRecord,
    current: ModelVersionRecord | None,
    *,
    action: str,
    by: str,
    reason: str,
    details: dict[str, Any] | None = None,
    adopts: int | None = None,
) -> dict[str, Any]:
    """Record the move, point the alias, push the version to the ML service (lock held)."""
    at = now_text()
    event = registry.record_event(
        loop.backend,
        REGISTERED_MODEL,
        {
            "action": action,
            "champion": version.version,
            "previous": current.version if current else None,
            "at": at,
            "by": by,
            "reason": reason[:1000],
            "run_id": version.run_id,
            **(details or {}),
        },
    )
    tags = {
        "mlops.champion_since": at,
        "mlops.promoted_by": by,
        "mlops.promotion_reason": reason[:5000],
        "mlops.promotion_event": str(event["sequence"]),
    }
    registry.point_champion(loop.backend, REGISTERED_MODEL, version.version, tags)
    if current is not None and current.version != version.version:
        registry.tag_version(loop.backend, REGISTERED_MODEL, current.version, {"mlops.champion_until": at})
    try:
        push(loop, version, adopts_version=adopts)
    except (Unavailable, UpstreamError) as error:
        raise Unavailable(
            f"Version {version.version} is the champion in the registry (event {event['sequence']}), but the "
            f"{ML_SERVICE} did not confirm serving it ({error.message}). The tracking service gives it to the "
            f"{ML_SERVICE} as soon as it answers (every {loop.settings.champion_sync_seconds:g} s); the ML "
            "service keeps serving the previous version until then",
            error="Champion not served yet",
        ) from error
    return event


def record_kept(
    loop: Loop, challenger: ModelVersionRecord, current: ModelVersionRecord | None, reason: str, details: dict[str, Any]
) -> dict[str, Any]:
    """Record a gate that kept the champion (the alias does not move)."""
    return registry.record_event(
        loop.backend,
        REGISTERED_MODEL,
        {
            "action": "kept",
            "champion": current.version if current else None,
            "previous": current.version if current else None,
            "challenger": challenger.version,
            "at": now_text(),
            "by": "retraining",
            "reason": reason[:1000],
            "run_id": challenger.run_id,
            **details,
        },
    )


def promote(
    loop: Loop,
    version: str,
    *,
    action: str,
    by: str,
    reason: str,
    details: dict[str, Any] | None = None,
    compared_with: str | None | object = ANY_CHAMPION,
) -> tuple[dict[str, Any], ModelVersionRecord | None]:
    """Make a registered version the champion; return the event and the champion it replaced.

    `compared_with` is the champion a gate compared the version against: if another move
    happened meanwhile, nothing moves and the caller is told to start again.
    """
    with loop.lock():
        _reconcile_or_log(loop)
        target = registry.get_version(loop.backend, REGISTERED_MODEL, version)
        current = registry.get_champion(loop.backend, REGISTERED_MODEL)
        if compared_with is not ANY_CHAMPION and (current.version if current else None) != compared_with:
            raise Conflict(
                f"The champion moved to version {current.version if current else None} while this request worked "
                f"(the gate compared against {compared_with}); version {version} stays a challenger: send the "
                "request again",
                error="Champion moved",
            )
        return _move(loop, target, current, action=action, by=by, reason=reason, details=details), current


def rollback(loop: Loop, *, by: str, reason: str) -> tuple[dict[str, Any], ModelVersionRecord]:
    """Move the champion back to the version that held it before; return the event and the version left."""
    with loop.lock():
        _reconcile_or_log(loop)
        current = registry.get_champion(loop.backend, REGISTERED_MODEL)
        if current is None:
            raise Conflict(
                "There is no champion to roll back: make one first (retraining, or set and train a model on the "
                "ML service), then promote another",
                error="No champion",
            )
        target = rollback_target(registry.history(loop.backend, REGISTERED_MODEL))
        if target is None:
            raise Conflict(
                f"Version {current.version} is the first champion: there is no earlier one to roll back to. "
                'Promote another version first (retraining, or {"request_information": "promotion", "version": ...})',
                error="No earlier champion",
            )
        version = registry.get_version(loop.backend, REGISTERED_MODEL, target)
        return _move(loop, version, current, action="rolled_back", by=by, reason=reason), current


def _reconcile_or_log(loop: Loop) -> None:
    """Reconcile (and adopt) before a move; an ML service that does not answer is fine here (the move says so)."""
    try:
        _reconcile(loop, adopt=True)
    except (Unavailable, UpstreamError) as error:
        log.warning("could not reconcile before moving the champion: %s", error.message)


def rollback_target(events: list[dict[str, Any]]) -> str | None:
    """The version rollback moves the champion to: replay the moves as a stack (a forward move
    pushes the champion it replaces, a rollback pops); None when nothing held it before."""
    stack: list[str] = []
    for event in events:
        if event["action"] in FORWARD_ACTIONS and event["previous"] and event["previous"] != event["champion"]:
            stack.append(event["previous"])
        elif event["action"] == "rolled_back" and stack:
            stack.pop()
    return stack[-1] if stack else None


# --- what was champion when, and what came from a run --------------------------------------------


def champion_report(loop: Loop) -> dict[str, Any]:
    """The champion, what the ML service serves, whether they agree, and the history (oldest first).

    `in_step` is true when the alias, the latest recorded move and the served model all name the
    same version; otherwise a move was interrupted or the ML service serves something else, and
    the next reconcile (at most MLOPS_CHAMPION_SYNC_SECONDS away) or move sets it right.
    """
    events = registry.history(loop.backend, REGISTERED_MODEL)
    champion = registry.get_champion(loop.backend, REGISTERED_MODEL)
    try:
        served: dict[str, Any] | str | None = served_model(loop)
    except (Unavailable, UpstreamError) as error:
        served = f"unknown: {error.message}"
    recorded = events[-1]["champion"] if events else None
    in_step = (
        champion is not None and recorded == champion.version and isinstance(served, dict) and serves(served, champion)
    )
    report = {
        "registered_model": REGISTERED_MODEL,
        "alias": registry.CHAMPION_ALIAS,
        "champion": _version_view(champion),
        "served": served,
        "in_step": in_step,
        "rollback_to": rollback_target(events),
        "history": events,
    }
    if isinstance(served, dict) and served.get("trained_at") and served.get("registered_version") is None:
        report["note"] = (
            "The ML service serves a model trained through it, not registered yet: the next retraining, "
            "promotion or rollback registers it as a new version and makes it the champion first"
        )
    return report


def _version_view(version: ModelVersionRecord | None) -> dict[str, Any] | None:
    if version is None:
        return None
    tags = version.tags
    return {
        "version": version.version,
        "run_id": version.run_id,
        "model_name": tags.get("mlops.model_name"),
        "hyperparameters": json.loads(tags["mlops.hyperparameters"]) if "mlops.hyperparameters" in tags else None,
        "champion_since": tags.get("mlops.champion_since"),
        "promoted_by": tags.get("mlops.promoted_by"),
    }


def run_lineage(loop: Loop, run_id: str) -> dict[str, Any]:
    """The registered versions a run logged, when each was champion, and the ML service's
    deployments and stored prediction batches made with them."""
    versions = registry.versions_of_run(loop.backend, run_id)
    served_versions = [v.version for v in versions if v.name == REGISTERED_MODEL]
    events = [
        e for e in registry.history(loop.backend, REGISTERED_MODEL)
        if e.get("champion") in served_versions or e.get("challenger") in served_versions or e.get("run_id") == run_id
    ]  # fmt: skip
    with loop.engine.connect() as connection:
        deployments, batches = (
            connection.execute(select(table).where(_from_run(table, run_id, served_versions)).order_by(table.c.id))
            .mappings()
            .all()
            for table in (model_deployments, prediction_batches)
        )
    return {
        "run_id": run_id,
        "registered_versions": [
            {"registered_model": v.name, "version": v.version, "aliases": v.aliases, "created": v.created}
            for v in versions
        ],
        "champion_events": events,
        "deployments": [_row_view(row) for row in deployments],
        "prediction_batches": [_row_view(row) for row in batches],
    }


def _from_run(table, run_id: str, versions: list[str]):
    condition = table.c.run_id == run_id
    if versions:
        condition = or_(
            condition, (table.c.registered_model == REGISTERED_MODEL) & table.c.registered_version.in_(versions)
        )
    return condition


def _row_view(row) -> dict[str, Any]:
    return {
        key: value.isoformat(timespec="seconds") if isinstance(value, datetime) else value
        for key, value in row.items()
        if key != "id"
    }


# --- the background sync --------------------------------------------------------------------------


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
