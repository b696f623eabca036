"""Big loads through the simulator, with the ML and monitoring services running beside it as in
`bench p4`, but nothing else in between: 1M rows, then 10M rows several times, each load replacing
the one before (docs/performance.md, P4). Run: .venv/bin/python -m bench.micro.service_loads [loads]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.harness import bench_settings, call, database_rate, postgres_database, services

SIZES = (1_000_000, 10_000_000)


def main(loads: int) -> None:
    with postgres_database() as url, tempfile.TemporaryDirectory() as data_dir:
        settings = bench_settings(Path(data_dir), dataset_db_url=url)
        with services(settings, ["simulator", "ml", "monitoring"]) as running:
            simulator = running["simulator"].url
            for rows in [SIZES[0]] + [SIZES[1]] * loads:
                rate, _ = database_rate(
                    rows,
                    lambda rows=rows: call(
                        "POST", simulator + "/root/simulator", json={"set_name": "production", "size": rows}
                    ),
                )
                print(f"{rows:>10,} rows: {rate}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
