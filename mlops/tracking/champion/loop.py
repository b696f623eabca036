"""What the champion's functions work with (the Loop), what the ML service serves, and the one
move every change of champion makes: record the event, point the alias, push the version."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from mlops.kernel.config import Settings
from mlops.kernel.errors import Conflict, Unavailable, UpstreamError
from mlops.kernel.metrics import ServiceMetrics
from mlops.tracking.deploy import ML_SERVICE, call_ml
from mlops.tracking.mlflow import MlflowBackend, registry
from mlops.tracking.mlflow.files import file_lock
from mlops.tracking.mlflow.registry import ModelVersionRecord

log = logging.getLogger(__name__)

# The registered model whose `champion` alias the ML service serves (the V2 protocol's model name too).
REGISTERED_MODEL = "wine"
ML_STATUS_PATH, ML_MODEL_PATH = "/root/ml", "/root/ml/model"
# The tags a move writes on the version it makes champion (and on the one it replaces).
CHAMPION_SINCE_TAG, CHAMPION_UNTIL_TAG, PROMOTED_BY_TAG = (
    "mlops.champion_since",
    "mlops.champion_until",
    "mlops.promoted_by",
)
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
    """What the champion's functions work with: MLflow, the dataset DB, the settings and the
    service's Prometheus metrics (a retraining's fits count there)."""

    backend: MlflowBackend
    engine: Engine
    settings: Settings
    metrics: ServiceMetrics | None = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialize the champion's moves among this host's tracking workers."""
        path = self.settings.data_dir.resolve() / "champion.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path):
            yield


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelSpec:
    """What a registered version needs to be served as it is, without loading it. The versions
    this service registers carry it as tags, one per field: `mlops.model_name`, ..."""

    model_name: str
    hyperparameters: dict[str, Any]
    training_dataset_id: int | None
    training_accuracy: float | None

    @staticmethod
    def tag(field_name: str) -> str:
        return f"mlops.{field_name}"

    def as_tags(self) -> dict[str, str]:
        values = dataclasses.asdict(self)
        values["hyperparameters"] = json.dumps(self.hyperparameters)
        return {self.tag(name): "" if value is None else str(value) for name, value in values.items()}

    @classmethod
    def missing_tag(cls, version: ModelVersionRecord) -> str | None:
        """The first of the spec's tags the version lacks (it was not registered by this service)."""
        tags = (cls.tag(field.name) for field in dataclasses.fields(cls))
        return next((tag for tag in tags if tag not in version.tags), None)

    @classmethod
    def of(cls, version: ModelVersionRecord) -> ModelSpec | None:
        """The version's spec, or None for a version registered by someone else."""
        if cls.missing_tag(version) is not None:
            return None
        text = {field.name: version.tags[cls.tag(field.name)] for field in dataclasses.fields(cls)}
        return cls(
            model_name=text["model_name"],
            hyperparameters=json.loads(text["hyperparameters"]),
            training_dataset_id=int(text["training_dataset_id"]) if text["training_dataset_id"] else None,
            training_accuracy=float(text["training_accuracy"]) if text["training_accuracy"] else None,
        )


# --- what the ML service serves ---------------------------------------------------------------


def served_model(loop: Loop) -> dict[str, Any] | None:
    """The ML service's deployed model as GET /root/ml shows it (None if none is set)."""
    reply = call_ml(loop.settings, "GET", ML_STATUS_PATH, action="tell its model")
    if reply.status != 200:
        raise unexpected_reply(reply, "tell its model")
    return reply.body.get("model")


def serves(served: dict[str, Any] | None, version: ModelVersionRecord | None) -> bool:
    """Whether the ML service's model is this registered version."""
    if version is None or served is None or served.get("trained_at") is None:
        return False
    return (served.get("registered_model"), served.get("registered_version")) == (version.name, version.version)


def push(loop: Loop, version: ModelVersionRecord, *, adopts_version: int | None = None) -> dict[str, Any]:
    """Give the ML service a registered version's pipeline to serve; return its model as it now is."""
    spec = ModelSpec.of(version)
    if spec is None:
        raise Conflict(
            f"Version {version.version} of {version.name!r} was not registered by this service (no "
            f"{ModelSpec.missing_tag(version)} tag) and cannot be served: promote a version logged by retraining or "
            "adopted from the ML service",
            error="Version not servable",
        )
    body = {
        "registered_model": version.name,
        "registered_version": version.version,
        "run_id": version.run_id,
        **dataclasses.asdict(spec),
        "pipeline": base64.b64encode(registry.pipeline_bytes(loop.backend, version)).decode(),
        "adopts_version": adopts_version,
    }
    reply = call_ml(loop.settings, "PUT", ML_MODEL_PATH, body, action="serve the champion")
    if reply.status != 200:
        raise unexpected_reply(reply, "serve the champion")
    log.info("the ML service serves %s version %s (%s)", version.name, version.version, reply.body.get("message"))
    return reply.body["model"]


def unexpected_reply(reply, action: str) -> Exception:
    message = reply.body.get("message", reply.body) if isinstance(reply.body, dict) else reply.body
    if reply.status == 503:
        return Unavailable(
            f"The {ML_SERVICE} could not {action} right now: {message}", error=f"{ML_SERVICE} unavailable"
        )
    return UpstreamError(
        f"The {ML_SERVICE} refused to {action} (HTTP {reply.status}): {message}", error=f"{ML_SERVICE} error"
    )


# --- the move ------------------------------------------------------------------------------------


def move(
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
        CHAMPION_SINCE_TAG: at,
        PROMOTED_BY_TAG: by,
        "mlops.promotion_reason": reason[:5000],
        "mlops.promotion_event": str(event["sequence"]),
    }
    registry.point_champion(loop.backend, REGISTERED_MODEL, version.version, tags)
    if current is not None and current.version != version.version:
        registry.tag_version(loop.backend, REGISTERED_MODEL, current.version, {CHAMPION_UNTIL_TAG: at})
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
