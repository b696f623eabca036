"""What the ML service's readiness probes say about the model of the worker that answers.

Two probes, two questions:
- `GET /v2/health/ready` and `/v2/models/wine/ready` (the Open Inference Protocol's) ask whether
  this worker can infer: 200 only with a trained model loaded here, else 503 saying what is
  missing (no model deployed yet, deployed but not trained, the stored one unusable, the
  database down with nothing loaded).
- `GET /ready` (what `mlops up`, the compose healthchecks and an orchestrator wait for) asks
  whether the service can answer its main requests. Without a trained model those are the
  deployment requests (set_model, training, tracking's push of the champion), so a stack on a
  fresh data dir is ready, and /ready says which model state it is in; once a trained model is
  deployed, ready means this worker has it loaded.
Either probe loads the deployed model into the worker if it has not yet (so after a 200 the
first prediction does not wait for it). While the database is down and the worker holds a
model (loaded, or the copy kept beside the data), both stay 200 and say `degraded`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from mlops.kernel.db import DATABASE_DOWN, ping
from mlops.kernel.errors import Conflict
from mlops.kernel.web.state import Degraded, NotReady, ServiceState
from mlops.ml.deployment import DeployedModel
from mlops.ml.pipeline_cache import PipelineCache

NOTHING_TO_SERVE = (
    "The dataset database is unavailable and this worker has no model loaded (nor a usable copy kept beside the data)"
)


@dataclass(frozen=True)
class ModelReadiness:
    """Whether this worker can predict, and what the probes say about it."""

    model: DeployedModel | None  # the trained model loaded here, None if it cannot predict
    detail: str  # the model loaded, or what is missing and what to run
    degraded: str | None = None  # why it predicts without the database's word, if it does
    deployable: bool = True  # whether the deployment requests can be answered (the database answers)


def model_readiness(engine: Engine, cache: PipelineCache) -> ModelReadiness:
    """Load the deployed model into this worker if needed, and say whether it can predict."""
    try:
        model, _compiled, degraded = cache.serving_pipeline(engine)
    except Conflict as missing:  # no model set, not trained, or its stored pipeline unusable
        return ModelReadiness(None, f"{missing.error}: {missing.message}")
    except DATABASE_DOWN:
        return ModelReadiness(None, NOTHING_TO_SERVE, deployable=False)
    return ModelReadiness(model, f"{model.model_name} version {model.version} loaded", degraded)


def model_check(state: ServiceState[PipelineCache]) -> str:
    """/ready's model check: what this worker serves, or why it serves nothing yet (still ready if
    what is missing is a deployment); not ready only when nothing can be served or deployed."""
    readiness = model_readiness(state.engine, state.resources)
    if not readiness.deployable:
        raise NotReady(readiness.detail)
    if readiness.model is None:
        return f"none loaded: {readiness.detail} (predictions answer 409 until then)"
    return readiness.detail


def database_check(state: ServiceState[PipelineCache]) -> None:
    """/ready's database check: the database answers, or, while it does not, prediction still
    answers with the model this worker holds (degraded); else the outage makes it not ready."""
    try:
        ping(state.engine)
    except DATABASE_DOWN:
        readiness = model_readiness(state.engine, state.resources)
        if readiness.model is None:
            raise
        # (a worker that read the row a moment ago has not noticed the outage yet: no reason of its own)
        raise Degraded(readiness.degraded or f"The dataset database is unavailable: {readiness.detail}") from None


READY_CHECKS = {"database": database_check, "model": model_check}
