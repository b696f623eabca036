"""On PostgreSQL, each version of a set keeps its samples in a partition of its own.

A load once wrote its rows into the one samples table through its primary-key index: one btree
insertion and one WAL record per row, the bound of a big load (docs/performance.md, P4). A load
now writes a table of its own, without an index, builds its key by one sort, and attaches the
table as its set's partition in the load's transaction: readers see the old version or the new
one whole, as before. The replaced version's partition is detached after the load commits,
CONCURRENTLY, so that reads of other sets never wait for it, and dropped whole instead of being
deleted row by row. SQLite has no partitions: its sets stay rows of one table.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import Connection, Engine, MetaData, Table, exc, func, select, text

log = logging.getLogger(__name__)

# pg_advisory_lock's key for "dropping replaced partitions": loads that end at once take turns.
DROP_LOCK = 0x6D6C7064
# How long dropping a replaced partition waits for the locks it needs (for reads of the old
# version to end, or for another load's attach to commit) before it leaves the partition to the
# next load: a load's answer never waits long for it.
DROP_LOCK_TIMEOUT = "10s"


def partition_name(table: Table, dataset_id: int) -> str:
    """The name of the partition holding one version of a set (its datasets row id)."""
    return f"{_partition_prefix(table)}{int(dataset_id)}"


def _partition_prefix(table: Table) -> str:
    """What the name of each of table's partitions starts with, before its version."""
    return f"{table.name}_"


def new_partition(connection: Connection, table: Table, dataset_id: int) -> Table:
    """Create the table that will hold one version of a set: the columns of `table`, no index, and
    a check that every row belongs to that version (so that attaching it need not scan the rows).
    Returns it as a Table to write into (mlops.kernel.bulk.columns_writer)."""
    name = partition_name(table, dataset_id)
    connection.execute(
        text(
            f'CREATE TABLE "{name}" (LIKE "{table.name}", '
            f'CONSTRAINT "{name}_set" CHECK (dataset_id IS NOT NULL AND dataset_id = {int(dataset_id)}))'
        )
    )
    return table.to_metadata(MetaData(), name=name)


def attach_partition(connection: Connection, table: Table, partition: Table, dataset_id: int) -> None:
    """Build the partition's primary key (one sort of its rows) and attach it to `table` as the
    rows of that version. Attaching takes a lock that lets reads through but not another attach or
    detach: call it last in the transaction, so that it is held only until the commit."""
    keys = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
    connection.execute(text(f'ALTER TABLE "{partition.name}" ADD PRIMARY KEY ({keys})'))
    connection.execute(
        text(f'ALTER TABLE "{table.name}" ATTACH PARTITION "{partition.name}" FOR VALUES IN ({int(dataset_id)})')
    )


def drop_replaced_partitions(engine: Engine, table: Table, datasets: Table) -> list[str]:
    """Detach and drop the partitions of `table` whose version is no longer loaded (replaced by a
    load that has committed, or left behind by one that stopped before dropping them); return
    their names. Nothing on SQLite.

    Detaching CONCURRENTLY waits for the reads that may still see the partition, without
    stopping reads of any other set; it must run outside a transaction. A partition whose locks
    are not granted within DROP_LOCK_TIMEOUT is left to the next load, which finishes its detach.
    """
    if engine.dialect.name != "postgresql":
        return []
    dropped: list[str] = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(select(func.pg_advisory_lock(DROP_LOCK)))
        try:
            connection.execute(text(f"SET lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
            for name, attached, detach_pending in _replaced_partitions(connection, table, datasets):
                try:
                    if attached:
                        how = "FINALIZE" if detach_pending else "CONCURRENTLY"
                        connection.execute(text(f'ALTER TABLE "{table.name}" DETACH PARTITION "{name}" {how}'))
                    connection.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
                    dropped.append(name)
                except exc.OperationalError as error:
                    if not _lock_not_granted(error):
                        raise
                    log.info("partition %s still in use after %s; the next load drops it", name, DROP_LOCK_TIMEOUT)
        finally:
            if not connection.invalidated:
                connection.execute(text("RESET lock_timeout"))
                connection.execute(select(func.pg_advisory_unlock(DROP_LOCK)))
    if dropped:
        log.info("dropped the partitions of replaced sets: %s", ", ".join(dropped))
    return dropped


def _replaced_partitions(connection: Connection, table: Table, datasets: Table) -> list[tuple[str, bool, bool]]:
    """The tables named as partitions of `table` whose version has no datasets row: (name,
    attached, detach pending). One statement, so a load committing meanwhile is seen whole or not
    at all (and a load still running has neither its row nor its table visible)."""
    prefix = _partition_prefix(table)
    rows = connection.execute(
        text(
            f"""
            SELECT c.relname, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false)
            FROM pg_class c
            LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = to_regclass(:parent)
            WHERE c.relkind = 'r' AND pg_table_is_visible(c.oid) AND c.relname ~ :pattern
              AND NOT EXISTS (SELECT 1 FROM "{datasets.name}" d WHERE c.relname = :prefix || d.id)
            ORDER BY c.relname
            """
        ),
        {"parent": table.name, "pattern": f"^{re.escape(prefix)}[0-9]+$", "prefix": prefix},
    ).all()
    return [(row[0], row[1], row[2]) for row in rows]


def _lock_not_granted(error: exc.OperationalError) -> bool:
    """Whether error is lock_timeout running out (SQLSTATE 55P03)."""
    return getattr(error.orig, "sqlstate", None) == "55P03"
