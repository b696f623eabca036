"""An older release's dataset database (each class in a `targets` table of its own) is brought to
the current layout (the class in samples.target) at start, on both backends, without losing a row."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import Column, Float, ForeignKey, Integer, MetaData, Table, exc, func, insert, inspect, select, text

from mlops.kernel import schema_upgrades
from mlops.kernel.config import Settings
from mlops.kernel.datasets import read_set
from mlops.kernel.db import (
    FEATURE_COLUMNS,
    datasets,
    ensure_schema,
    make_engine,
    metadata,
    predictions,
    samples,
    set_scenarios,
)
from mlops.kernel.schema_upgrades import UpgradeRefused, move_targets_into_samples, partition_samples
from mlops.kernel.web.state import state_of
from mlops.simulator.app import create_app
from mlops.simulator.splits import load_split
from mlops.simulator.store import replace_set

SETS = {"training": 106, "production": 2_000}


def old_layout() -> MetaData:
    """The tables as the release before samples.target created them."""
    old = MetaData()
    for table in metadata.sorted_tables:
        if table is not samples:
            table.to_metadata(old)
    Table(
        "samples",
        old,
        Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        Column("sample_index", Integer, primary_key=True),
        *(Column(column, Float(precision=53), nullable=True) for column in FEATURE_COLUMNS),
    )
    Table(
        "targets",
        old,
        Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        Column("sample_index", Integer, primary_key=True),
        Column("target", Integer, nullable=False),
    )
    return old


@pytest.fixture
def old_database(db_url):
    """A database in the old layout holding a training and a production set (with NULL features),
    the production set's predictions and scenario; yields its URL and what it holds."""
    return write_old_database(db_url)


def write_old_database(db_url: str) -> tuple[str, dict]:
    """Create the old layout at db_url, fill it as old_database says; return the URL and what it holds."""
    old = old_layout()
    engine = make_engine(db_url)
    old.create_all(engine)
    written = {}
    with engine.begin() as connection:
        for name, size in SETS.items():
            split = load_split(name, size)
            set_id = connection.execute(
                insert(datasets).values(name=name, n_samples=size, loaded_at=datetime.now(UTC)).returning(datasets.c.id)
            ).scalar_one()
            features = split.features.to_numpy()
            connection.execute(
                insert(old.tables["samples"]),
                [
                    {
                        "dataset_id": set_id,
                        "sample_index": i,
                        **{c: (None if np.isnan(v) else float(v)) for c, v in zip(FEATURE_COLUMNS, row, strict=True)},
                    }
                    for i, row in enumerate(features)
                ],
            )
            connection.execute(
                insert(old.tables["targets"]),
                [{"dataset_id": set_id, "sample_index": i, "target": int(t)} for i, t in enumerate(split.target)],
            )
            written[name] = (set_id, split)
        production_id = written["production"][0]
        connection.execute(
            insert(predictions),
            [
                {"dataset_id": production_id, "sample_index": i, "prediction": i % 3, "model_version": 4}
                for i in range(SETS["production"])
            ],
        )
        connection.execute(insert(set_scenarios).values(dataset_id=production_id, seed=7, scenario={"kind": "x"}))
    engine.dispose()
    return db_url, written


def assert_upgraded_with_every_row(url: str, written: dict) -> None:
    engine = make_engine(url)
    try:
        tables = inspect(engine).get_table_names()
        assert "targets" not in tables and "samples_upgraded" not in tables
        target = next(c for c in inspect(engine).get_columns("samples") if c["name"] == "target")
        assert target["nullable"] is False
        with engine.connect() as connection:
            for name, (set_id, split) in written.items():
                stored = read_set(connection, name, with_predictions=name == "production")
                assert stored.dataset_id == set_id
                assert np.array_equal(stored.features.to_numpy(), split.features.to_numpy(), equal_nan=True)
                assert stored.target.tolist() == split.target.tolist()
            assert stored.prediction.tolist() == [i % 3 for i in range(SETS["production"])]
            assert connection.execute(select(set_scenarios.c.seed)).scalar_one() == 7
            nulls = connection.execute(select(func.count()).where(samples.c[FEATURE_COLUMNS[0]].is_(None))).scalar()
            assert nulls == split.features.iloc[:, 0].isna().sum() > 0
    finally:
        engine.dispose()


def test_an_old_database_is_upgraded_at_start_without_losing_a_row(old_database):
    url, written = old_database
    engine = make_engine(url)
    ensure_schema(engine)
    engine.dispose()
    assert_upgraded_with_every_row(url, written)
    # at the next start (and every one after) there is nothing to do
    again = make_engine(url)
    ensure_schema(again)
    move_targets_into_samples(again, samples)
    again.dispose()
    assert_upgraded_with_every_row(url, written)


def test_the_upgraded_table_refuses_a_sample_without_its_class(old_database):
    url, _ = old_database
    engine = make_engine(url)
    ensure_schema(engine)
    with pytest.raises(exc.IntegrityError), engine.begin() as connection:
        set_id = connection.execute(select(datasets.c.id).where(datasets.c.name == "training")).scalar_one()
        connection.execute(insert(samples).values(dataset_id=set_id, sample_index=10_000))
    engine.dispose()


def errors_of_upgrades_at_once(url: str, upgrade) -> list[Exception]:
    """Run upgrade(engine, samples) in three threads at once, as processes starting together
    would, each with its own engine; return what they raised."""
    engines = [make_engine(url) for _ in range(3)]
    errors = []

    def start(engine):
        try:
            upgrade(engine, samples)
        except Exception as error:  # reported by the caller, with the others
            errors.append(error)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in engines:
        engine.dispose()
    return errors


