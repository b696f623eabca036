"""Writing big sets: the binary COPY path on PostgreSQL gives exactly the rows executemany gives on
SQLite, NULLs included, in one transaction that replaces the set."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from mlops.kernel import copy_format
from mlops.kernel.datasets import read_set, replace_predictions
from mlops.kernel.db import (
    FEATURE_COLUMNS,
    FEATURES,
    datasets,
    ensure_schema,
    make_engine,
    predictions,
    samples,
)
from mlops.simulator.splits import MISSING_FRACTION, load_split
from mlops.simulator.store import replace_set, replace_set_blocks


@pytest.fixture
def small_copy_blocks(monkeypatch):
    """Encode and decode COPY streams in small blocks, so a test set spans several of them."""
    monkeypatch.setattr(copy_format, "COPY_BLOCK_ROWS", 3_000)
    monkeypatch.setattr(copy_format, "DECODE_BYTES", 50_000)


def null_counts(connection) -> list[int]:
    return [
        connection.execute(select(func.count()).where(samples.c[column].is_(None))).scalar()
        for column in FEATURE_COLUMNS
    ]


def test_a_resampled_set_round_trips_exactly(engine, small_copy_blocks):
    split = load_split("production", 12_345)
    replace_set(engine, "production", split.features, split.target)
    with engine.connect() as connection:
        stored = read_set(connection, "production")
        # missing values are SQL NULLs, not NaN floats (PostgreSQL would keep a NaN as a number)
        assert null_counts(connection) == split.features.isna().sum().tolist()
    assert stored.features.index.tolist() == list(range(12_345))
    assert stored.features.reset_index(drop=True).equals(split.features)
    assert stored.target.reset_index(drop=True).equals(split.target)


def test_sqlite_and_postgresql_store_the_same_rows(tmp_path, postgres_database, small_copy_blocks):
    split = load_split("production", 7_000)
    stored = []
    for url in (f"sqlite:///{tmp_path / 'dataset.db'}", postgres_database()):
        engine = make_engine(url)
        ensure_schema(engine)
        replace_set(engine, "production", split.features, split.target)
        with engine.connect() as connection:
            stored.append((read_set(connection, "production"), null_counts(connection)))
        engine.dispose()
    (on_sqlite, sqlite_nulls), (on_postgresql, postgresql_nulls) = stored
    assert on_sqlite.features.equals(on_postgresql.features)
    assert on_sqlite.target.equals(on_postgresql.target)
    assert sqlite_nulls == postgresql_nulls == [round(MISSING_FRACTION * 7_000)] * len(FEATURES)


def test_replacing_a_big_set_drops_its_rows_and_predictions(engine, small_copy_blocks):
    big = load_split("production", 10_000)
    replace_set(engine, "production", big.features, big.target)
    with engine.begin() as connection:
        loaded = read_set(connection, "production")
        replace_predictions(connection, loaded.dataset_id, loaded.features.index, loaded.target.to_numpy(), 1)
    small = load_split("production")
    replace_set(engine, "production", small.features, small.target)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(samples)).scalar() == 36
        assert connection.execute(select(func.count()).select_from(predictions)).scalar() == 0
        assert connection.execute(select(datasets.c.n_samples)).scalar_one() == 36


def test_a_load_that_fails_midway_leaves_the_old_set(engine):
    small = load_split("production")
    replace_set(engine, "production", small.features, small.target)
    with engine.connect() as connection:
        before = read_set(connection, "production")
    big = load_split("production", 5_000)

    def die_after_the_first_block():
        yield big.features.iloc[:2_500], big.target.iloc[:2_500]
        raise RuntimeError("the process died here")

    with pytest.raises(RuntimeError):
        replace_set_blocks(engine, "production", 5_000, die_after_the_first_block)
    with engine.connect() as connection:
        after = read_set(connection, "production")
        assert connection.execute(select(func.count()).select_from(samples)).scalar() == 36
    assert after.dataset_id == before.dataset_id
    assert after.features.equals(before.features)


def test_resampling_is_seeded_and_keeps_the_fouling():
    first, again = load_split("production", 20_000), load_split("production", 20_000)
    assert first.features.equals(again.features) and first.target.equals(again.target)
    assert len(first.features) == len(first.target) == 20_000
    assert first.features.isna().sum().tolist() == [600] * len(FEATURES)
    # resampled from production's 36 rows: its three classes in about its proportions
    production = load_split("production")
    expected = production.target.value_counts(normalize=True).sort_index()
    observed = first.target.value_counts(normalize=True).sort_index()
    assert np.allclose(observed, expected, atol=0.02)
    # the same noise and shift: the big set drifts from the clean rows as the small one does
    clean = load_split("testing").features.mean()
    assert (first.features.mean() > clean).sum() >= 10
    # a different size is a different sample, not a prefix of the same one
    assert not load_split("production", 1_000).features.equals(first.features.iloc[:1_000])


def test_concurrent_loads_of_the_same_set_end_with_it_loaded_once(engine):
    """Six loads of one set at once: none fails, and the set is stored once, whole."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from mlops.kernel.db import datasets, samples
    from mlops.simulator.splits import load_split
    from mlops.simulator.store import replace_set

    split = load_split("testing")
    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(lambda _: replace_set(engine, "testing", split.features, split.target), range(6)))
    assert len(set(ids)) == 6
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(datasets)).scalar() == 1
        assert connection.execute(select(func.count()).select_from(samples)).scalar() == 36
        assert connection.execute(select(datasets.c.id)).scalar() in ids
