"""Writing a set into the dataset DB: one transaction that replaces the set as a whole."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, exc, func, insert, select

from mlops.kernel.bulk import columns_writer, is_postgresql, refresh_statistics
from mlops.kernel.db import (
    FEATURE_COLUMNS,
    FEATURES,
    SET_NAMES,
    datasets,
    predictions,
    samples,
    set_scenarios,
)
from mlops.kernel.read_ahead import read_ahead
from mlops.kernel.set_partitions import attach_partition, drop_replaced_partitions, new_partition

log = logging.getLogger(__name__)

LOAD_ATTEMPTS = 10
# pg_advisory_xact_lock's first key for "loads of a set" (the second is the set's position in SET_NAMES).
LOAD_LOCK = 0x6D6C6C64


def replace_set(
    engine: Engine,
    name: str,
    features: pd.DataFrame,
    target: pd.Series,
    *,
    seed: int | None = None,
    scenario: dict[str, Any] | None = None,
) -> int:
    """Replace the stored set `name` with these rows in one transaction; return its new id."""
    return replace_set_blocks(engine, name, len(target), lambda: [(features, target)], seed=seed, scenario=scenario)


def replace_set_blocks(
    engine: Engine,
    name: str,
    n_rows: int,
    blocks: Callable[[], Iterable[tuple[pd.DataFrame, pd.Series]]],
    *,
    seed: int | None = None,
    scenario: dict[str, Any] | None = None,
) -> int:
    """Replace the stored set `name` with n_rows rows, written as blocks() yields them (features,
    target) in one transaction, so that a set of any size is written in constant memory; return
    its new id. (blocks is called again if the load has to start over.)

    Two loads of the same set at once take turns: on PostgreSQL through a per-set advisory lock,
    on SQLite through its single writer; one that still loses a race for the set's name starts
    again and replaces the winner's rows. The set ends up loaded once, never duplicated, never a 500.
    A seed or scenario given is stored with the set (its ground truth), in the same transaction.
    """
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        try:
            dataset_id = _replace_set_once(engine, name, n_rows, blocks(), seed, scenario)
        except (exc.IntegrityError, exc.OperationalError) as error:
            if attempt == LOAD_ATTEMPTS or not _lost_a_race(engine, error):
                raise
            log.info("load of the %s set raced another load (%s); starting again", name, type(error).__name__)
            time.sleep(0.05 * attempt)
            continue
        _drop_replaced_samples(engine)
        return dataset_id
    raise AssertionError("unreachable")


def _lost_a_race(engine: Engine, error: exc.DBAPIError) -> bool:
    """Whether error means another transaction wrote the same set first (worth starting again)."""
    if isinstance(error, exc.IntegrityError):
        return True
    # SQLite: a write after another writer committed ("database is locked" / snapshot busy).
    return engine.dialect.name == "sqlite" and "locked" in str(error.orig).lower()


def _replace_set_once(
    engine: Engine,
    name: str,
    n_rows: int,
    blocks: Iterable[tuple[pd.DataFrame, pd.Series]],
    seed: int | None,
    scenario: dict[str, Any] | None,
) -> int:
    """Replace the stored set `name` with the blocks' rows in one transaction; return its new id.

    The old set, its scenario and any predictions made on it are deleted in the same transaction,
    so readers see either the old set or the new one in full, never a mix or a duplicate.
    Missing values are stored as SQL NULL. On PostgreSQL the rows go in by binary COPY, into a
    partition of their own attached before the commit; the old version's partition, no longer
    seen by new reads once this commits, is dropped afterwards (mlops.kernel.set_partitions).
    """
    with engine.begin() as connection:
        partitioned = is_postgresql(connection)
        if partitioned:
            connection.execute(select(func.pg_advisory_xact_lock(LOAD_LOCK, SET_NAMES.index(name))))
        old = connection.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar()
        if old is not None:
            # On PostgreSQL the old samples are a partition, dropped whole once this commits.
            for table in (predictions, set_scenarios) if partitioned else (predictions, samples, set_scenarios):
                connection.execute(delete(table).where(table.c.dataset_id == old))
            connection.execute(delete(datasets).where(datasets.c.id == old))
        dataset_id = connection.execute(
            insert(datasets).values(name=name, n_samples=n_rows, loaded_at=datetime.now(UTC)).returning(datasets.c.id)
        ).scalar_one()
        if seed is not None or scenario is not None:
            connection.execute(insert(set_scenarios).values(dataset_id=dataset_id, seed=seed, scenario=scenario))
        written_into = new_partition(connection, samples, dataset_id) if partitioned else samples
        written = 0
        with (
            columns_writer(connection, written_into, samples.columns.keys(), frozen=partitioned) as write,
            read_ahead(blocks, name="load-blocks") as blocks_made,
        ):
            for features, target in blocks_made:
                write(_block_columns(dataset_id, written, features, target))
                written += len(target)
        if written != n_rows:
            raise ValueError(f"the {name} set was announced with {n_rows} rows but {written} came")
        refresh_statistics(connection, n_rows, written_into)
        if partitioned:
            attach_partition(connection, samples, written_into, dataset_id)
    return dataset_id


def _drop_replaced_samples(engine: Engine) -> None:
    """Drop the samples of the versions a load replaced (PostgreSQL). The load has committed: a
    database that stops answering now leaves them to the next load, and the load still succeeded."""
    try:
        drop_replaced_partitions(engine, samples, datasets)
    except (exc.OperationalError, exc.InterfaceError) as error:
        log.warning("the replaced samples stay until the next load: %s", error)


def _block_columns(
    dataset_id: int, first_index: int, features: pd.DataFrame, target: pd.Series
) -> dict[str, np.ndarray]:
    """One block of a set's rows, numbered from first_index, as the samples table's columns."""
    n_rows = len(target)
    return {
        "dataset_id": np.full(n_rows, dataset_id, dtype=np.int32),
        "sample_index": np.arange(first_index, first_index + n_rows, dtype=np.int32),
        **{
            column: features[feature].to_numpy(dtype=np.float64)
            for feature, column in zip(FEATURES, FEATURE_COLUMNS, strict=True)
        },
        "target": target.to_numpy(dtype=np.int32),
    }


def loaded_sets(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each loaded set: its version, size, load time, and the seed and scenario it was drawn with (or null)."""
    query = (
        select(datasets, set_scenarios.c.seed, set_scenarios.c.scenario)
        .outerjoin(set_scenarios, set_scenarios.c.dataset_id == datasets.c.id)
        .order_by(datasets.c.id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return {
        row.name: {
            "dataset_id": row.id,
            "rows": row.n_samples,
            "loaded_at": row.loaded_at.isoformat(),
            "seed": row.seed,
            "scenario": row.scenario,
        }
        for row in rows
    }