def test_processes_starting_at_once_upgrade_once(old_database):
    url, written = old_database
    assert not errors_of_upgrades_at_once(url, move_targets_into_samples)
    assert_upgraded_with_every_row(url, written)


def test_a_sample_without_its_class_stops_the_upgrade_and_changes_nothing(old_database):
    url, _ = old_database
    old = old_layout()
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(old.tables["targets"].delete().where(old.tables["targets"].c.sample_index == 5))
    with pytest.raises(UpgradeRefused, match="2 samples have no class and 0 classes have no sample"):
        ensure_schema(engine)
    tables = inspect(engine).get_table_names()
    assert "targets" in tables and "samples_upgraded" not in tables
    assert "target" not in {c["name"] for c in inspect(engine).get_columns("samples")}
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(old.tables["samples"])).scalar() == sum(
            SETS.values()
        )
        assert (
            connection.execute(select(func.count()).select_from(old.tables["targets"])).scalar()
            == sum(SETS.values()) - 2
        )
    engine.dispose()


def test_a_service_on_a_database_it_cannot_upgrade_answers_503_saying_why(old_database, tmp_path):
    url, _ = old_database
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(old_layout().tables["targets"].delete().where(text("sample_index = 5")))
    engine.dispose()
    app = create_app(Settings(data_dir=tmp_path, dataset_db_url=url))
    with app.test_client() as client:
        response = client.get("/root/simulator")
    state_of(app).dispose()
    assert response.status_code == 503
    assert response.get_json()["error"] == "Database upgrade refused"
    assert "2 samples have no class" in response.get_json()["message"]


def test_an_empty_targets_table_left_by_an_older_release_is_dropped(engine):
    """A newer release ran, then an older one re-created its (empty) targets table: the classes
    already in samples stay."""
    split = load_split("training")
    replace_set(engine, "training", split.features, split.target)
    old_layout().tables["targets"].create(engine)
    move_targets_into_samples(engine, samples)
    assert "targets" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert read_set(connection, "training").target.tolist() == split.target.tolist()


def test_an_upgrade_that_dies_midway_leaves_the_old_layout_whole(old_database, monkeypatch):
    url, written = old_database
    engine = make_engine(url)
    move = (
        schema_upgrades._add_and_fill_target_column
        if engine.dialect.name == "postgresql"
        else schema_upgrades._rebuild_samples_with_target
    )

    def move_then_die(connection, table):
        move(connection, table)
        raise RuntimeError("the process died here")

    monkeypatch.setattr(schema_upgrades, move.__name__, move_then_die)
    with pytest.raises(RuntimeError, match="died here"):
        move_targets_into_samples(engine, samples)
    tables = inspect(engine).get_table_names()
    assert "targets" in tables and "samples_upgraded" not in tables
    assert "target" not in {c["name"] for c in inspect(engine).get_columns("samples")}
    monkeypatch.undo()
    ensure_schema(engine)
    engine.dispose()
    assert_upgraded_with_every_row(url, written)


def samples_layout(url: str) -> tuple[str, list[str]]:
    """PostgreSQL: samples' kind ('r' plain, 'p' partitioned) and the tables named as its partitions."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            kind = connection.execute(text("SELECT relkind FROM pg_class WHERE relname = 'samples'")).scalar_one()
            parts = connection.execute(
                text("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^samples_' ORDER BY 1")
            ).scalars()
            return kind, list(parts)
    finally:
        engine.dispose()


@pytest.fixture
def plain_samples_database(postgres_database):
    """PostgreSQL: a database as the release before a partition per set left it (the classes in
    samples already, one plain samples table)."""
    url, written = write_old_database(postgres_database())
    engine = make_engine(url)
    move_targets_into_samples(engine, samples)
    engine.dispose()
    assert samples_layout(url) == ("r", [])
    return url, written


def test_a_plain_samples_table_becomes_a_partition_per_set_without_losing_a_row(plain_samples_database):
    url, written = plain_samples_database
    engine = make_engine(url)
    ensure_schema(engine)
    engine.dispose()
    assert samples_layout(url) == ("p", sorted(f"samples_{set_id}" for set_id, _ in written.values()))
    assert_upgraded_with_every_row(url, written)
    # a reload after the upgrade replaces its set's partition
    engine = make_engine(url)
    split = load_split("training")
    new_id = replace_set(engine, "training", split.features, split.target)
    engine.dispose()
    assert samples_layout(url) == ("p", sorted([f"samples_{new_id}", f"samples_{written['production'][0]}"]))


def test_processes_starting_at_once_partition_once(plain_samples_database):
    url, written = plain_samples_database
    assert not errors_of_upgrades_at_once(url, partition_samples)
    assert samples_layout(url)[0] == "p"
    assert_upgraded_with_every_row(url, written)


def test_partitioning_that_dies_midway_leaves_the_plain_table_whole(plain_samples_database, monkeypatch):
    url, written = plain_samples_database
    attached = []

    def attach_then_die(connection, table, partition, dataset_id):
        schema_upgrades_attach(connection, table, partition, dataset_id)
        attached.append(dataset_id)
        if len(attached) == 2:
            raise RuntimeError("the process died here")

    schema_upgrades_attach = schema_upgrades.attach_partition
    monkeypatch.setattr(schema_upgrades, "attach_partition", attach_then_die)
    engine = make_engine(url)
    with pytest.raises(RuntimeError, match="died here"):
        partition_samples(engine, samples)
    assert samples_layout(url) == ("r", [])
    monkeypatch.undo()
    partition_samples(engine, samples)
    engine.dispose()
    assert samples_layout(url)[0] == "p"
    assert_upgraded_with_every_row(url, written)
