"""Moving the champion on request: promotion (by the gate or by hand), rollback along the
recorded moves, and the record of a gate that kept the champion."""

from __future__ import annotations

from typing import Any

from mlops.kernel.errors import Conflict
from mlops.tracking.champion.loop import ANY_CHAMPION, FORWARD_ACTIONS, REGISTERED_MODEL, Loop, move, now_text
from mlops.tracking.champion.sync import reconcile_or_log
from mlops.tracking.mlflow import registry
from mlops.tracking.mlflow.registry import ModelVersionRecord


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
        reconcile_or_log(loop)
        target = registry.get_version(loop.backend, REGISTERED_MODEL, version)
        current = registry.get_champion(loop.backend, REGISTERED_MODEL)
        if compared_with is not ANY_CHAMPION and (current.version if current else None) != compared_with:
            raise Conflict(
                f"The champion moved to version {current.version if current else None} while this request worked "
                f"(the gate compared against {compared_with}); version {version} stays a challenger: send the "
                "request again",
                error="Champion moved",
            )
        return move(loop, target, current, action=action, by=by, reason=reason, details=details), current


def rollback(loop: Loop, *, by: str, reason: str) -> tuple[dict[str, Any], ModelVersionRecord]:
    """Move the champion back to the version that held it before; return the event and the version left."""
    with loop.lock():
        reconcile_or_log(loop)
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
        return move(loop, version, current, action="rolled_back", by=by, reason=reason), current


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
