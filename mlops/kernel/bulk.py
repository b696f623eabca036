"""Bulk reads and writes of whole sets, column-wise: PostgreSQL's binary COPY, plain SQL elsewhere.

A set can hold millions of rows. Building one Python object per row (executemany, Row objects)
costs microseconds per value; PostgreSQL's binary COPY format is a fixed layout of big-endian
values that numpy encodes and decodes a whole block at a time. SQLite has no COPY, so it keeps
executemany and ordinary fetches: the same functions give the same rows on both backends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
from sqlalchemy import Connection, Select, Table, exc, func, insert, select

from mlops.kernel.copy_format import COPY_HEADER, COPY_TRAILER, ColumnBuffer, Columns, RowDecoder, encode_blocks
from mlops.kernel.read_ahead import write_behind

EXECUTEMANY_CHUNK_ROWS = 50_000
# Below this many rows the planner's estimates hardly matter and ANALYZE would cost more than it saves.
ANALYZE_MIN_ROWS = 10_000
# ANALYZE after a bulk write samples 300 x this many rows (PostgreSQL's default is 100).
ANALYZE_STATISTICS_TARGET = 10


def is_postgresql(connection: Connection) -> bool:
    """Whether the connection talks to PostgreSQL."""
    return connection.dialect.name == "postgresql"


def insert_columns(connection: Connection, table: Table, columns: Mapping[str, np.ndarray]) -> None:
    """Insert rows given as equally long column arrays; NaN in a float column is stored as NULL.

    Integer columns must be int32 (SQL INTEGER), float columns float64 (double precision).
    """
    if not columns or all(len(values) == 0 for values in columns.values()):
        return
    with columns_writer(connection, table, list(columns)) as write:
        write(columns)


@contextmanager
def columns_writer(
    connection: Connection, table: Table, names: Sequence[str], *, frozen: bool = False
) -> Iterator[Callable[[Mapping[str, np.ndarray]], None]]:
    """Insert rows given a block at a time: yields write(columns), to call once per block with
    equally long column arrays of these columns (as insert_columns takes them).

    frozen (PostgreSQL; only for a table this transaction created, which no one else can see
    yet): COPY writes the rows already frozen and their pages marked all-visible, so neither the
    first read (which would set every row's hint bits and write every page again) nor autovacuum
    has to go over them afterwards.

    On PostgreSQL every block goes into one binary COPY, sent from a thread of its own
    (write_behind): the server stores a block while the caller makes and encodes the next, where
    a COPY per block would leave it idle in between. Elsewhere each block is one executemany.
    Nothing else may run on the connection inside the block: the COPY holds it until the end.
    """
    names = list(names)

    def rows_of(columns: Mapping[str, np.ndarray]) -> int:
        if list(columns) != names:
            raise ValueError(f"columns {list(columns)} given to a writer of {names}")
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        return lengths.pop() if lengths else 0

    if not is_postgresql(connection):

        def execute(columns: Mapping[str, np.ndarray]) -> None:
            if rows_of(columns):
                _executemany(connection, table, columns)

        yield execute
        return
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY{})").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", FREEZE" if frozen else ""),
    )
    with (
        _driver_cursor(connection, statement) as cursor,
        cursor.copy(statement) as copy,
        write_behind(copy.write, name=f"copy-{table.name}") as send,
    ):

        def encode(columns: Mapping[str, np.ndarray]) -> None:
            if rows_of(columns):
                for block in encode_blocks(columns):
                    send(block)

        send(COPY_HEADER)
        yield encode
        send(COPY_TRAILER)


def select_columns(connection: Connection, query: Select, dtypes: Mapping[str, str], *, rows: int = 0) -> Columns:
    """Run a query and return its columns (named as in `dtypes`, in query order) as arrays.

    `dtypes` maps each selected column's label to "int32" or "float64"; `rows`, the number of
    rows expected, lets the arrays be allocated once. On PostgreSQL every value must be non-NULL
    (coalesce NULL floats to NaN in the query): rows then have one fixed width that numpy
    decodes a block at a time. Elsewhere NULL floats come back as NaN.
    """
    if is_postgresql(connection):
        return _copy_out(connection, query, dtypes, rows)
    result = connection.execute(query).all()
    return _fetched_columns(result, dtypes)


def select_column_blocks(
    connection: Connection, query: Select, dtypes: Mapping[str, str], block_rows: int
) -> Iterator[Columns]:
    """Run a query and yield its columns a block of about block_rows rows at a time (as
    select_columns gives them), so that a set of any size is read in constant memory. On
    PostgreSQL the blocks are decoded from one binary COPY: one statement, one snapshot."""
    if is_postgresql(connection):
        yield from _copy_out_blocks(connection, query, dtypes, block_rows)
        return
    result = connection.execution_options(yield_per=block_rows).execute(query)
    for rows in result.partitions(block_rows):
        yield _fetched_columns(rows, dtypes)


def _fetched_columns(result, dtypes: Mapping[str, str]) -> Columns:
    buffer = ColumnBuffer(dtypes, len(result))
    for i, (name, dtype) in enumerate(dtypes.items()):
        values = [row[i] for row in result]
        buffer.column(name)[:] = np.array(values, dtype=np.float64 if dtype == "float64" else np.int64)
    buffer.filled = len(result)
    return buffer.columns()


@contextmanager
def parent_checked_by_caller(connection: Connection) -> Iterator[bool]:
    """Skip PostgreSQL's per-row foreign-key triggers for the bulk writes inside this block.

    Only for rows whose parent row this transaction has inserted or locked itself: the check a
    foreign key would run once per row (most of a COPY's time: docs/performance.md, P4) is then
    known to pass. It needs the right to set session_replication_role (superuser, or PostgreSQL 15's
    `GRANT SET ON PARAMETER session_replication_role`); without it the checks simply run.
    Yields whether the checks are skipped. The setting is restored when the block ends.
    """
    if not is_postgresql(connection):
        yield False
        return
    previous = connection.execute(select(func.current_setting("session_replication_role"))).scalar_one()
    try:
        with connection.begin_nested():
            connection.execute(select(func.set_config("session_replication_role", "replica", True)))
    except (exc.OperationalError, exc.InterfaceError):
        raise  # the connection is gone (the database stopped): a 503, not a write to go on with
    except exc.DBAPIError:  # not allowed to set it: the checks run
        yield False
        return
    yield True
    # Restored only after the block succeeded: after an error the transaction is aborted and takes
    # the (SET LOCAL) setting with it, and a statement here would only hide that error.
    connection.execute(select(func.set_config("session_replication_role", previous, True)))


def refresh_statistics(connection: Connection, rows: int, *tables: Table) -> None:
    """ANALYZE the key columns of tables after a bulk write of `rows` rows on PostgreSQL, so that the
    next read of a big set is planned as a merge of index scans, not a nested loop over stale
    estimates. Below ANALYZE_MIN_ROWS rows it does nothing.

    Only the primary-key columns (dataset_id, sample_index), which reads select and join on, and
    from a small sample: the row counts per set is what the planner lacks. Autovacuum refines
    the statistics later, as usual.
    """
    if rows < ANALYZE_MIN_ROWS or not is_postgresql(connection):
        return
    from psycopg import sql

    with _transaction_setting(connection, "default_statistics_target", str(ANALYZE_STATISTICS_TARGET)):
        for table in tables:
            keys = sql.SQL(", ").join(sql.Identifier(column.name) for column in table.primary_key.columns)
            statement = sql.SQL("ANALYZE {} ({})").format(sql.Identifier(table.name), keys)
            with _driver_cursor(connection, statement) as cursor:
                cursor.execute(statement)


@contextmanager
def _transaction_setting(connection: Connection, name: str, value: str) -> Iterator[None]:
    """Set a PostgreSQL setting for the statements inside the block (SET LOCAL), then restore it."""
    previous = connection.execute(select(func.current_setting(name))).scalar_one()
    connection.execute(select(func.set_config(name, value, True)))
    try:
        yield
    finally:
        connection.execute(select(func.set_config(name, previous, True)))


@contextmanager
def _driver_cursor(connection: Connection, statement: object) -> Iterator:
    """A cursor of the connection's own psycopg connection (so it shares the transaction) whose
    errors surface as SQLAlchemy's, as those of any other statement do (IntegrityError, ...)."""
    driver = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor:
            yield cursor
    except connection.dialect.loaded_dbapi.Error as error:
        raise exc.DBAPIError.instance(
            statement.as_string(driver), None, error, connection.dialect.loaded_dbapi.Error, dialect=connection.dialect
        ) from error


def _executemany(connection: Connection, table: Table, columns: Mapping[str, np.ndarray]) -> None:
    names = list(columns)
    # NaN becomes None (SQL NULL); tolist() gives Python ints and floats the driver binds directly.
    values = [
        np.where(np.isnan(array), None, array).tolist() if array.dtype.kind == "f" else array.tolist()
        for array in columns.values()
    ]
    n_rows = len(values[0])
    for start in range(0, n_rows, EXECUTEMANY_CHUNK_ROWS):
        stop = min(n_rows, start + EXECUTEMANY_CHUNK_ROWS)
        rows = [dict(zip(names, row, strict=True)) for row in zip(*(v[start:stop] for v in values), strict=True)]
        connection.execute(insert(table), rows)


def _copy_out_statement(connection: Connection, query: Select):
    from psycopg import sql

    # render_postcompile: an IN list becomes one bound value per element, as psycopg binds them.
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    # psycopg merges the bound parameters into the COPY statement on the client side.
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(sql.SQL(str(compiled))), compiled.params


def _copy_out(connection: Connection, query: Select, dtypes: Mapping[str, str], rows: int) -> Columns:
    statement, params = _copy_out_statement(connection, query)
    decoder = RowDecoder(dtypes, rows)
    with _driver_cursor(connection, statement) as cursor:
        with cursor.copy(statement, params) as copy:
            # PostgreSQL sends one message per row: decode them a few MB at a time into the
            # column arrays, rather than holding the whole stream and the arrays at once.
            for message in copy:
                decoder.feed(message)
    return decoder.finish()


def _copy_out_blocks(
    connection: Connection, query: Select, dtypes: Mapping[str, str], block_rows: int
) -> Iterator[Columns]:
    statement, params = _copy_out_statement(connection, query)
    decoder = RowDecoder(dtypes, block_rows)
    with _driver_cursor(connection, statement) as cursor:
        with cursor.copy(statement, params) as copy:
            for message in copy:
                decoder.feed(message)
                if decoder.buffer.filled >= block_rows:
                    yield decoder.take()
    decoder.finish()
    if decoder.buffer.filled:
        yield decoder.take()
