"""What storing a row's 13 features as one value would save an evaluation's read on PostgreSQL:
the same rows in three layouts, read by binary COPY (as read_set reads a set: in sample order,
NULL features as NaN) into a client that only receives the bytes, and the server's CPU for each
(docs/performance.md, P4). The layouts: 13 double precision columns (samples as it is), one
double precision[] column, one bytea of 13 packed doubles.
Run: .venv/bin/python -m bench.micro.feature_layouts [rows]
"""

from __future__ import annotations

import sys

import psycopg
from sqlalchemy import make_url

from bench.harness import database_rate, postgres_database
from mlops.kernel.db import FEATURE_COLUMNS, normalize_url

FEATURES = ", ".join(f"coalesce({column}, 'NaN') AS {column}" for column in FEATURE_COLUMNS)
LAYOUTS = {
    "13 columns": (
        f"CREATE TABLE layout AS SELECT 1 AS dataset_id, i AS sample_index, "
        f"{', '.join(f'CASE WHEN random() < 0.03 THEN NULL ELSE random() END AS {c}' for c in FEATURE_COLUMNS)}, "
        f"(i % 3) AS target FROM generate_series(0, %(rows)s - 1) AS i",
        f"SELECT sample_index, {FEATURES}, target FROM layout WHERE dataset_id = 1 ORDER BY sample_index",
    ),
    "one double precision[]": (
        "CREATE TABLE layout AS SELECT 1 AS dataset_id, i AS sample_index, "
        "ARRAY(SELECT CASE WHEN random() < 0.03 THEN 'NaN' ELSE random() END FROM generate_series(1, 13) "
        "WHERE i >= 0)::double precision[] AS features, (i % 3) AS target FROM generate_series(0, %(rows)s - 1) AS i",
        "SELECT sample_index, features, target FROM layout WHERE dataset_id = 1 ORDER BY sample_index",
    ),
    "one bytea of 13 doubles": (
        "CREATE TABLE layout AS SELECT 1 AS dataset_id, i AS sample_index, "
        "decode(repeat(lpad(to_hex(i), 16, '0'), 13), 'hex') AS features, (i % 3) AS target "
        "FROM generate_series(0, %(rows)s - 1) AS i",
        "SELECT sample_index, features, target FROM layout WHERE dataset_id = 1 ORDER BY sample_index",
    ),
}


def bytes_received(connection: psycopg.Connection, query: str) -> int:
    """Receive the query's rows by binary COPY; return how many bytes came."""
    received = 0
    with connection.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
        for data in copy:
            received += len(data)
    return received


def main(n_rows: int) -> None:
    with postgres_database() as url:
        dsn = make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as connection:
            for name, (create, query) in LAYOUTS.items():
                connection.execute("DROP TABLE IF EXISTS layout")
                connection.execute(create.replace("%(rows)s", str(int(n_rows))))
                connection.execute("ALTER TABLE layout ADD PRIMARY KEY (dataset_id, sample_index)")
                connection.execute("VACUUM ANALYZE layout")
                for round_ in (1, 2):
                    rate, received = database_rate(n_rows, lambda query=query: bytes_received(connection, query))
                    print(f"round {round_}, {name:24} {rate}, {received / n_rows:5.0f} bytes a row", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000)
