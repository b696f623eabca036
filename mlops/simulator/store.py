"""Writing a set into the dataset DB: one transaction that replaces the set as a whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Engine, delete, insert, select

from mlops.kernel.db import FEATURE_COLUMNS, FEATURES, datasets, predictions, samples, targets

CHUNK_ROWS = 50_000


def replace_set(engine: Engine, name: str, features: pd.DataFrame, target: pd.Series) -> int:
    """Replace the stored set `name` with these rows in one transaction; return its new id.

    The old set, its targets and any predictions made on it are deleted in the same transaction,
    so readers see either the old set or the new one in full, never a mix or a duplicate.
    """
    with engine.begin() as connection:
        old = connection.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar()
        if old is not None:
            for table in (predictions, targets, samples):
                connection.execute(delete(table).where(table.c.dataset_id == old))
            connection.execute(delete(datasets).where(datasets.c.id == old))
        dataset_id = connection.execute(
            insert(datasets).values(name=name, n_samples=len(target), loaded_at=datetime.now(UTC)).returning(
                datasets.c.id
            )
        ).scalar_one()
        for start in range(0, len(target), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            connection.execute(insert(samples), _sample_rows(dataset_id, features.iloc[start:stop], start))
            connection.execute(insert(targets), _target_rows(dataset_id, target.iloc[start:stop], start))
    return dataset_id


def _sample_rows(dataset_id: int, features: pd.DataFrame, offset: int) -> list[dict]:
    # Missing values become SQL NULL.
    values = features[list(FEATURES)].astype(object).where(features.notna(), None).to_numpy()
    return [
        {"dataset_id": dataset_id, "sample_index": offset + i, **dict(zip(FEATURE_COLUMNS, row, strict=True))}
        for i, row in enumerate(values.tolist())
    ]


def _target_rows(dataset_id: int, target: pd.Series, offset: int) -> list[dict]:
    return [
        {"dataset_id": dataset_id, "sample_index": offset + i, "target": int(t)}
        for i, t in enumerate(target.tolist())
    ]
