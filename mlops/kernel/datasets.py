"""Reading the sets the simulator loaded, and the predictions the ML service stored.

Each read is one SELECT of a set's samples, which hold each sample's features and class (joined
with its predictions when asked), so it sees one consistent version of the set even while the
simulator reloads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Float, Select, and_, delete, func, literal, select

from mlops.kernel.bulk import (
    columns_writer,
    is_postgresql,
    parent_checked_by_caller,
    refresh_statistics,
    select_column_blocks,
    select_columns,
)
from mlops.kernel.db import FEATURE_COLUMNS, FEATURES, datasets, predictions, samples
from mlops.kernel.errors import Conflict

# Stands for "no prediction stored" in reads (classes are 0, 1, 2).
NO_PREDICTION = -1
LOAD_HINT = 'POST /root/simulator {{"set_name": "{name}"}}'
# How often a read starts over when the set is replaced (or evaluated) under it before giving up
# with a 409 (kept_reloading).
READ_ATTEMPTS = 5
# Positions looked up by one statement in read_set_rows (SQLite allows 32,766 bound values).
POSITIONS_PER_QUERY = 20_000
# pg_advisory_xact_lock's first key for "predictions of a dataset" (the second is the dataset id).
PREDICTIONS_LOCK = 0x6D6C7072


@dataclass(frozen=True)
class LoadedSet:
    """A set as stored: its version (the datasets row id), features (API names) and targets."""

    name: str
    dataset_id: int
    loaded_at: datetime
    features: pd.DataFrame
    target: pd.Series
    prediction: pd.Series | None = None


def dataset_row(connection: Connection, name: str):
    """The datasets row of a loaded set, or None."""
    return connection.execute(select(datasets).where(datasets.c.name == name)).first()


def loaded_row(connection: Connection, name: str):
    """The datasets row of a loaded set; a set not loaded yet is a 409 saying how to load it."""
    row = dataset_row(connection, name)
    if row is None:
        raise Conflict(
            f"The {name} set is not loaded yet: load it first with " + LOAD_HINT.format(name=name),
            error="Set not loaded",
        )
    return row


def read_set(connection: Connection, name: str, *, with_predictions: bool = False) -> LoadedSet:
    """Read a loaded set in one statement; a set not loaded yet is a 409 saying how to load it.

    The set's datasets row and its rows are two statements: a reload that commits between them
    leaves the read with fewer rows than the row announced (none, on PostgreSQL), so it starts
    over with the new version.
    """
    for _ in range(READ_ATTEMPTS):
        row = loaded_row(connection, name)
        loaded = _read_version(connection, row, with_predictions)
        if loaded is not None:
            return loaded
    raise kept_reloading(f"The {name} set")


def read_set_rows(connection: Connection, row, positions: np.ndarray, *, with_predictions: bool = False) -> LoadedSet:
    """The rows of one version of a set (its datasets row) at these sorted positions, looked up
    by the primary key a batch of positions at a time: a sample of a set of any size costs what
    the sample costs, not a read of the whole set.

    A version replaced meanwhile leaves fewer rows than positions: the caller checks the count
    (kept_reloading says so).
    """
    query, dtypes = _set_query(row, with_predictions)
    parts = []
    for start in range(0, max(len(positions), 1), POSITIONS_PER_QUERY):
        batch = positions[start : start + POSITIONS_PER_QUERY].tolist()
        arrays = select_columns(connection, query.where(samples.c.sample_index.in_(batch)), dtypes, rows=len(batch))
        parts.append(_loaded(row, arrays, with_predictions))
    return LoadedSet(
        name=row.name,
        dataset_id=row.id,
        loaded_at=row.loaded_at,
        features=pd.concat([part.features for part in parts]),
        target=pd.concat([part.target for part in parts]),
        prediction=pd.concat([part.prediction for part in parts]) if with_predictions else None,
    )


def kept_reloading(what: str) -> Conflict:
    """The 409 for a read that found its set(s) replaced under it READ_ATTEMPTS times in a row."""
    return Conflict(f"{what} kept being reloaded while it was read; send the request again", error="Set reloaded")


def read_set_blocks(
    connection: Connection, name: str, block_rows: int, *, with_predictions: bool = False
) -> tuple[Any, Iterator[LoadedSet]]:
    """A loaded set's datasets row, and its rows in order a block of about block_rows at a time
    (each block a LoadedSet), read by one statement: a set of any size in constant memory.

    A set not loaded is a 409 saying how to load it. The caller counts the rows: fewer than the
    row's n_samples means the set was replaced during the read (kept_reloading says so).
    """
    row = loaded_row(connection, name)
    query, dtypes = _set_query(row, with_predictions)
    blocks = (
        _loaded(row, arrays, with_predictions) for arrays in select_column_blocks(connection, query, dtypes, block_rows)
    )
    return row, blocks


def _set_query(row, with_predictions: bool) -> tuple[Select, dict[str, str]]:
    """The statement that reads one version of a set in sample order, and its columns' types."""
    # NULL features come back as NaN and a missing prediction as -1, so every row has the same
    # width and PostgreSQL can send the set by binary COPY (see mlops.kernel.bulk).
    columns = [
        samples.c.sample_index,
        *(func.coalesce(samples.c[c], literal(float("nan"), Float(precision=53))).label(c) for c in FEATURE_COLUMNS),
        samples.c.target,
    ]
    dtypes = {"sample_index": "int32", **dict.fromkeys(FEATURE_COLUMNS, "float64"), "target": "int32"}
    query = select(*columns).select_from(samples)
    if with_predictions:
        query = query.add_columns(func.coalesce(predictions.c.prediction, NO_PREDICTION).label("prediction")).outerjoin(
            predictions,
            and_(
                predictions.c.dataset_id == samples.c.dataset_id,
                predictions.c.sample_index == samples.c.sample_index,
            ),
        )
        dtypes["prediction"] = "int32"
    return query.where(samples.c.dataset_id == row.id).order_by(samples.c.sample_index), dtypes


