"""On PostgreSQL each version of a set lives in a partition of its own: a load attaches it whole,
and the version it replaces is detached and dropped once the load has committed, without making
reads of any set wait and without ever losing the rows a reader is still reading."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from mlops.kernel import set_partitions
from mlops.kernel.datasets import dataset_row, read_set
from mlops.kernel.db import datasets, ensure_schema, make_engine, samples
from mlops.kernel.set_partitions import attach_partition, drop_replaced_partitions, new_partition
from mlops.simulator.splits import load_split
from mlops.simulator.store import replace_set


@pytest.fixture
def pg_engine(postgres_database):
    engine = make_engine(postgres_database())
    ensure_schema(engine)
    yield engine
    engine.dispose()


def load(engine, name: str, size: int | None = None) -> int:
    split = load_split(name, size)
    return replace_set(engine, name, split.features, split.target)


def sample_tables(engine) -> dict[str, str]:
    """Every table named as a partition of samples: 'attached', 'detaching' or 'standalone'."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                """
                SELECT c.relname, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false)
                FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
                WHERE c.relkind = 'r' AND c.relname ~ '^samples_[0-9]+$'
                """
            )
        ).all()
    return {
        name: ("detaching" if pending else "attached") if attached else "standalone" for name, attached, pending in rows
    }


def test_each_loaded_version_is_a_partition_and_a_replaced_one_is_dropped(pg_engine):
    training = load(pg_engine, "training")
    first = load(pg_engine, "production", 5_000)
    assert sample_tables(pg_engine) == {f"samples_{training}": "attached", f"samples_{first}": "attached"}
    second = load(pg_engine, "production")
    assert sample_tables(pg_engine) == {f"samples_{training}": "attached", f"samples_{second}": "attached"}
    with pg_engine.connect() as connection:
        assert len(read_set(connection, "production").target) == 36
        assert len(read_set(connection, "training").target) == 106
        # a read of one version touches its partition only
        plan = connection.execute(text(f"EXPLAIN SELECT * FROM samples WHERE dataset_id = {second}")).scalars().all()
    assert f"samples_{second}" in "\n".join(plan) and f"samples_{training}" not in "\n".join(plan)


def test_a_version_still_being_read_is_dropped_by_a_later_load(pg_engine, monkeypatch):
    """A reader whose transaction read the old version before a reload holds that partition: the
    reload still answers, giving up the drop after DROP_LOCK_TIMEOUT (the reader's next statement
    sees the old version whole or, once detached, not at all), and a later load drops it."""
    monkeypatch.setattr(set_partitions, "DROP_LOCK_TIMEOUT", "300ms")
    old = load(pg_engine, "production", 3_000)
    reader = pg_engine.connect()
    try:
        before = read_set(reader, "production")  # the reader's transaction stays open
        new = load(pg_engine, "production")
        assert sample_tables(pg_engine)[f"samples_{old}"] in ("attached", "detaching")
        again = reader.execute(text(f"SELECT count(*) FROM samples WHERE dataset_id = {old}")).scalar()
        assert len(before.target) == 3_000 and again in (0, 3_000)
    finally:
        reader.close()
    training = load(pg_engine, "training")
    assert sample_tables(pg_engine) == {f"samples_{new}": "attached", f"samples_{training}": "attached"}


def test_a_partition_left_by_a_load_that_stopped_is_dropped_by_the_next(pg_engine):
    load(pg_engine, "training")
    with pg_engine.begin() as connection:  # attached, committed, and its datasets row never written
        stray = new_partition(connection, samples, 999)
        attach_partition(connection, samples, stray, 999)
    with pg_engine.begin() as connection:  # created and never attached
        new_partition(connection, samples, 998)
    assert {"samples_999", "samples_998"} <= set(sample_tables(pg_engine))
    testing = load(pg_engine, "testing")
    tables = sample_tables(pg_engine)
    assert "samples_999" not in tables and "samples_998" not in tables
    assert tables[f"samples_{testing}"] == "attached"


def test_loads_of_every_set_at_once_leave_one_partition_each(pg_engine):
    names = ["training", "testing", "production"] * 3
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda name: load(pg_engine, name), names))
    drop_replaced_partitions(pg_engine, samples, datasets)  # one may have given up waiting for another
    with pg_engine.connect() as connection:
        ids = {dataset_row(connection, name).id for name in ("training", "testing", "production")}
        sizes = {name: len(read_set(connection, name).target) for name in ("training", "testing", "production")}
    assert sample_tables(pg_engine) == {f"samples_{i}": "attached" for i in ids}
    assert sizes == {"training": 106, "testing": 36, "production": 36}


def test_reads_of_other_sets_go_on_while_a_replaced_version_is_dropped(pg_engine):
    """Detaching the old version waits for the reads of that version only: a read of another set
    that starts while the drop waits is answered at once."""
    load(pg_engine, "training")
    old = load(pg_engine, "production", 3_000)
    reader = pg_engine.connect()
    read_set(reader, "production")  # holds the old version until it ends
    loaded = threading.Thread(target=load, args=(pg_engine, "production"))
    loaded.start()
    try:
        # wait until the reload waits on the reader (its detach of the old version); a connection
        # each time, since a transaction sees one snapshot of pg_stat_activity
        for _ in range(200):
            with pg_engine.connect() as watcher:
                waiting = watcher.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'virtualxid' AND query ~ 'DETACH'")
                ).scalar()
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the reload never waited for the reader"
        with pg_engine.connect() as other:
            other.execute(text("SET lock_timeout = '2s'"))
            assert len(read_set(other, "training").target) == 106
    finally:
        reader.close()
        loaded.join(timeout=30)
    assert f"samples_{old}" not in sample_tables(pg_engine)


def test_a_loaded_version_is_written_frozen(pg_engine):
    """Its rows need no second pass: every page is all-visible as the load leaves it (COPY FREEZE
    into the table the load created), so neither the first read nor autovacuum rewrites them."""
    set_id = load(pg_engine, "production", 30_000)  # above ANALYZE_MIN_ROWS: the load's ANALYZE counts the pages
    with pg_engine.connect() as connection:
        pages, all_visible = connection.execute(
            text(f"SELECT relpages, relallvisible FROM pg_class WHERE relname = 'samples_{set_id}'")
        ).one()
    assert pages > 0 and all_visible == pages
