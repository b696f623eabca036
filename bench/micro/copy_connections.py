"""What bounds a big set's load on PostgreSQL: the same rows, encoded beforehand (no Python in the
timed part but sending), written by binary COPY into a fresh table laid out as `samples`, on one
connection or two at once, with its primary-key index, without it, with it built after the rows,
and as a partition of its own attached after that (docs/performance.md, P4,
"What a COPY costs the server"). Run: .venv/bin/python -m bench.micro.copy_connections [rows]
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import psycopg
from sqlalchemy import make_url

from bench.harness import postgres_database
from mlops.kernel.copy_format import COPY_HEADER, COPY_TRAILER, encode_blocks
from mlops.kernel.db import FEATURE_COLUMNS, ensure_schema, make_engine, normalize_url

BLOCK_ROWS = 262_144  # the simulator's block (RESAMPLE_BLOCK_ROWS)
COLUMNS = ", ".join(["dataset_id", "sample_index", *FEATURE_COLUMNS, "target"])


def encoded_blocks(n_rows: int) -> list[bytes]:
    """n_rows rows of the samples layout, 2 % NULLs per feature, as COPY data a block each."""
    rng = np.random.default_rng(0)
    blocks = []
    for start in range(0, n_rows, BLOCK_ROWS):
        n = min(BLOCK_ROWS, n_rows - start)
        columns = {
            "dataset_id": np.full(n, 7, np.int32),
            "sample_index": np.arange(start, start + n, dtype=np.int32),
        }
        for column in FEATURE_COLUMNS:
            values = rng.normal(size=n)
            values[rng.random(n) < 0.02] = np.nan
            columns[column] = values
        columns["target"] = rng.integers(0, 3, n).astype(np.int32)
        blocks.append(b"".join(encode_blocks(columns)))
    return blocks


def copy_in(dsn: str, blocks: list[bytes]) -> None:
    """One connection, one COPY, one transaction."""
    with psycopg.connect(dsn) as connection:
        with connection.cursor().copy(f"COPY copied ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(COPY_HEADER)
            for block in blocks:
                copy.write(block)
            copy.write(COPY_TRAILER)
        connection.commit()


# How the rows go in: into the indexed table; into one without an index; into one without an index
# whose primary key is built after the rows; or that, then attached as the partition of a
# partitioned table (what a partition per set would do; a CHECK matching the partition's bound
# lets ATTACH skip scanning the rows).
MODES = ("indexed", "no index", "index after", "partition")


def timed_copy(dsn: str, parts: list[list[bytes]], mode: str) -> float:
    """Seconds to COPY the parts at once, one connection each, into a fresh table, and to do what
    `mode` does after the rows."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS copied, partitioned")
        if mode == "indexed":
            connection.execute("CREATE TABLE copied (LIKE samples INCLUDING ALL)")
        elif mode == "partition":
            connection.execute(
                "CREATE TABLE partitioned (LIKE samples INCLUDING DEFAULTS, PRIMARY KEY (dataset_id, sample_index)) "
                "PARTITION BY LIST (dataset_id)"
            )
            connection.execute("CREATE TABLE copied (LIKE samples, CHECK (dataset_id IS NOT NULL AND dataset_id = 7))")
        else:
            connection.execute("CREATE TABLE copied (LIKE samples)")
        connection.execute("CHECKPOINT")
    started = time.monotonic()
    threads = [threading.Thread(target=copy_in, args=(dsn, part)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if mode in ("index after", "partition"):
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("ALTER TABLE copied ADD PRIMARY KEY (dataset_id, sample_index)")
            if mode == "partition":
                connection.execute("ALTER TABLE partitioned ATTACH PARTITION copied FOR VALUES IN (7)")
    return time.monotonic() - started


def main(n_rows: int) -> None:
    blocks = encoded_blocks(n_rows)
    half = len(blocks) // 2
    one, halves, in_turn = [blocks], [blocks[:half], blocks[half:]], [blocks[0::2], blocks[1::2]]
    ways = {
        "1 connection": (one, "indexed"),
        "2 connections, first and second half": (halves, "indexed"),
        "2 connections, blocks taken in turn": (in_turn, "indexed"),
        "1 connection, no index": (one, "no index"),
        "2 connections, no index": (halves, "no index"),
        "1 connection, no index, then the index": (one, "index after"),
        "1 connection, then index, attach": (one, "partition"),
        "2 connections, then index, attach": (halves, "partition"),
    }
    with postgres_database() as url:
        engine = make_engine(url)
        ensure_schema(engine)
        engine.dispose()
        dsn = make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)
        for round_ in (1, 2):
            for name, (parts, mode) in ways.items():
                seconds = timed_copy(dsn, parts, mode)
                print(f"round {round_}, {name:38} {seconds:6.2f} s {n_rows / seconds:10,.0f} rows/s", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4_000_000)
