"""P4 scale: a big production set on PostgreSQL.

1. The write, in process, on the same frame: the simulator's replace_set (binary COPY) against
   pandas `to_sql` with its defaults, both one transaction into the real tables.
2. Through the services (simulator, ML, monitoring on one PostgreSQL dataset DB), for growing
   sizes: load the set (POST /root/simulator with `size`), evaluate it (POST /root/ml), report on
   it (POST /root/monitoring), and the peak RSS summed over every service process.

Goals (issue #13): loading 10,000,000 rows through the simulator >= 500,000 rows/s; evaluating
them <= 30 s end to end; peak RSS across services <= 1.5 GB in every phase (load, evaluate,
report). The in-process write comparison stays at 1,000,000 rows (pandas to_sql of 10M rows
would take minutes and prove nothing more).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from bench.harness import (
    RESULTS_DIR,
    Config,
    Goal,
    Result,
    bench_settings,
    call,
    fmt,
    group_cpu_seconds,
    peak_pss,
    peak_rss_bytes,
    postgres_cpu_seconds,
    postgres_database,
    profiled,
    reset_peak_rss,
    say,
    services,
    table,
    timed,
)
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL as WALKTHROUGH_MODEL

LOAD_GOAL_ROWS_PER_S = 500_000
EVALUATE_GOAL_S = 30.0
RSS_GOAL_BYTES = 1.5 * 10**9
WRITE_COMPARISON_ROWS = 1_000_000


def run(config: Config) -> Result:
    """Measure the write side by side, then load / evaluate / report through the services."""
    sizes = [500, 3_000] if config.quick else [10_000, 100_000, 1_000_000, 10_000_000]
    result = Result("p4")
    with postgres_database() as url:
        compare_writes(url, sizes[-1] if config.quick else WRITE_COMPARISON_ROWS, result)
    with postgres_database() as url, tempfile.TemporaryDirectory(dir=config.work_dir) as data_dir:
        through_services(url, Path(data_dir), sizes, result, config.profile)
    plot(result.figures["by_size"], (config.work_dir if config.quick else RESULTS_DIR) / "p4-scale.png")
    largest = result.figures["by_size"][-1]
    result.goals = [
        Goal(
            f"load {largest['rows']:,} rows through the simulator",
            largest["load_rows_per_s"],
            LOAD_GOAL_ROWS_PER_S,
            "rows/s",
            at_most=False,
        ),
        Goal(f"evaluate {largest['rows']:,} rows", largest["evaluate_s"], EVALUATE_GOAL_S, "s", at_most=True),
        Goal(
            f"peak RSS across services, worst phase, {largest['rows']:,} rows",
            largest["peak_rss_bytes"] / 1e9,
            RSS_GOAL_BYTES / 1e9,
            "GB",
            at_most=True,
        ),
        Goal(
            f"peak PSS across services (shared pages counted once), worst phase, {largest['rows']:,} rows",
            largest["peak_pss_bytes"] / 1e9,
            RSS_GOAL_BYTES / 1e9,
            "GB",
            at_most=True,
        ),
    ]
    return result


def compare_writes(url: str, rows: int, result: Result) -> None:
    """Write the same resampled set with replace_set (COPY) and with pandas to_sql defaults."""
    import numpy as np
    import pandas as pd
    from sqlalchemy import delete, insert, text

    from mlops.kernel.datasets import read_set
    from mlops.kernel.db import FEATURE_COLUMNS, datasets, ensure_schema, make_engine, samples
    from mlops.kernel.set_partitions import drop_replaced_partitions
    from mlops.simulator.splits import load_split
    from mlops.simulator.store import replace_set

    engine = make_engine(url)
    ensure_schema(engine)
    split_s, split = timed(lambda: load_split("production", rows))
    say(f"p4: resampled and fouled {rows:,} production rows in {split_s:.2f} s")

    copy_s, _ = timed(lambda: replace_set(engine, "production", split.features, split.target))
    say(f"p4: replace_set (binary COPY), new set:       {copy_s:6.2f} s  {rows / copy_s:>12,.0f} rows/s")
    again_s, _ = timed(lambda: replace_set(engine, "production", split.features, split.target))
    say(f"p4: replace_set again, replacing that set:    {again_s:6.2f} s  {rows / again_s:>12,.0f} rows/s")

    def read():
        with engine.connect() as connection:
            return read_set(connection, "production")

    read_s, stored = timed(read)
    say(f"p4: read_set of the set (binary COPY out):    {read_s:6.2f} s  {rows / read_s:>12,.0f} rows/s")
    assert len(stored.features) == rows
    alone = database_alone(engine, "production")

    # pandas to_sql with its defaults (executemany through SQLAlchemy), into the same table in
    # one transaction, as a set of its own
    samples_frame = pd.DataFrame(
        {
            "dataset_id": 0,
            "sample_index": np.arange(rows),
            **dict(zip(FEATURE_COLUMNS, split.features.to_numpy().T, strict=True)),
            "target": split.target.to_numpy(),
        }
    )

    def with_to_sql() -> int:
        with engine.begin() as connection:
            set_id = connection.execute(
                insert(datasets)
                .values(name="to_sql", n_samples=rows, loaded_at=pd.Timestamp.now(tz="UTC"))
                .returning(datasets.c.id)
            ).scalar_one()
            samples_frame["dataset_id"] = set_id
            # the set's partition, indexed and attached from the start, as to_sql needs it
            connection.execute(text(f"CREATE TABLE samples_{set_id} PARTITION OF samples FOR VALUES IN ({set_id})"))
            samples_frame.to_sql("samples", connection, if_exists="append", index=False)
        return set_id

    to_sql_s, set_id = timed(with_to_sql)
    say(f"p4: pandas to_sql defaults, same frame:       {to_sql_s:6.2f} s  {rows / to_sql_s:>12,.0f} rows/s")
    with engine.begin() as connection:
        connection.execute(delete(datasets).where(datasets.c.id == set_id))
    drop_replaced_partitions(engine, samples, datasets)
    engine.dispose()
    result.figures.update(
        write_rows=rows,
        split_s=split_s,
        copy_s=copy_s,
        copy_rows_per_s=rows / copy_s,
        copy_replacing_s=again_s,
        copy_replacing_rows_per_s=rows / again_s,
        read_set_s=read_s,
        to_sql_s=to_sql_s,
        to_sql_rows_per_s=rows / to_sql_s,
        database_alone=alone,
    )
    say(f"p4: COPY is {to_sql_s / copy_s:.1f}x faster than to_sql on {rows:,} rows")


def database_alone(engine, set_name: str) -> dict[str, float]:
    """What the database server alone takes for the rows of a stored set, with no Python in the
    way: the server writes the set's samples to a file in binary COPY format, then reads it back
    into an empty copy of the table (same columns, keys and indexes), and into a table without an
    index whose key is then built, as a load writes a set's partition. That write is the server's
    own speed at this moment, a reference rather than a bound: a COPY streamed from a client
    (replace_set) has been measured faster than the server's COPY from its file. The evaluation
    reads a set (the read) and writes as many predictions.

    Side by side, the layout before the class moved into samples: the features and the classes
    in two tables (each with its primary key), written one after the other and read joined."""
    from sqlalchemy import text

    from mlops.kernel.datasets import dataset_row
    from mlops.kernel.db import FEATURE_COLUMNS

    with engine.connect() as connection:
        set_id = dataset_row(connection, set_name).id
    seconds: dict[str, float] = {}
    features = ", ".join(f'"{column}"' for column in FEATURE_COLUMNS)
    of_the_set = f"FROM samples WHERE dataset_id = {set_id} ORDER BY sample_index"
    exports = {
        "samples": f"SELECT * {of_the_set}",
        # a prediction per row, as the ML service stores them (dataset, sample, class, model version)
        "predictions": f"SELECT dataset_id, sample_index, target, 1 {of_the_set}",
        "old_samples": f"SELECT dataset_id, sample_index, {features} {of_the_set}",
        "old_targets": f"SELECT dataset_id, sample_index, target {of_the_set}",
    }
    keys = "dataset_id INTEGER NOT NULL, sample_index INTEGER NOT NULL"
    old_tables = {
        "old_samples": f"{keys}, {', '.join(f'{column} DOUBLE PRECISION' for column in features.split(', '))}",
        "old_targets": f"{keys}, target INTEGER NOT NULL",
    }
    files = {table: f"/tmp/mlops-bench-p4-{os.getpid()}-{table}.bin" for table in exports}

    def timed_sql(connection, key: str, statement: str) -> None:
        started = time.perf_counter()
        connection.execute(text(statement))
        seconds[key] = time.perf_counter() - started

    try:
        with engine.begin() as connection:
            for table, query in exports.items():
                connection.execute(text(f"COPY ({query}) TO '{files[table]}' (FORMAT binary)"))
                # ordinary tables, WAL-logged as the real ones are (a temporary table skips the WAL)
                if table in old_tables:
                    connection.execute(
                        text(
                            f"CREATE TABLE alone_{table} ({old_tables[table]}, PRIMARY KEY (dataset_id, sample_index))"
                        )
                    )
                else:
                    connection.execute(text(f"CREATE TABLE alone_{table} (LIKE {table} INCLUDING ALL)"))
            for table in exports:
                timed_sql(connection, f"write_{table}_s", f"COPY alone_{table} FROM '{files[table]}' (FORMAT binary)")
            # as a load writes a set now: a table without an index, then its key built by one sort
            connection.execute(text("CREATE TABLE alone_partition (LIKE samples)"))
            timed_sql(
                connection, "write_partition_s", f"COPY alone_partition FROM '{files['samples']}' (FORMAT binary)"
            )
            timed_sql(
                connection, "key_partition_s", "ALTER TABLE alone_partition ADD PRIMARY KEY (dataset_id, sample_index)"
            )
            connection.execute(text("DROP TABLE alone_partition"))
            read = "COPY (SELECT * FROM {} ORDER BY sample_index) TO '/dev/null' (FORMAT binary)"
            timed_sql(connection, "read_s", read.format("alone_samples"))
            timed_sql(
                connection,
                "read_old_joined_s",
                read.format("alone_old_samples JOIN alone_old_targets USING (dataset_id, sample_index)"),
            )
            rows = connection.execute(text("SELECT count(*) FROM alone_samples")).scalar_one()
            connection.execute(text(f"DROP TABLE {', '.join(f'alone_{table}' for table in exports)}"))
    finally:
        for path in files.values():
            with contextlib.suppress(OSError):
                os.unlink(path)
    write_s = seconds["write_samples_s"]
    partition_s = seconds["write_partition_s"] + seconds["key_partition_s"]
    old_write_s = seconds["write_old_samples_s"] + seconds["write_old_targets_s"]
    evaluate_s = seconds["read_s"] + seconds["write_predictions_s"]
    say(
        f"p4: the database alone (server-side binary COPY, no Python), {rows:,} rows: write the samples "
        f"as a set's partition {seconds['write_partition_s']:.2f} s + its key {seconds['key_partition_s']:.2f} s "
        f"= {partition_s:.2f} s ({rows / partition_s:,.0f} rows/s), into the indexed table "
        f"{write_s:.2f} s ({rows / write_s:,.0f} rows/s); read them "
        f"{seconds['read_s']:.2f} s + write the predictions {seconds['write_predictions_s']:.2f} s "
        f"= {evaluate_s:.2f} s (an evaluation's database work). The two-table layout before it: write "
        f"samples + targets {seconds['write_old_samples_s']:.2f} + {seconds['write_old_targets_s']:.2f} = "
        f"{old_write_s:.2f} s ({rows / old_write_s:,.0f} rows/s, {old_write_s / write_s:.2f}x the time), "
        f"read joined {seconds['read_old_joined_s']:.2f} s ({seconds['read_old_joined_s'] / seconds['read_s']:.2f}x)"
    )
    return {
        **seconds,
        "rows": rows,
        "write_rows_per_s": rows / write_s,
        "partition_write_rows_per_s": rows / partition_s,
        "old_write_rows_per_s": rows / old_write_s,
        "evaluate_s": evaluate_s,
    }


def walk_through_small_sets(simulator: str, ml: str, monitoring: str) -> None:
    """The walkthrough's sets loaded, the model trained and the sets evaluated, and one report:
    what the big sets then replace. The report comes first on the small production set because
    the monitoring worker imports Evidently on its first report, no part of how time grows with size."""
    for set_name in ("training", "testing"):
        call("POST", simulator + "/root/simulator", json={"set_name": set_name})
    call("POST", ml + "/root/ml/set_model", json=WALKTHROUGH_MODEL)
    call("POST", ml + "/root/ml", json={"dataset": "training"})
    call("POST", ml + "/root/ml", json={"dataset": "testing"})
    call("POST", simulator + "/root/simulator", json={"set_name": "production"})
    call("POST", ml + "/root/ml", json={"dataset": "production"})
    call("POST", monitoring + "/root/monitoring", json={"metric": "report"})


def through_services(url: str, data_dir: Path, sizes: list[int], result: Result, profile: bool) -> None:
    """Load, evaluate and report on each size through the services; peak RSS per size."""
    settings = bench_settings(data_dir, dataset_db_url=url)
    by_size = []
    with services(settings, ["simulator", "ml", "monitoring"]) as running:
        simulator, ml, monitoring = (running[n].url for n in ("simulator", "ml", "monitoring"))
        leaders = {service.process.pid: name for name, service in running.items()}
        walk_through_small_sets(simulator, ml, monitoring)
        for rows in sizes:
            largest = profile and rows == sizes[-1]
            reset_peak_rss(list(leaders))
            cpu_before = (postgres_cpu_seconds(), services_cpu_seconds(leaders))
            with (
                peak_pss(list(leaders)) as load_pss,
                profiled("p4-load", {"simulator": running["simulator"].process.pid}, largest),
            ):
                load_s, _ = timed(
                    lambda rows=rows: call(
                        "POST", simulator + "/root/simulator", json={"set_name": "production", "size": rows}
                    )
                )
            load_peaks_bytes = peak_rss_bytes(list(leaders))
            load_cpu = postgres_cpu_seconds() - cpu_before[0], services_cpu_seconds(leaders) - cpu_before[1]
            reset_peak_rss(list(leaders))
            cpu_before = (postgres_cpu_seconds(), services_cpu_seconds(leaders))
            with (
                peak_pss(list(leaders)) as evaluate_pss,
                profiled("p4-evaluate", {"ml": running["ml"].process.pid}, largest),
            ):
                evaluate_s, scored = timed(lambda: call("POST", ml + "/root/ml", json={"dataset": "production"}))
            evaluate_peaks = {leaders[pid]: peak for pid, peak in peak_rss_bytes(list(leaders)).items()}
            evaluate_cpu = postgres_cpu_seconds() - cpu_before[0], services_cpu_seconds(leaders) - cpu_before[1]
            reset_peak_rss(list(leaders))
            with (
                peak_pss(list(leaders)) as report_pss,
                profiled("p4-report", {"monitoring": running["monitoring"].process.pid}, largest),
            ):
                report_s, report = timed(
                    lambda: call("POST", monitoring + "/root/monitoring", json={"metric": "report"})
                )
            repeat_s, _ = timed(lambda: call("POST", monitoring + "/root/monitoring", json={"metric": "report"}))
            load_peaks = {leaders[pid]: peak for pid, peak in load_peaks_bytes.items()}
            report_peaks = {leaders[pid]: peak for pid, peak in peak_rss_bytes(list(leaders)).items()}
            # the peak of each service over the three phases
            peaks = {name: max(load_peaks[name], evaluate_peaks[name], report_peaks[name]) for name in load_peaks}
            # the worst phase: each phase's peaks summed over the services, then the largest sum
            phase_rss = {
                "load": sum(load_peaks.values()),
                "evaluate": sum(evaluate_peaks.values()),
                "report": sum(report_peaks.values()),
            }
            rss = max(phase_rss.values())
            phase_pss = {
                "load": load_pss["peak_bytes"],
                "evaluate": evaluate_pss["peak_bytes"],
                "report": report_pss["peak_bytes"],
            }
            sampled = "sample" in str(report.get("notes", report))[:100_000] if isinstance(report, dict) else False
            by_size.append(
                {
                    "rows": rows,
                    "load_s": load_s,
                    "load_rows_per_s": rows / load_s,
                    "evaluate_s": evaluate_s,
                    "report_s": report_s,
                    "report_repeat_s": repeat_s,
                    "report_says_sampled": sampled,
                    "peak_rss_bytes": rss,
                    "peak_rss_bytes_by_phase": phase_rss,
                    "peak_rss_bytes_by_service": peaks,
                    "peak_pss_bytes": max(phase_pss.values()),
                    "peak_pss_bytes_by_phase": phase_pss,
                    "load_average_1min": os.getloadavg()[0],
                    "evaluate_peak_rss_bytes": sum(evaluate_peaks.values()),
                    "evaluate_peak_rss_bytes_by_service": evaluate_peaks,
                    "score": scored.get("message"),
                    # CPU seconds of the PostgreSQL server's processes and of the services' during the phase
                    "load_cpu_s": {"database": load_cpu[0], "services": load_cpu[1]},
                    "evaluate_cpu_s": {"database": evaluate_cpu[0], "services": evaluate_cpu[1]},
                }
            )
            say(
                f"p4: {rows:>10,} rows: load {load_s:6.2f} s, evaluate {evaluate_s:6.2f} s, report {report_s:6.2f} s "
                f"(again {repeat_s * 1000:.0f} ms{', sampled' if sampled else ''}), peak RSS (worst phase) {rss / 1e6:,.0f} MB "
                f"(load {phase_rss['load'] / 1e6:,.0f}, evaluate {phase_rss['evaluate'] / 1e6:,.0f}, report {phase_rss['report'] / 1e6:,.0f}; "
                f"load average {os.getloadavg()[0]:.1f}) "
                f"({', '.join(f'{name} {peak / 1e6:,.0f}' for name, peak in peaks.items())}), "
                f"{sum(evaluate_peaks.values()) / 1e6:,.0f} MB while evaluating "
                f"({', '.join(f'{name} {peak / 1e6:,.0f}' for name, peak in evaluate_peaks.items())}); "
                f"peak PSS (worst phase) {max(phase_pss.values()) / 1e6:,.0f} MB "
                f"({', '.join(f'{phase} {peak / 1e6:,.0f}' for phase, peak in phase_pss.items())}); "
                f"CPU seconds of the database server / the services: load {load_cpu[0]:.1f} / {load_cpu[1]:.1f}, "
                f"evaluate {evaluate_cpu[0]:.1f} / {evaluate_cpu[1]:.1f} ({os.cpu_count()} cores)"
            )
    result.figures["by_size"] = by_size
    say(
        table(
            [
                "rows",
                "load s",
                "rows/s",
                "evaluate s",
                "report s",
                "report again s",
                "peak RSS MB (worst phase)",
                "peak PSS MB (worst phase)",
                "evaluating MB",
                "load avg",
            ],
            [
                [
                    f"{r['rows']:,}",
                    r["load_s"],
                    f"{r['load_rows_per_s']:,.0f}",
                    r["evaluate_s"],
                    r["report_s"],
                    r["report_repeat_s"],
                    f"{r['peak_rss_bytes'] / 1e6:,.0f}",
                    f"{r['peak_pss_bytes'] / 1e6:,.0f}",
                    f"{r['evaluate_peak_rss_bytes'] / 1e6:,.0f}",
                    f"{r['load_average_1min']:.1f}",
                ]
                for r in by_size
            ],
        )
    )


def services_cpu_seconds(leaders) -> float:
    """CPU time used so far by every live process of the services (their gunicorn groups)."""
    return sum(group_cpu_seconds(leader) for leader in leaders)


def plot(by_size: list[dict], path: Path) -> Path | None:
    """Draw load / evaluate / report time against rows (log-log) as a PNG, if matplotlib is there."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("p4: matplotlib is not installed; no plot")
        return None
    rows = [r["rows"] for r in by_size]
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for key, label in (
        ("load_s", "load (simulator)"),
        ("evaluate_s", "evaluate (ML service)"),
        ("report_s", "report (monitoring)"),
    ):
        axes.plot(rows, [r[key] for r in by_size], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("production rows")
    axes.set_ylabel("seconds, end to end over HTTP")
    axes.set_title("Time against set size (PostgreSQL dataset DB)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    say(f"p4: plot written to {path} ({', '.join(fmt(r) for r in rows)} rows)")
    return path