def _read_version(connection: Connection, row, with_predictions: bool) -> LoadedSet | None:
    """Read one version of a set (its datasets row), or None if it was replaced meanwhile."""
    query, dtypes = _set_query(row, with_predictions)
    arrays = select_columns(connection, query, dtypes, rows=row.n_samples)
    if len(arrays["sample_index"]) != row.n_samples:
        return None
    return _loaded(row, arrays, with_predictions)


def _loaded(row, arrays, with_predictions: bool) -> LoadedSet:
    """A set's rows (all, or a block) as a LoadedSet indexed by sample_index."""
    name = row.name
    index = pd.Index(arrays["sample_index"].astype("int64"), name="sample_index")
    # The 13 feature columns are the float columns, decoded side by side into one 2-D array: the
    # frame takes it as its one block without a copy, and np.asarray of the frame is a view of it.
    features = pd.DataFrame(arrays.floats, index=index, columns=list(FEATURES), copy=False)
    prediction = None
    if with_predictions:
        if (arrays["prediction"] == NO_PREDICTION).any():
            raise Conflict(
                f"The ML service has not evaluated the current {name} set yet: run "
                f'POST /root/ml {{"dataset": "{name}"}} first',
                error="Predictions missing",
            )
        prediction = pd.Series(arrays["prediction"].astype("int64"), index=index, name="prediction")
    return LoadedSet(
        name=name,
        dataset_id=row.id,
        loaded_at=row.loaded_at,
        features=features,
        target=pd.Series(arrays["target"].astype("int64"), index=index, name="target"),
        prediction=prediction,
    )


def replace_predictions(
    connection: Connection, dataset_id: int, sample_index: pd.Index, predicted: np.ndarray, model_version: int
) -> None:
    """Store the predictions for one version of a set, replacing earlier ones for it."""
    with predictions_writer(connection, dataset_id, model_version) as write:
        write(sample_index, predicted)


@contextmanager
def predictions_writer(
    connection: Connection, dataset_id: int, model_version: int
) -> Iterator[Callable[[Any, Any], None]]:
    """Replace the predictions for one version of a set with those written inside the block:
    yields write(sample_index, predicted), to call once per block of rows (and no other statement
    on the connection until the block ends: see bulk.columns_writer).

    Two of these for the same set at once (two evaluations) take turns: otherwise, on
    PostgreSQL, the second one's DELETE cannot see the rows the first one is inserting and the
    two collide on the primary key or deadlock. (SQLite lets one writer in at a time anyway.)
    """
    if is_postgresql(connection):
        connection.execute(select(func.pg_advisory_xact_lock(PREDICTIONS_LOCK, dataset_id)))
    connection.execute(delete(predictions).where(predictions.c.dataset_id == dataset_id))
    # Hold the set's row (as each row's foreign-key check would) so that a reload waits for us;
    # if the set is gone, the plain insert lets the foreign key refuse the rows as always.
    held = connection.execute(
        select(datasets.c.id).where(datasets.c.id == dataset_id).with_for_update(key_share=True)
    ).scalar()
    written = 0
    with (
        parent_checked_by_caller(connection) if held is not None else nullcontext(),
        columns_writer(connection, predictions, predictions.columns.keys()) as write_columns,
    ):

        def write(sample_index, predicted) -> None:
            nonlocal written
            n_rows = len(sample_index)
            write_columns(
                {
                    "dataset_id": np.full(n_rows, dataset_id, dtype=np.int32),
                    "sample_index": np.asarray(sample_index, dtype=np.int32),
                    "prediction": np.asarray(predicted, dtype=np.int32),
                    "model_version": np.full(n_rows, model_version, dtype=np.int32),
                }
            )
            written += n_rows

        yield write
    refresh_statistics(connection, written, predictions)
