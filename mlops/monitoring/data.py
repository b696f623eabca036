"""What monitoring compares: the testing set (reference) and the production set (current), each
with its targets and the ML service's predictions, as the frames Evidently reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select

from mlops.kernel.datasets import LoadedSet, kept_reloading, loaded_row, read_set, read_set_rows
from mlops.kernel.db import datasets, predictions
from mlops.monitoring.checks import PREDICTION, TARGET

TRAINING_SET = "training"
REFERENCE_SET = "testing"
CURRENT_SET = "production"
SAMPLE_SEED = 42


@dataclass(frozen=True)
class DataVersion:
    """Which stored data a result was computed on: each set's version and its predictions' model version.

    A reload gives a set a new id and drops its predictions; the ML service replaces a set's
    predictions as a whole, all with one model version. So equal versions mean equal data.
    """

    reference_id: int | None
    reference_model_version: int | None
    current_id: int | None
    current_model_version: int | None


@dataclass(frozen=True)
class SetUsed:
    """One set as handed to Evidently: which version, how many rows stored and how many used."""

    name: str
    dataset_id: int
    model_version: int | None
    rows: int
    rows_used: int

    @property
    def sampled(self) -> bool:
        return self.rows_used < self.rows

    def to_json(self) -> dict[str, object]:
        return {
            "set": self.name,
            "dataset_id": self.dataset_id,
            "model_version": self.model_version,
            "rows": self.rows,
            "rows_used": self.rows_used,
        }


@dataclass(frozen=True)
class MonitoringData:
    """The reference and current frames (features, target, prediction) and where they came from."""

    version: DataVersion | None  # None: the sets changed while they were read
    reference: pd.DataFrame
    current: pd.DataFrame
    reference_set: SetUsed
    current_set: SetUsed


def data_version(connection: Connection) -> DataVersion:
    """Read the versions of the stored sets and predictions: one statement of indexed lookups, whatever the sizes."""
    versions = set_versions(connection, REFERENCE_SET, CURRENT_SET)
    (reference_id, reference_model), (current_id, current_model) = versions[REFERENCE_SET], versions[CURRENT_SET]
    return DataVersion(reference_id, reference_model, current_id, current_model)


def set_version(connection: Connection, name: str) -> tuple[int | None, int | None]:
    """One set's version and its predictions' model version (None, None when it is not loaded)."""
    return set_versions(connection, name)[name]


def set_versions(connection: Connection, *names: str) -> dict[str, tuple[int | None, int | None]]:
    """Each named set's version and its predictions' model version, in one statement ((None, None): not loaded)."""
    # One prediction row tells the model version of them all (see DataVersion).
    model_version = (
        select(predictions.c.model_version).where(predictions.c.dataset_id == datasets.c.id).limit(1).scalar_subquery()
    )
    rows = connection.execute(select(datasets.c.name, datasets.c.id, model_version).where(datasets.c.name.in_(names)))
    found = {name: (dataset_id, version) for name, dataset_id, version in rows}
    return {name: found.get(name, (None, None)) for name in names}


def read_training_frame(engine: Engine, max_rows: int) -> tuple[pd.DataFrame, SetUsed, tuple[int | None, int | None]]:
    """The training set with its predictions (sampled as the others), and its version as read before it."""
    with engine.connect() as connection:
        version = set_version(connection, TRAINING_SET)
        sample = read_sample(connection, TRAINING_SET, max_rows)
    frame, used = evidently_frame(sample, version[1])
    return frame, used, version if version[0] == sample.loaded.dataset_id else (None, None)


def read_monitoring_data(engine: Engine, max_rows: int, expected: DataVersion | None = None) -> MonitoringData:
    """Read both sets with predictions (409 saying what to run first if one is missing), sampling large ones.

    The version is read before and after the sets (before: unless the caller just read it, as
    `expected`): when the two differ, the sets changed while being read and which version the
    frames hold is not known, so the version is None. (Set ids and model versions only grow, so
    equal versions around the read mean the frames hold that version.)
    """
    with engine.connect() as connection:
        before = data_version(connection) if expected is None else expected
        reference = read_sample(connection, REFERENCE_SET, max_rows)
        current = read_sample(connection, CURRENT_SET, max_rows)
        after = data_version(connection)
    reference_frame, reference_used = evidently_frame(reference, before.reference_model_version)
    current_frame, current_used = evidently_frame(current, before.current_model_version)
    return MonitoringData(
        version=before if before == after else None,
        reference=reference_frame,
        current=current_frame,
        reference_set=reference_used,
        current_set=current_used,
    )


@dataclass(frozen=True)
class Sample:
    """The rows of a set that monitoring uses (all of them, or a seeded sample) and how many it has."""

    loaded: LoadedSet
    rows: int


def read_sample(connection: Connection, name: str, max_rows: int) -> Sample:
    """A set with predictions, or a seeded random sample of max_rows of its rows if it has more.

    The sampled positions are drawn first (seeded, without replacement, in memory that grows
    with the sample, not the set); then only those rows are read, by their primary key, so a set
    of any size is sampled in the time and memory of the sample.
    """
    row = loaded_row(connection, name)
    if row.n_samples <= max_rows:
        return Sample(read_set(connection, name, with_predictions=True), row.n_samples)
    picked = sample_positions(row.n_samples, max_rows)
    loaded = read_set_rows(connection, row, picked, with_predictions=True)
    if len(loaded.target) != len(picked):
        raise kept_reloading(f"The {name} set")
    return Sample(loaded, row.n_samples)


def sample_positions(rows: int, size: int) -> np.ndarray:
    """Which of a set's rows (positions) a sample of `size` takes, sorted: the same for the same
    sizes, every time (seeded). Floyd's method (numpy's for a sample far smaller than the set)
    holds the sample, never a permutation of the whole set."""
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(rows, size=size, replace=False, shuffle=False))


def evidently_frame(sample: Sample, model_version: int | None) -> tuple[pd.DataFrame, SetUsed]:
    """One frame of features, target and prediction, and which rows of the set it holds."""
    loaded = sample.loaded
    frame = loaded.features.assign(**{TARGET: loaded.target, PREDICTION: loaded.prediction})
    return frame, SetUsed(loaded.name, loaded.dataset_id, model_version, sample.rows, len(frame))
