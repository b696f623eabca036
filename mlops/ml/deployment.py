"""The deployed model: its spec and trained pipeline persisted in the dataset DB's one-row
`deployed_model` table (the pipeline each process keeps loaded from it: pipeline_cache.py).

Every worker and every restart reads the same row, so they all serve the same model. The row's
`version` grows with each set_model, each training and each champion installed by tracking.

The row also carries its lineage: the registered model version it is (None for a model trained
here and not registered yet), its MLflow run and the training set version it was fitted on.
`model_deployments` keeps every pipeline served, in order; `prediction_batches` every batch of
stored predictions with the set version and model version it was made with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from mlops.kernel.db import deployed_model, model_deployments, prediction_batches
from mlops.kernel.errors import Conflict

ROW_ID = 1  # the table holds at most this one row
NOT_REGISTERED = {"registered_model": None, "registered_version": None, "run_id": None, "training_dataset_id": None}
SET_MODEL_HINT = 'POST /root/ml/set_model {"model_name": ..., "hyperparameters": {...}}'
TRAIN_HINT = 'POST /root/ml {"dataset": "training"}'

_SPEC_COLUMNS = (
    deployed_model.c.version,
    deployed_model.c.model_name,
    deployed_model.c.hyperparameters,
    deployed_model.c.set_at,
    deployed_model.c.trained_at,
    deployed_model.c.training_accuracy,
    deployed_model.c.registered_model,
    deployed_model.c.registered_version,
    deployed_model.c.run_id,
    deployed_model.c.training_dataset_id,
)
# Built once: every prediction runs it, and building a statement is not free.
_SPEC_QUERY = select(*_SPEC_COLUMNS).where(deployed_model.c.id == ROW_ID)


@dataclass(frozen=True)
class DeployedModel:
    """The deployed model's spec and training record, without the pipeline itself."""

    version: int
    model_name: str
    hyperparameters: dict[str, Any]
    set_at: datetime
    trained_at: datetime | None
    training_accuracy: float | None
    registered_model: str | None = None
    registered_version: str | None = None
    run_id: str | None = None
    training_dataset_id: int | None = None

    @property
    def trained(self) -> bool:
        return self.trained_at is not None


def _as_model(row) -> DeployedModel:
    """Turn a deployed_model row into a DeployedModel."""
    return DeployedModel(
        version=row.version,
        model_name=row.model_name,
        hyperparameters=dict(row.hyperparameters),
        set_at=_utc(row.set_at),
        trained_at=_utc(row.trained_at) if row.trained_at is not None else None,
        training_accuracy=row.training_accuracy,
        registered_model=row.registered_model,
        registered_version=row.registered_version,
        run_id=row.run_id,
        training_dataset_id=row.training_dataset_id,
    )


def _utc(moment: datetime) -> datetime:
    """Return moment as an aware UTC time."""
    # SQLite hands back the naive UTC time we stored; PostgreSQL an aware one.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_deployed(connection: Connection) -> DeployedModel | None:
    """The deployed model's spec (one small SELECT, no pipeline bytes), or None if none is set."""
    row = connection.execute(_SPEC_QUERY).first()
    return _as_model(row) if row is not None else None


def require_model(model: DeployedModel | None) -> DeployedModel:
    """The deployed model, or a 409 saying to set one first."""
    if model is None:
        raise Conflict(f"No model is set yet: set one first with {SET_MODEL_HINT}", error="No model set")
    return model


def require_trained(model: DeployedModel | None) -> DeployedModel:
    """The deployed model if it is trained, or a 409 saying what to run first."""
    model = require_model(model)
    if not model.trained:
        raise Conflict(
            f"The deployed {model.model_name} model (version {model.version}) is not trained yet: "
            f"train it first with {TRAIN_HINT}",
            error="Model not trained",
        )
    return model


def save_model(engine: Engine, model_name: str, hyperparameters: dict[str, Any]) -> DeployedModel:
    """Deploy a new, untrained model spec in one transaction, replacing the current model."""
    spec = {
        "model_name": model_name,
        "hyperparameters": hyperparameters,
        "set_at": datetime.now(UTC),
        "trained_at": None,
        "training_accuracy": None,
        "pipeline": None,
        **NOT_REGISTERED,
    }
    try:
        version = _write_spec(engine, spec)
    except IntegrityError:
        # Another process inserted the very first row at the same moment: ours is the next version.
        version = _write_spec(engine, spec)
    return DeployedModel(
        version=version,
        model_name=model_name,
        hyperparameters=hyperparameters,
        set_at=spec["set_at"],
        trained_at=None,
        training_accuracy=None,
    )


def _write_spec(engine: Engine, spec: dict[str, Any]) -> int:
    """Write spec as the next version of the one row (the first row is version 1); return the version."""
    with engine.begin() as connection:
        return _write_next_version(connection, spec)


def _write_next_version(connection: Connection, spec: dict[str, Any]) -> int:
    """Write spec as the next version of the one row, in the caller's transaction; return the version."""
    version = connection.execute(
        update(deployed_model)
        .where(deployed_model.c.id == ROW_ID)
        .values(version=deployed_model.c.version + 1, **spec)
        .returning(deployed_model.c.version)
    ).scalar()
    if version is None:
        version = 1
        connection.execute(insert(deployed_model).values(id=ROW_ID, version=version, **spec))
    return version


