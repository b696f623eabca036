"""The model registry side of MLflow: the served model's registered versions, its `champion`
alias and the history of the alias's moves, behind plain functions and records.

Like the rest of this package, it imports MLflow inside functions.

The history lives on the registered model itself, one tag per event (`mlops.history.000001`,
...), each a small JSON object, so it survives restarts and shows on the registered model's page
in MLflow's UI; the versions carry tags too (`mlops.champion_since`, `mlops.promoted_by`,
`mlops.gate_decision`, ...). An event is written BEFORE the alias moves: the latest event names
the champion that should be, and reconcile_alias completes a move a crash interrupted.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from mlops.kernel.errors import NotFound
from mlops.tracking.mlflow.store import MlflowBackend, import_libraries, mlflow_errors

CHAMPION_ALIAS = "champion"
HISTORY_TAG_PREFIX = "mlops.history."
# The sklearn flavor's file for a skops-serialized model, inside the logged model's directory.
SKOPS_FILE = "model.skops"


@dataclass(frozen=True)
class ModelVersionRecord:
    """A registered model version as the API shows it; created in epoch milliseconds."""

    name: str
    version: str
    run_id: str | None
    source: str
    created: int | None
    tags: dict[str, str]
    aliases: list[str]


def _version_record(version) -> ModelVersionRecord:
    return ModelVersionRecord(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id or None,
        source=version.source,
        created=version.creation_timestamp,
        tags=dict(version.tags),
        aliases=list(getattr(version, "aliases", []) or []),
    )


def _missing_model_or_alias(error) -> bool:
    """Whether an MlflowException says the registered model or the alias does not exist."""
    return (
        error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
        or error.get_http_status_code() == 404
    )


def get_champion(backend: MlflowBackend, name: str) -> ModelVersionRecord | None:
    """The version the champion alias points at, or None (no registered model or no alias yet)."""
    import_libraries()
    from mlflow.exceptions import MlflowException

    client = backend.client()
    try:
        with mlflow_errors():
            return _version_record(client.get_model_version_by_alias(name, CHAMPION_ALIAS))
    except NotFound:
        return None
    except MlflowException as error:
        if _missing_model_or_alias(error):
            return None
        raise


def get_version(backend: MlflowBackend, name: str, version: str) -> ModelVersionRecord:
    """One registered version; 404 naming it when it does not exist."""
    missing = NotFound(
        f"Version {version!r} of the registered model {name!r} not found", error="Model version not found"
    )
    if not version.isdigit():
        raise missing
    import_libraries()
    from mlflow.exceptions import MlflowException

    try:
        with mlflow_errors():
            return _version_record(backend.client().get_model_version(name, version))
    except NotFound:
        raise missing from None
    except MlflowException as error:
        if _missing_model_or_alias(error):
            raise missing from None
        raise


def versions_of_run(backend: MlflowBackend, run_id: str) -> list[ModelVersionRecord]:
    """Every registered version logged by this run (of any registered model), oldest first."""
    with mlflow_errors():
        found = backend.client().search_model_versions(filter_string=f"run_id = '{run_id}'", max_results=10_000)
    return sorted((_version_record(v) for v in found), key=lambda v: (v.name, int(v.version)))


def history(backend: MlflowBackend, name: str) -> list[dict[str, Any]]:
    """The champion's events (oldest first), as recorded on the registered model; [] if none."""
    import_libraries()
    from mlflow.exceptions import MlflowException

    try:
        with mlflow_errors():
            model = backend.client().get_registered_model(name)
    except NotFound:
        return []
    except MlflowException as error:
        if _missing_model_or_alias(error):
            return []
        raise
    events = [json.loads(value) for key, value in sorted(model.tags.items()) if key.startswith(HISTORY_TAG_PREFIX)]
    return sorted(events, key=lambda event: event["sequence"])


def record_event(backend: MlflowBackend, name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Append an event to the champion's history (the caller serializes writers); return it with
    its sequence number."""
    import_libraries()
    from mlflow.exceptions import MlflowException

    client = backend.client()
    with mlflow_errors():
        try:
            client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        sequence = max((e["sequence"] for e in history(backend, name)), default=0) + 1
        event = {"sequence": sequence, **event}
        client.set_registered_model_tag(name, f"{HISTORY_TAG_PREFIX}{sequence:06d}", json.dumps(event))
    return event


def point_champion(backend: MlflowBackend, name: str, version: str, version_tags: dict[str, str]) -> None:
    """Move the champion alias to version and tag the version with why and when."""
    client = backend.client()
    with mlflow_errors():
        for key, value in version_tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)


def tag_version(backend: MlflowBackend, name: str, version: str, tags: dict[str, str]) -> None:
    """Set tags on a registered version (e.g. the gate's decision on a challenger)."""
    client = backend.client()
    with mlflow_errors():
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)


def pipeline_bytes(backend: MlflowBackend, version: ModelVersionRecord) -> bytes:
    """The skops bytes of a registered version's pipeline, read from the artifact store."""
    import_libraries()
    from mlflow.artifacts import download_artifacts

    backend.client()
    with mlflow_errors(), tempfile.TemporaryDirectory(prefix="mlops-champion-") as directory:
        path = download_artifacts(
            artifact_uri=f"{version.source.rstrip('/')}/{SKOPS_FILE}",
            dst_path=directory,
            tracking_uri=backend.tracking_uri,
        )
        with open(path if os.path.isfile(path) else os.path.join(path, SKOPS_FILE), "rb") as handle:
            return handle.read()
