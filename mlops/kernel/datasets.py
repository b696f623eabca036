"""Reading the sets the simulator loaded, and the predictions the ML service stored.

Each read is one SELECT joining a set's samples with its targets (and predictions), so it sees
one consistent version of the set even while the simulator reloads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, delete, insert, select

from mlops.kernel.db import FEATURE_COLUMNS, FEATURES, datasets, predictions, samples, targets
from mlops.kernel.errors import Conflict

LOAD_HINT = 'POST /root/simulator {{"set_name": "{name}"}}'


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


def read_set(connection: Connection, name: str, *, with_predictions: bool = False) -> LoadedSet:
    """Read a loaded set in one statement; a set not loaded yet is a 409 saying how to load it."""
    row = dataset_row(connection, name)
    if row is None:
        raise Conflict(
            f"The {name} set is not loaded yet: load it first with " + LOAD_HINT.format(name=name),
            error="Set not loaded",
        )
    columns = [samples.c.sample_index, *(samples.c[c] for c in FEATURE_COLUMNS), targets.c.target]
    query = select(*columns).select_from(
        samples.join(
            targets,
            and_(targets.c.dataset_id == samples.c.dataset_id, targets.c.sample_index == samples.c.sample_index),
        )
    )
    if with_predictions:
        query = query.add_columns(predictions.c.prediction).outerjoin(
            predictions,
            and_(
                predictions.c.dataset_id == samples.c.dataset_id,
                predictions.c.sample_index == samples.c.sample_index,
            ),
        )
    query = query.where(samples.c.dataset_id == row.id).order_by(samples.c.sample_index)
    result = connection.execute(query)
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if frame.empty:
        frame = pd.DataFrame(columns=list(result.keys()))
    frame = frame.set_index("sample_index")
    features = frame[list(FEATURE_COLUMNS)].astype("float64")
    features.columns = list(FEATURES)
    prediction = None
    if with_predictions:
        prediction = frame["prediction"]
        if prediction.isna().any():
            raise Conflict(
                f"The ML service has not evaluated the current {name} set yet: run "
                f'POST /root/ml {{"dataset": "{name}"}} first',
                error="Predictions missing",
            )
        prediction = prediction.astype("int64")
    return LoadedSet(
        name=name,
        dataset_id=row.id,
        loaded_at=row.loaded_at,
        features=features,
        target=frame["target"].astype("int64"),
        prediction=prediction,
    )


def replace_predictions(
    connection: Connection, dataset_id: int, sample_index: pd.Index, predicted: np.ndarray, model_version: int
) -> None:
    """Store the predictions for one version of a set, replacing earlier ones for it."""
    connection.execute(delete(predictions).where(predictions.c.dataset_id == dataset_id))
    rows = [
        {"dataset_id": dataset_id, "sample_index": int(i), "prediction": int(p), "model_version": model_version}
        for i, p in zip(sample_index, predicted, strict=True)
    ]
    if rows:
        connection.execute(insert(predictions), rows)
