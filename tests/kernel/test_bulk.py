"""Bulk writes and reads (binary COPY on PostgreSQL, executemany on SQLite), and the stored
predictions read back with a set, on both backends."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, event, exc, func, select, text

from mlops.kernel import bulk, copy_format
from mlops.kernel import datasets as datasets_module
from mlops.kernel.datasets import read_set, read_set_blocks, replace_predictions
from mlops.kernel.db import FEATURE_COLUMNS, datasets, ensure_schema, make_engine, normalize_url, predictions, samples
from mlops.kernel.errors import Conflict
from mlops.simulator.splits import load_split
from mlops.simulator.store import replace_set
from tests.support.sets import load_sets


def load(engine, size=None):
    load_sets(engine, "production", production_size=size)
    with engine.connect() as connection:
        return read_set(connection, "production")


def test_predictions_are_stored_and_read_back_with_the_set(engine, monkeypatch):
    monkeypatch.setattr(copy_format, "COPY_BLOCK_ROWS", 4_000)
    loaded = load(engine, 11_000)
    predicted = (loaded.target.to_numpy() + 1) % 3
    with engine.begin() as connection:
        replace_predictions(connection, loaded.dataset_id, loaded.features.index, predicted, model_version=7)
    with engine.connect() as connection:
        stored = read_set(connection, "production", with_predictions=True)
        versions = connection.execute(select(predictions.c.model_version).distinct()).scalars().all()
    assert stored.prediction.tolist() == predicted.tolist()
    assert stored.prediction.index.equals(stored.features.index)
    assert versions == [7]


def test_a_set_without_predictions_is_a_conflict(engine):
    loaded = load(engine)
    with engine.begin() as connection:
        # only some rows predicted: the set as a whole has not been evaluated
        replace_predictions(connection, loaded.dataset_id, loaded.features.index[:10], np.zeros(10), 1)
    with engine.connect() as connection, pytest.raises(Conflict, match="not evaluated"):
        read_set(connection, "production", with_predictions=True)


def test_predictions_for_a_set_that_is_gone_are_refused(engine):
    loaded = load(engine)
    load(engine)  # reloaded: loaded.dataset_id no longer exists
    with pytest.raises(exc.IntegrityError), engine.begin() as connection:
        replace_predictions(connection, loaded.dataset_id, loaded.features.index, np.zeros(36), 1)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(predictions)).scalar() == 0


def test_predictions_written_a_block_at_a_time_are_one_statement(engine, monkeypatch):
    monkeypatch.setattr(copy_format, "COPY_BLOCK_ROWS", 1_500)
    loaded = load(engine, 10_000)
    predicted = (loaded.target.to_numpy() + 2) % 3
    statements = []
    with engine.begin() as connection:
        spy = lambda *args, **kwargs: statements.append(args[2])  # noqa: E731 (conn, cursor, statement, ...)
        event.listen(engine, "before_cursor_execute", spy)
        try:
            with datasets_module.predictions_writer(connection, loaded.dataset_id, model_version=3) as write:
                for start in range(0, 10_000, 2_500):
                    write(loaded.features.index[start : start + 2_500], predicted[start : start + 2_500])
        finally:
            event.remove(engine, "before_cursor_execute", spy)
    with engine.connect() as connection:
        stored = read_set(connection, "production", with_predictions=True)
    assert stored.prediction.tolist() == predicted.tolist()
    # on SQLite one executemany per block; on PostgreSQL the blocks go through the COPY statement
    # (run on the driver's cursor, which SQLAlchemy does not see), not one statement each
    inserts = [statement for statement in statements if statement.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == (0 if engine.dialect.name == "postgresql" else 4)


def test_an_error_of_the_server_during_a_streamed_write_is_raised_as_sqlalchemys(engine):
    columns = {"dataset_id": np.full(3, 999, dtype=np.int32), "sample_index": np.arange(3, dtype=np.int32)}
    with pytest.raises(exc.IntegrityError), engine.begin() as connection:
        with bulk.columns_writer(connection, predictions, ["dataset_id", "sample_index"]) as write:
            write(columns)
            write(columns)


def test_foreign_keys_are_checked_again_after_a_bulk_write(engine):
    with engine.begin() as connection:
        with bulk.parent_checked_by_caller(connection) as skipped:
            assert skipped == (engine.dialect.name == "postgresql")
        if engine.dialect.name == "postgresql":
            setting = connection.execute(select(func.current_setting("session_replication_role"))).scalar()
            assert setting == "origin"
    with pytest.raises(exc.IntegrityError), engine.begin() as connection:
        bulk.insert_columns(
            connection,
            samples,
            {"dataset_id": np.array([999], dtype=np.int32), "sample_index": np.array([0], dtype=np.int32)},
        )


def test_empty_sets_and_empty_columns(engine):
    with engine.begin() as connection:
        bulk.insert_columns(connection, samples, {"dataset_id": np.empty(0, np.int32)})
    replace_set(
        engine,
        "production",
        pd.DataFrame(columns=load_split("production").features.columns),
        pd.Series([], dtype="int64"),
    )
    with engine.connect() as connection:
        stored = read_set(connection, "production")
    assert stored.features.shape == (0, 13) and stored.target.empty


def test_columns_of_different_lengths_are_refused(engine):
    with engine.begin() as connection, pytest.raises(ValueError, match="different lengths"):
        bulk.insert_columns(
            connection, samples, {"dataset_id": np.zeros(2, np.int32), "sample_index": np.zeros(3, np.int32)}
        )


def test_a_null_in_a_copied_column_is_an_error_not_garbage(postgres_database):
    engine = make_engine(postgres_database())
    ensure_schema(engine)
    load(engine)
    with engine.connect() as connection, pytest.raises(ValueError, match="NULL"):
        bulk.select_columns(connection, select(samples.c.alcohol), {"alcohol": "float64"})
    engine.dispose()


@pytest.mark.parametrize("rows_expected", [0, 10, 5_000, 20_000])
def test_reads_do_not_depend_on_the_expected_row_count(engine, monkeypatch, rows_expected):
    monkeypatch.setattr(copy_format, "DECODE_BYTES", 30_000)
    loaded = load(engine, 5_000)
    query = select(samples.c.sample_index, func.coalesce(samples.c.alcohol, float("nan")).label("alcohol")).order_by(
        samples.c.sample_index
    )
    with engine.connect() as connection:
        arrays = bulk.select_columns(
            connection, query, {"sample_index": "int32", "alcohol": "float64"}, rows=rows_expected
        )
    assert arrays["sample_index"].tolist() == list(range(5_000))
    assert np.array_equal(arrays["alcohol"], loaded.features["alcohol"].to_numpy(), equal_nan=True)


def test_without_the_right_to_skip_checks_the_copy_still_works(postgres_database):
    """A PostgreSQL role that may not set session_replication_role gets the checked COPY."""
    url = postgres_database()
    role = f"mlops_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        connection.execute(text(f'GRANT ALL ON SCHEMA public TO "{role}"'))
    engine = make_engine(url.replace("postgres@", f"{role}@", 1))
    try:
        ensure_schema(engine)
        with engine.begin() as connection, bulk.parent_checked_by_caller(connection) as skipped:
            assert not skipped
        stored = load(engine, 3_000)
        assert len(stored.features) == 3_000
        with engine.connect() as connection:
            assert connection.execute(select(datasets.c.n_samples)).scalar_one() == 3_000
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


@pytest.mark.parametrize("rows_expected", [0, 3_000])
def test_float_columns_come_as_one_block_that_a_frame_takes_without_a_copy(engine, monkeypatch, rows_expected):
    monkeypatch.setattr(copy_format, "DECODE_BYTES", 20_000)  # several blocks, and growth when 0 rows were expected
    loaded = load(engine, 3_000)
    first, second = FEATURE_COLUMNS[:2]
    nan = float("nan")
    query = select(
        samples.c.sample_index,
        func.coalesce(samples.c[first], nan).label(first),
        func.coalesce(samples.c[second], nan).label(second),
    ).order_by(samples.c.sample_index)
    dtypes = {"sample_index": "int32", first: "float64", second: "float64"}
    with engine.connect() as connection:
        columns = bulk.select_columns(connection, query, dtypes, rows=rows_expected)
    assert columns.floats.shape == (3_000, 2) and columns.floats.flags.f_contiguous
    for j, name in enumerate((first, second)):
        assert np.shares_memory(columns[name], columns.floats)
        assert np.array_equal(columns.floats[:, j], loaded.features.iloc[:, j].to_numpy(), equal_nan=True)
    frame = pd.DataFrame(columns.floats, copy=False)
    assert np.shares_memory(frame.to_numpy(), columns.floats)
    # read_set's features are such a frame: one block, no copy of the decoded rows
    assert loaded.features._mgr.nblocks == 1 and loaded.features.to_numpy().flags.f_contiguous


def test_a_set_read_in_blocks_is_the_set_read_whole(engine, monkeypatch):
    monkeypatch.setattr(copy_format, "DECODE_BYTES", 50_000)  # PostgreSQL: a block decoded every ~270 rows
    whole = load(engine, 7_000)
    with engine.begin() as connection:
        replace_predictions(connection, whole.dataset_id, whole.features.index, whole.target.to_numpy() % 2, 1)
    with engine.connect() as connection:
        whole = read_set(connection, "production", with_predictions=True)
        row, blocks = read_set_blocks(connection, "production", 1_000, with_predictions=True)
        blocks = list(blocks)
    assert row.id == whole.dataset_id and row.n_samples == 7_000
    assert len(blocks) >= 7 and all(len(block.target) <= 2_000 for block in blocks)
    assert pd.concat([b.features for b in blocks]).equals(whole.features)
    assert pd.concat([b.target for b in blocks]).equals(whole.target)
    assert pd.concat([b.prediction for b in blocks]).equals(whole.prediction)


def test_reading_a_set_in_blocks_that_is_not_loaded_is_a_409(engine):
    with engine.connect() as connection, pytest.raises(Conflict) as refused:
        read_set_blocks(connection, "testing", 1_000)
    assert refused.value.error == "Set not loaded"
