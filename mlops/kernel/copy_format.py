"""PostgreSQL's binary COPY format, encoded and decoded a block of rows at a time with numpy,
and the column arrays a bulk read fills (bulk.py runs the COPY statements)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

# The binary COPY stream: an 11-byte signature, int32 flags, int32 header-extension length,
# then per row an int16 field count and per field an int32 length (-1 = NULL) and the value;
# an int16 -1 ends the stream.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_HEADER = COPY_SIGNATURE + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
# Rows encoded per COPY block: bounds the encoder's memory to a few tens of MB.
COPY_BLOCK_ROWS = 50_000
# A COPY out is decoded whenever this much of it has arrived.
DECODE_BYTES = 8 * 2**20


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


class ColumnBuffer:
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


def row_dtype(dtypes: Mapping[str, np.dtype | str]) -> np.dtype:
    """The binary COPY layout of one row without NULLs: field count, then (length, value) pairs."""
    fields = [("_count", ">i2")]
    for name, dtype in dtypes.items():
        fields += [(f"_length_{name}", ">i4"), (name, np.dtype(dtype).newbyteorder(">"))]
    return np.dtype(fields)


def encode_blocks(columns: Mapping[str, np.ndarray]) -> Iterator[bytes]:
    """Encode the rows as binary COPY tuples, COPY_BLOCK_ROWS at a time.

    One buffer of rows serves every block: the field count and lengths are written into it once,
    and only a NULL's length (-1) is set and then put back. The bytes of a NULL's value are left
    out by a mask of 2-byte words (every field of the layout starts at an even offset).
    """
    odd = [name for name, values in columns.items() if values.dtype.itemsize % 2]
    if odd:
        raise ValueError(f"columns of 1-byte types cannot be encoded: {odd}")
    layout = row_dtype({name: values.dtype for name, values in columns.items()})
    n_rows = len(next(iter(columns.values())))
    buffer = np.empty(min(n_rows, COPY_BLOCK_ROWS), layout)
    buffer["_count"] = len(columns)
    for name, values in columns.items():
        buffer[f"_length_{name}"] = values.dtype.itemsize
    words = layout.itemsize // 2
    for start in range(0, n_rows, COPY_BLOCK_ROWS):
        stop = min(n_rows, start + COPY_BLOCK_ROWS)
        rows = buffer[: stop - start]
        keep = None  # which words to send: a NULL sends its length and no value
        nulls_of = {}
        for name, values in columns.items():
            block = values[start:stop]
            rows[name] = block
            if block.dtype.kind == "f":
                nulls = np.isnan(block)
                if nulls.any():
                    nulls_of[name] = nulls
                    rows[f"_length_{name}"][nulls] = -1
                    if keep is None:
                        keep = np.ones((stop - start, words), dtype=bool)
                    offset = layout.fields[name][1] // 2
                    keep[nulls, offset : offset + block.dtype.itemsize // 2] = False
        raw = rows.view(np.uint16).reshape(stop - start, words)
        yield (raw if keep is None else raw[keep]).tobytes()
        for name, nulls in nulls_of.items():
            rows[f"_length_{name}"][nulls] = columns[name].dtype.itemsize


class RowDecoder:
    """Decodes a binary COPY stream of fixed-width rows (no NULLs) into native column arrays."""

    def __init__(self, dtypes: Mapping[str, str], rows: int):
        self.dtypes = dict(dtypes)
        self.layout = row_dtype(dtypes)
        self.buffer = ColumnBuffer(dtypes, rows)
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
        self.buffer = ColumnBuffer(self.dtypes, len(self.buffer.floats))
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
