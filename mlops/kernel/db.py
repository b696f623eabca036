"""The dataset database: engine factory and schema (SQLAlchemy Core), the same on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path
from typing import Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    exc,
    inspect,
    text,
)
from sqlalchemy.engine import make_url

from mlops.kernel.schema_upgrades import move_targets_into_samples, partition_samples

log = logging.getLogger(__name__)
# What a statement raises when the database does not answer (down, unreachable, pool exhausted).
DATABASE_DOWN = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)

# scikit-learn's wine features, in load_wine's order. The names are the API's; the columns
# replace the "/" of od280/od315 with "__", as the original system did.
FEATURES = (
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
)
SET_NAMES = ("training", "testing", "production")
SetName = Literal[SET_NAMES]


def feature_column(feature: str) -> str:
    """The SQL column name of a feature."""
    return feature.replace("/", "__")


FEATURE_COLUMNS = tuple(feature_column(f) for f in FEATURES)

metadata = MetaData()

# One row per loaded set; a reload deletes the row and inserts a new one, so the id is the
# set's version and everything that refers to it (samples, predictions, scenario) goes with it.
datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("n_samples", Integer, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
    # ids are never reused, even after the newest set is deleted (SQLite would reuse them)
    sqlite_autoincrement=True,
)

# A sample's features and its true class, in one row: a set is read without a join (the class
# once had a `targets` table of its own; mlops.kernel.schema_upgrades moves an older database's
# classes here). On PostgreSQL each version of a set is a partition of its own, written without
# an index and attached whole, and dropped whole when the set is replaced
# (mlops.kernel.set_partitions): it has no foreign key there, since a cascade would delete the
# old version row by row. SQLite keeps one plain table, whose rows go with their datasets row.
samples = Table(
    "samples",
    metadata,
    Column("dataset_id", Integer, primary_key=True),
    Column("sample_index", Integer, primary_key=True),
    *(Column(column, Float(precision=53), nullable=True) for column in FEATURE_COLUMNS),
    Column("target", Integer, nullable=False),
    ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE").ddl_if(dialect="sqlite"),
    postgresql_partition_by="LIST (dataset_id)",
)

predictions = Table(
    "predictions",
    metadata,
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    Column("sample_index", Integer, primary_key=True),
    Column("prediction", Integer, nullable=False),
    Column("model_version", Integer, nullable=False),
)

# How a set was drawn, when the simulator was asked for a seed or a fault scenario: the ground
# truth that a monitoring verdict on the set can be checked against. Goes with its set.
set_scenarios = Table(
    "set_scenarios",
    metadata,
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    # numpy's seeds go up to 2**32 - 1, beyond PostgreSQL's INTEGER
    Column("seed", BigInteger, nullable=True),
    Column("scenario", JSON, nullable=True),
)

# The ML service's deployed model: at most one row. `version` grows with every set_model and
# every training, so workers know when their cached pipeline is stale.
deployed_model = Table(
    "deployed_model",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("hyperparameters", JSON, nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("trained_at", DateTime(timezone=True), nullable=True),
    Column("training_accuracy", Float(precision=53), nullable=True),
    Column("pipeline", LargeBinary, nullable=True),
    # Lineage: the registered model version this pipeline is (None: trained through the ML
    # service and not registered yet), the MLflow run it came from, and the training set's
    # version (datasets.id) it was fitted on.
    Column("registered_model", String(256), nullable=True),
    Column("registered_version", String(32), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("training_dataset_id", Integer, nullable=True),
)

# Every trained pipeline the ML service started serving (trained by it, or pushed by tracking as
# the champion), in order: which model served when. Kept when the deployed row moves on.
model_deployments = Table(
    "model_deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_version", Integer, nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("source", String(32), nullable=False),  # "training" or "champion"
    Column("registered_model", String(256), nullable=True),
    Column("registered_version", String(32), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("training_dataset_id", Integer, nullable=True),
    Column("deployed_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

# One row per stored batch of predictions (a training or an evaluation): the set version and
# the model version they were made with. No foreign key: the lineage outlives a set's reload.
prediction_batches = Table(
    "prediction_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("set_name", String(32), nullable=False),
    Column("dataset_id", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("accuracy", Float(precision=53), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("registered_model", String(256), nullable=True),
    Column("registered_version", String(32), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("made_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

# The tracking service's optimizations sent with "wait": false (mlops.tracking.jobs). Kept here so
# that every worker of the service, and the next process after a restart, sees them.
optimization_jobs = Table(
    "optimization_jobs",
    metadata,
    Column("job_id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("request", JSON, nullable=False),
    Column("fits_done", Integer, nullable=False),
    Column("fits_total", Integer, nullable=False),
    # "<host>:<pid>" of the process that runs (or will run) it, and when it last said so
    Column("owner", String(300), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # the answer the blocking request would have given, once done or failed
    Column("status_code", Integer, nullable=True),
    Column("answer", JSON, nullable=True),
)


def normalize_url(url: str) -> str:
    """Use psycopg 3 for postgresql:// URLs (SQLAlchemy would otherwise look for psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, timeout: float = 10.0) -> Engine:
    """Create an engine for url; SQLite gets WAL and foreign keys, PostgreSQL a bounded connect time."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": timeout})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=timeout,
        connect_args={"connect_timeout": max(1, int(timeout))},
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_schema_lock = threading.Lock()
_engines_with_schema: weakref.WeakSet[Engine] = weakref.WeakSet()


def ensure_schema(engine: Engine) -> None:
    """Create the tables that do not exist yet; safe when several processes do it at once."""
    with _schema_lock:
        if engine in _engines_with_schema:
            return
        try:
            metadata.create_all(engine)
        except (exc.IntegrityError, exc.ProgrammingError):
            # Another worker created the same table between our check and our CREATE.
            log.info("schema created concurrently by another process; checking again")
            metadata.create_all(engine)
        move_targets_into_samples(engine, samples)
        partition_samples(engine, samples)
        add_missing_columns(engine)
        widen_integer_columns(engine)
        _engines_with_schema.add(engine)


def add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a newer release declares to tables an older one created.

    create_all creates missing tables only; a data dir kept across an upgrade would otherwise
    fail on the first statement that names a new column.
    """
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        existing = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as connection:
                    connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
                log.info("added column %s.%s", table.name, column.name)
            except (exc.OperationalError, exc.ProgrammingError):
                # Another worker added it between our look and our ALTER.
                log.info("column %s.%s added concurrently by another process", table.name, column.name)


def widen_integer_columns(engine: Engine) -> None:
    """Make the BIGINT a newer release declares out of the INTEGER an older one created (PostgreSQL;
    SQLite's INTEGER holds 64 bits already), so that values beyond 2**31 - 1 can be stored."""
    if engine.dialect.name != "postgresql":
        return
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        existing = {column["name"]: column["type"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            found = existing.get(column.name)
            if isinstance(column.type, BigInteger) and isinstance(found, Integer) and not isinstance(found, BigInteger):
                with engine.begin() as connection:
                    connection.execute(text(f'ALTER TABLE {table.name} ALTER COLUMN "{column.name}" TYPE BIGINT'))
                log.info("widened column %s.%s to BIGINT", table.name, column.name)


def ping(engine: Engine) -> None:
    """Raise if the database does not answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
