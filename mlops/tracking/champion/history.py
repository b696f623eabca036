"""What was champion when, and what came from a run: the champion report and a run's lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from mlops.kernel.db import model_deployments, prediction_batches
from mlops.kernel.errors import Unavailable, UpstreamError
from mlops.tracking.champion.loop import (
    CHAMPION_SINCE_TAG,
    PROMOTED_BY_TAG,
    REGISTERED_MODEL,
    Loop,
    ModelSpec,
    served_model,
    serves,
)
from mlops.tracking.champion.moves import rollback_target
from mlops.tracking.mlflow import registry
from mlops.tracking.mlflow.registry import ModelVersionRecord


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
    spec = ModelSpec.of(version)
    return {
        "version": version.version,
        "run_id": version.run_id,
        "model_name": spec.model_name if spec else None,
        "hyperparameters": spec.hyperparameters if spec else None,
        "champion_since": version.tags.get(CHAMPION_SINCE_TAG),
        "promoted_by": version.tags.get(PROMOTED_BY_TAG),
    }


def run_lineage(loop: Loop, run_id: str) -> dict[str, Any]:
    """The registered versions a run logged, when each was champion, and the ML service's
    deployments and stored prediction batches made with them."""
    versions = registry.versions_of_run(loop.backend, run_id)
    served_versions = [v.version for v in versions if v.name == REGISTERED_MODEL]
    events = [
        e
        for e in registry.history(loop.backend, REGISTERED_MODEL)
        if e.get("champion") in served_versions or e.get("challenger") in served_versions or e.get("run_id") == run_id
    ]
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
