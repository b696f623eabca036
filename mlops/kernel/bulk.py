"""Bulk reads and writes of whole sets, column-wise: PostgreSQL's binary COPY, plain SQL elsewhere.

A set can hold millions of rows. Building one Python object per row (executemany, Row objects)
costs microseconds per value; PostgreSQL's binary COPY format is a fixed layout of big-endian
values that numpy encodes and decodes a whole block at a time. SQLite has no COPY, so it keeps
executemany and ordinary fetches: the same functions give the same rows on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Select, Table, exc, func, insert, select

# The binary COPY stream: an 11-byte signature, int32 flags, int32 header-extension length,
# then per row an int16 field count and per field an int32 length (-1 = NULL) and the value;
# an int16 -1 ends the stream.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_HEADER = COPY_SIGNATURE + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
# Rows encoded per COPY block: bounds the encoder's memory to a few tens of MB.
COPY_BLOCK_ROWS = 50_000
EXECUTEMANY_CHUNK_ROWS = 50_000
# A COPY out is decoded whenever this much of it has arrived.
DECODE_BYTES = 8 * 2**20
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
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    if not columns or lengths == {0}:
        return
    if is_postgresql(connection):
        _copy_in(connection, table, columns)
    else:
        _executemany(connection, table, columns)


@dataclass(frozen=True)
class Columns:
    """A query's columns as arrays, by label (`columns["alcohol"]`).

    The float64 columns are the columns of `floats`, one 2-D array (rows x float64 columns, in
    query order) in Fortran order: a DataFrame of them takes it as its one block, without a copy.
    """

    arrays: dict[str, np.ndarray]
    floats: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


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
    buffer = _ColumnBuffer(dtypes, len(result))
    for i, (name, dtype) in enumerate(dtypes.items()):
        values = [row[i] for row in result]
        buffer.column(name)[:] = np.array(values, dtype=np.float64 if dtype == "float64" else np.int64)
    buffer.filled = len(result)
    return buffer.columns()


class _ColumnBuffer:
    """Arrays for a query's columns, filled a block of rows at a time; float64 columns share one
    Fortran-ordered 2-D array (see Columns). Grows by doubling when more rows come than expected."""

    def __init__(self, dtypes: Mapping[str, str], capacity: int):
        self.float_positions = {name: j for j, name in enumerate(n for n, d in dtypes.items() if d == "float64")}
        self.floats = np.empty((capacity, len(self.float_positions)), order="F")
        self.others = {name: np.empty(capacity, dtype) for name, dtype in dtypes.items() if dtype != "float64"}
        self.filled = 0

    def column(self, name: str) -> np.ndarray:
        """The whole array of a column (capacity rows), to write into."""
        if name in self.float_positions:
            return self.floats[:, self.float_positions[name]]
        return self.others[name]

    def make_room(self, n_rows: int) -> None:
        """Make sure n_rows more rows fit after the filled ones."""
        needed = self.filled + n_rows
        if needed <= len(self.floats):
            return
        capacity = max(needed, 2 * len(self.floats))
        floats = np.empty((capacity, self.floats.shape[1]), order="F")
        floats[: self.filled] = self.floats[: self.filled]
        self.floats = floats
        for name, values in self.others.items():
            grown = np.empty(capacity, values.dtype)
            grown[: self.filled] = values[: self.filled]
            self.others[name] = grown

    def columns(self) -> Columns:
        """The filled rows."""
        floats = self.floats[: self.filled]
        if not floats.flags.f_contiguous:  # fewer rows came than room was made for: one copy
            floats = np.asfortranarray(floats)
        arrays = {name: floats[:, j] for name, j in self.float_positions.items()}
        arrays |= {name: values[: self.filled] for name, values in self.others.items()}
        return Columns(arrays, floats)


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


def _copy_in(connection: Connection, table: Table, columns: Mapping[str, np.ndarray]) -> None:
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    # The server works on one block while the next is encoded (a queued writer thread would let
    # the encoder run ahead by up to psycopg's 128 MB queue: memory for no gain here).
    with _driver_cursor(connection, statement) as cursor, cursor.copy(statement) as copy:
        copy.write(COPY_HEADER)
        for block in _encode_blocks(columns):
            copy.write(block)
        copy.write(COPY_TRAILER)


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


def _row_dtype(dtypes: Mapping[str, np.dtype | str]) -> np.dtype:
    """The binary COPY layout of one row without NULLs: field count, then (length, value) pairs."""
    fields = [("_count", ">i2")]
    for name, dtype in dtypes.items():
        fields += [(f"_length_{name}", ">i4"), (name, np.dtype(dtype).newbyteorder(">"))]
    return np.dtype(fields)


def _encode_blocks(columns: Mapping[str, np.ndarray]) -> Iterator[bytes]:
    """Encode the rows as binary COPY tuples, COPY_BLOCK_ROWS at a time."""
    layout = _row_dtype({name: values.dtype for name, values in columns.items()})
    n_rows = len(next(iter(columns.values())))
    for start in range(0, n_rows, COPY_BLOCK_ROWS):
        stop = min(n_rows, start + COPY_BLOCK_ROWS)
        rows = np.empty(stop - start, layout)
        rows["_count"] = len(columns)
        keep = None  # which bytes to send: a NULL sends its length (-1) and no value bytes
        for name, values in columns.items():
            block = values[start:stop]
            rows[name] = block
            rows[f"_length_{name}"] = block.dtype.itemsize
            if block.dtype.kind == "f":
                nulls = np.isnan(block)
                if nulls.any():
                    rows[f"_length_{name}"][nulls] = -1
                    if keep is None:
                        keep = np.ones((stop - start, layout.itemsize), dtype=bool)
                    offset = layout.fields[name][1]
                    keep[nulls, offset : offset + block.dtype.itemsize] = False
        raw = rows.view(np.uint8).reshape(stop - start, layout.itemsize)
        yield (raw if keep is None else raw[keep]).tobytes()


def _copy_out_statement(connection: Connection, query: Select):
    from psycopg import sql

    # render_postcompile: an IN list becomes one bound value per element, as psycopg binds them.
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    # psycopg merges the bound parameters into the COPY statement on the client side.
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(sql.SQL(str(compiled))), compiled.params


def _copy_out(connection: Connection, query: Select, dtypes: Mapping[str, str], rows: int) -> Columns:
    statement, params = _copy_out_statement(connection, query)
    decoder = _RowDecoder(dtypes, rows)
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
    decoder = _RowDecoder(dtypes, block_rows)
    with _driver_cursor(connection, statement) as cursor:
        with cursor.copy(statement, params) as copy:
            for message in copy:
                decoder.feed(message)
                if decoder.buffer.filled >= block_rows:
                    yield decoder.take()
    decoder.finish()
    if decoder.buffer.filled:
        yield decoder.take()


class _RowDecoder:
    """Decodes a binary COPY stream of fixed-width rows (no NULLs) into native column arrays."""

    def __init__(self, dtypes: Mapping[str, str], rows: int):
        self.dtypes = dict(dtypes)
        self.layout = _row_dtype(dtypes)
        self.buffer = _ColumnBuffer(dtypes, rows)
        self.pending = bytearray()
        self.header_read = False

    def feed(self, message: bytes | memoryview) -> None:
        self.pending += message
        if len(self.pending) >= DECODE_BYTES:
            self._decode(final=False)

    def finish(self) -> Columns:
        self._decode(final=True)
        return self.buffer.columns()

    def take(self) -> Columns:
        """The rows decoded so far; the next ones go into new arrays."""
        columns = self.buffer.columns()
        self.buffer = _ColumnBuffer(self.dtypes, len(self.buffer.floats))
        return columns

    def _decode(self, *, final: bool) -> None:
        data = memoryview(self.pending)
        if not self.header_read:
            if len(data) < 19 or bytes(data[:11]) != COPY_SIGNATURE:
                raise ValueError("not a binary COPY stream")
            data = data[19 + int.from_bytes(data[15:19], "big") :]
            self.header_read = True
        if final:
            if bytes(data[-len(COPY_TRAILER) :]) != COPY_TRAILER:
                raise ValueError("the binary COPY stream is cut short")
            data = data[: -len(COPY_TRAILER)]
            if len(data) % self.layout.itemsize:
                raise ValueError("COPY rows are not of one fixed width: a selected value is NULL")
        n_rows = len(data) // self.layout.itemsize
        rows = np.frombuffer(data[: n_rows * self.layout.itemsize], self.layout)
        self._check(rows)
        buffer = self.buffer
        buffer.make_room(n_rows)
        for name in self.dtypes:
            buffer.column(name)[buffer.filled : buffer.filled + n_rows] = rows[name]
        buffer.filled += n_rows
        rest = bytes(data[n_rows * self.layout.itemsize :])
        del rows, data
        self.pending = bytearray(rest)

    def _check(self, rows: np.ndarray) -> None:
        if rows.size and not (rows["_count"] == len(self.dtypes)).all():
            raise ValueError("COPY rows do not have the expected number of fields")
        for name, dtype in self.dtypes.items():
            if rows.size and not (rows[f"_length_{name}"] == np.dtype(dtype).itemsize).all():
                raise ValueError(f"column {name} holds NULLs or values of another type")
