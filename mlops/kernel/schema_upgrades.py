"""Bringing a dataset database that an older release created up to the current schema, in place
and without losing a row. Each upgrade runs at every start (mlops.kernel.db.ensure_schema), does
nothing on a database that does not need it, and does its work in one transaction: a failure
leaves the database as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    column,
    exc,
    exists,
    func,
    insert,
    inspect,
    select,
    table,
    text,
)

from mlops.kernel.errors import Unavailable
from mlops.kernel.set_partitions import attach_partition, new_partition

log = logging.getLogger(__name__)

# Where releases before the samples' `target` column kept each sample's true class.
OLD_TARGETS = table("targets", column("dataset_id"), column("sample_index"), column("target"))
# What the samples table of releases before a partition per set is renamed to while its rows move.
UNPARTITIONED_SUFFIX = "_unpartitioned"
# pg_advisory_xact_lock's key for "upgrading the schema": processes starting at once take turns.
UPGRADE_LOCK = 0x6D6C7567
# SQLite lets one writer in at a time: a process that finds another one upgrading waits this
# long between looks, and this many times.
SQLITE_WAIT_S = 0.2
SQLITE_ATTEMPTS = 150


class UpgradeRefused(Unavailable):
    """The stored rows do not fit the new layout; the database was left as it was. Every request
    that needs the database answers this (a 503 saying why) until someone repairs the rows."""

    error = "Database upgrade refused"


def move_targets_into_samples(engine: Engine, samples: Table) -> None:
    """Move the classes of an older database's `targets` table into `samples.target`, then drop
    `targets`. Every sample must have exactly one class and every class its sample (the old
    release wrote both in one transaction); otherwise UpgradeRefused, and nothing changes.
    """
    for attempt in range(1, SQLITE_ATTEMPTS + 1):
        if not inspect(engine).has_table(OLD_TARGETS.name):
            return
        try:
            started = time.perf_counter()
            with _upgrade_transaction(engine) as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(select(func.pg_advisory_xact_lock(UPGRADE_LOCK)))
                if not inspect(connection).has_table(OLD_TARGETS.name):
                    return  # another process moved them while we waited for the lock
                rows = _check_one_class_per_sample(connection, samples)
                if connection.dialect.name == "postgresql":
                    _add_and_fill_target_column(connection, samples)
                else:
                    _rebuild_samples_with_target(connection, samples)
                connection.execute(text(f"DROP TABLE {OLD_TARGETS.name}"))
            log.info("moved %d classes from targets into samples.target in %.1f s", rows, time.perf_counter() - started)
            return
        except exc.OperationalError as error:
            # SQLite: another process is upgrading (the database is locked past the busy timeout); look again.
            if engine.dialect.name != "sqlite" or "locked" not in str(error.orig).lower() or attempt == SQLITE_ATTEMPTS:
                raise
            time.sleep(SQLITE_WAIT_S)


@contextmanager
def _upgrade_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for the whole upgrade, its DDL included, committed if the
    block ends well. Python's sqlite3 would commit each CREATE / DROP on its own (it begins a
    transaction only before INSERT, UPDATE or DELETE): on SQLite the transaction is begun
    explicitly, IMMEDIATE, so that it also holds the write lock from the start."""
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                yield connection
            return
        driver = connection.connection.driver_connection
        implicit_begin = driver.isolation_level
        driver.isolation_level = None  # no implicit BEGIN / COMMIT around statements
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
        finally:
            driver.isolation_level = implicit_begin


def _has_target_column(connection, samples: Table) -> bool:
    """Whether samples has its target column already (a newer release ran, then an older one
    re-created an empty `targets`)."""
    return any(c["name"] == "target" for c in inspect(connection).get_columns(samples.name))


def _same_sample(samples_table, targets_table):
    return and_(
        targets_table.c.dataset_id == samples_table.c.dataset_id,
        targets_table.c.sample_index == samples_table.c.sample_index,
    )


def _check_one_class_per_sample(connection, samples: Table) -> int:
    """The number of classes to move; UpgradeRefused if a sample has none or a class no sample."""
    old_samples = table(samples.name, column("dataset_id"), column("sample_index"), column("target"))
    without_class = ~exists().where(_same_sample(old_samples, OLD_TARGETS))
    if _has_target_column(connection, samples):
        without_class = and_(without_class, old_samples.c.target.is_(None))
    missing = connection.execute(select(func.count()).select_from(old_samples).where(without_class)).scalar_one()
    stray = connection.execute(
        select(func.count()).select_from(OLD_TARGETS).where(~exists().where(_same_sample(old_samples, OLD_TARGETS)))
    ).scalar_one()
    if missing or stray:
        raise UpgradeRefused(
            f"cannot move the classes of the targets table into samples: {missing} samples have no class "
            f"and {stray} classes have no sample; the database was left as it was"
        )
    return connection.execute(select(func.count()).select_from(OLD_TARGETS)).scalar_one()