def save_trained(
    connection: Connection, model: DeployedModel, pipeline_bytes: bytes, accuracy: float, training_dataset_id: int
) -> DeployedModel:
    """Store the pipeline trained for `model` as the next version, if `model` is still deployed.

    A model trained here is nobody's registered version yet (tracking registers it as a new
    version of the champion's registered model and moves the alias to it).

    Optimistic check: when set_model or another training changed the row while this one was
    fitting, nothing is written and the caller is told to train again.
    """
    trained_at = datetime.now(UTC)
    stored = connection.execute(
        update(deployed_model)
        .where(deployed_model.c.id == ROW_ID, deployed_model.c.version == model.version)
        .values(
            version=model.version + 1,
            trained_at=trained_at,
            training_accuracy=accuracy,
            pipeline=pipeline_bytes,
            **NOT_REGISTERED | {"training_dataset_id": training_dataset_id},
        )
    )
    if stored.rowcount != 1:
        raise Conflict(
            f"The deployed model changed while this one was training: train again with {TRAIN_HINT}",
            error="Model changed while training",
        )
    trained = DeployedModel(
        version=model.version + 1,
        model_name=model.model_name,
        hyperparameters=model.hyperparameters,
        set_at=model.set_at,
        trained_at=trained_at,
        training_accuracy=accuracy,
        training_dataset_id=training_dataset_id,
    )
    _record_deployment(connection, trained, "training")
    return trained


@dataclass(frozen=True)
class RegisteredPipeline:
    """A registered model version's trained pipeline, as tracking pushes it to be served."""

    registered_model: str
    registered_version: str
    run_id: str | None
    model_name: str
    hyperparameters: dict[str, Any]
    training_dataset_id: int | None
    training_accuracy: float | None
    pipeline_bytes: bytes
    # The version of this service that tracking registered (adopted), when the pipeline is one
    # trained here: its row is then only marked as registered, not replaced.
    adopts_version: int | None = None


def install_registered(engine: Engine, pushed: RegisteredPipeline) -> tuple[DeployedModel, bool]:
    """Serve a registered version's pipeline, in one transaction; return the model served and
    whether anything changed.

    Idempotent: pushing the version already served changes nothing. Adopting this service's own
    trained version marks its row, deployments and prediction batches as that registered version
    (same pipeline, same version: no reload); if that version was replaced meanwhile (trained or
    set again), only its history is marked and the newer model keeps serving.
    """
    registration = {
        "registered_model": pushed.registered_model,
        "registered_version": pushed.registered_version,
        "run_id": pushed.run_id,
    }
    with engine.begin() as connection:
        current_row = connection.execute(
            select(*_SPEC_COLUMNS).where(deployed_model.c.id == ROW_ID).with_for_update()
        ).first()
        current = _as_model(current_row) if current_row is not None else None
        if pushed.adopts_version is not None:
            for table in (model_deployments, prediction_batches):
                connection.execute(
                    update(table)
                    .where(table.c.model_version == pushed.adopts_version, table.c.registered_version.is_(None))
                    .values(**registration)
                )
            if current is None or current.version != pushed.adopts_version or current.registered_version is not None:
                return require_trained(current), False
            connection.execute(update(deployed_model).where(deployed_model.c.id == ROW_ID).values(**registration))
            return replace(current, **registration), True
        if (
            current is not None
            and current.trained
            and (current.registered_model, current.registered_version)
            == (pushed.registered_model, pushed.registered_version)
        ):
            return current, False
        now = datetime.now(UTC)
        spec = {
            "model_name": pushed.model_name,
            "hyperparameters": pushed.hyperparameters,
            "set_at": now,
            "trained_at": now,
            "training_accuracy": pushed.training_accuracy,
            "pipeline": pushed.pipeline_bytes,
            **registration,
            "training_dataset_id": pushed.training_dataset_id,
        }
        version = _write_next_version(connection, spec)
        installed = DeployedModel(
            version=version,
            model_name=pushed.model_name,
            hyperparameters=pushed.hyperparameters,
            set_at=now,
            trained_at=now,
            training_accuracy=pushed.training_accuracy,
            training_dataset_id=pushed.training_dataset_id,
            **registration,
        )
        _record_deployment(connection, installed, "champion")
    return installed, True


def _record_deployment(connection: Connection, model: DeployedModel, source: str) -> None:
    """Remember that this trained version started serving (model_deployments)."""
    connection.execute(
        insert(model_deployments).values(
            model_version=model.version,
            model_name=model.model_name,
            source=source,
            registered_model=model.registered_model,
            registered_version=model.registered_version,
            run_id=model.run_id,
            training_dataset_id=model.training_dataset_id,
            deployed_at=datetime.now(UTC),
        )
    )


def record_batch(
    connection: Connection, set_name: str, dataset_id: int, rows: int, accuracy: float, model: DeployedModel
) -> None:
    """Remember a stored batch of predictions: the set version and the model version that made it."""
    connection.execute(
        insert(prediction_batches).values(
            set_name=set_name,
            dataset_id=dataset_id,
            rows=rows,
            accuracy=accuracy,
            model_version=model.version,
            registered_model=model.registered_model,
            registered_version=model.registered_version,
            run_id=model.run_id,
            made_at=datetime.now(UTC),
        )
    )


def read_served_pipeline(connection: Connection) -> tuple[DeployedModel, bytes]:
    """The trained model and its pipeline bytes (one SELECT), or a 409 saying what to run first."""
    row = connection.execute(
        select(*_SPEC_COLUMNS, deployed_model.c.pipeline).where(deployed_model.c.id == ROW_ID)
    ).first()
    model = require_trained(_as_model(row) if row is not None else None)
    return model, row.pipeline
