"""Writing a set into the dataset DB: one transaction that replaces the set as a whole."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, insert, select

from mlops.kernel.bulk import insert_columns, parent_checked_by_caller, refresh_statistics
from mlops.kernel.db import FEATURE_COLUMNS, FEATURES, datasets, predictions, samples, targets

# Below this many rows the planner's estimates hardly matter and ANALYZE would cost more than it saves.
ANALYZE_MIN_ROWS = 10_000


def replace_set(engine: Engine, name: str, features: pd.DataFrame, target: pd.Series) -> int:
    """Replace the stored set `name` with these rows in one transaction; return its new id.

    The old set, its targets and any predictions made on it are deleted in the same transaction,
    so readers see either the old set or the new one in full, never a mix or a duplicate.
    Missing values are stored as SQL NULL. On PostgreSQL the rows go in by binary COPY.
    """
    n_rows = len(target)
    sample_index = np.arange(n_rows, dtype=np.int32)
    with engine.begin() as connection:
        old = connection.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar()
        if old is not None:
            for table in (predictions, targets, samples):
                connection.execute(delete(table).where(table.c.dataset_id == old))
            connection.execute(delete(datasets).where(datasets.c.id == old))
        dataset_id = connection.execute(
            insert(datasets)
            .values(name=name, n_samples=n_rows, loaded_at=datetime.now(UTC))
            .returning(datasets.c.id)
        ).scalar_one()
        set_id = np.full(n_rows, dataset_id, dtype=np.int32)
        # This transaction inserted the parent datasets row: every row below refers to it.
        with parent_checked_by_caller(connection):
            insert_columns(
                connection,
                samples,
                {
                    "dataset_id": set_id,
                    "sample_index": sample_index,
                    **{
                        column: features[feature].to_numpy(dtype=np.float64)
                        for feature, column in zip(FEATURES, FEATURE_COLUMNS, strict=True)
                    },
                },
            )
            insert_columns(
                connection,
                targets,
                {"dataset_id": set_id, "sample_index": sample_index, "target": target.to_numpy(dtype=np.int32)},
            )
        if n_rows >= ANALYZE_MIN_ROWS:
            refresh_statistics(connection, samples, targets)
    return dataset_id