def _add_and_fill_target_column(connection, samples: Table) -> None:
    """PostgreSQL: add the column, fill it from targets in one statement, then make it NOT NULL."""
    if not _has_target_column(connection, samples):
        connection.execute(text(f"ALTER TABLE {samples.name} ADD COLUMN target INTEGER"))
    filled = table(samples.name, column("dataset_id"), column("sample_index"), column("target"))
    connection.execute(filled.update().values(target=OLD_TARGETS.c.target).where(_same_sample(filled, OLD_TARGETS)))
    connection.execute(text(f"ALTER TABLE {samples.name} ALTER COLUMN target SET NOT NULL"))


def _rebuild_samples_with_target(connection, samples: Table) -> None:
    """SQLite, which cannot add a NOT NULL column without a default: copy the rows with their
    class into a new table of the current layout, drop the old one and give the new one its name
    (SQLite's own recipe for changing a table)."""
    layout = MetaData()
    for parent in samples.metadata.tables.values():  # the tables its foreign keys name
        parent.to_metadata(layout)
    upgraded = samples.to_metadata(layout, name=f"{samples.name}_upgraded")
    upgraded.create(connection)
    features = [c.name for c in samples.columns if c.name != "target"]
    old_samples = table(samples.name, *(column(name) for name in features), column("target"))
    target = OLD_TARGETS.c.target
    if _has_target_column(connection, samples):
        target = func.coalesce(OLD_TARGETS.c.target, old_samples.c.target)
    rows = select(*(old_samples.c[name] for name in features), target).select_from(
        old_samples.outerjoin(OLD_TARGETS, _same_sample(old_samples, OLD_TARGETS))
    )
    connection.execute(insert(upgraded).from_select([*features, "target"], rows))
    connection.execute(text(f"DROP TABLE {samples.name}"))
    connection.execute(text(f"ALTER TABLE {upgraded.name} RENAME TO {samples.name}"))


def partition_samples(engine: Engine, samples: Table) -> None:
    """PostgreSQL: move the rows of an older release's plain samples table into a partition per
    set version (mlops.kernel.set_partitions), in one transaction, then drop the plain table."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        if not _is_plain_table(connection, samples):
            return
    started = time.perf_counter()
    with _upgrade_transaction(engine) as connection:
        connection.execute(select(func.pg_advisory_xact_lock(UPGRADE_LOCK)))
        if not _is_plain_table(connection, samples):
            return  # another process did it while we waited for the lock
        old_name = samples.name + UNPARTITIONED_SUFFIX
        connection.execute(text(f'ALTER TABLE "{samples.name}" RENAME TO "{old_name}"'))
        key = inspect(connection).get_pk_constraint(old_name)["name"]
        # the new table's key index takes the old one's name
        connection.execute(text(f'ALTER TABLE "{old_name}" RENAME CONSTRAINT "{key}" TO "{old_name}_pkey"'))
        samples.create(connection)
        columns = ", ".join(f'"{c.name}"' for c in samples.columns)
        versions = connection.execute(text(f'SELECT DISTINCT dataset_id FROM "{old_name}" ORDER BY 1')).scalars().all()
        rows = 0
        for dataset_id in versions:
            partition = new_partition(connection, samples, dataset_id)
            rows += connection.execute(
                text(
                    f'INSERT INTO "{partition.name}" ({columns}) SELECT {columns} FROM "{old_name}" '
                    f"WHERE dataset_id = :dataset_id ORDER BY sample_index"
                ),
                {"dataset_id": dataset_id},
            ).rowcount
            attach_partition(connection, samples, partition, dataset_id)
        connection.execute(text(f'DROP TABLE "{old_name}"'))
    log.info(
        "moved %d samples of %d set versions into a partition each in %.1f s",
        rows,
        len(versions),
        time.perf_counter() - started,
    )


def _is_plain_table(connection: Connection, table: Table) -> bool:
    """PostgreSQL: whether `table` exists as an ordinary table (not a partitioned one)."""
    kind = connection.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": table.name}
    ).scalar()
    return kind == "r"
