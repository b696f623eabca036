"""The same set loaded three times in a row on PostgreSQL, in process, each load replacing the one
before (replace_set, one frame of normal features): what a load costs when the set it replaces is
big too (docs/performance.md, P4, "A partition per set version"). Run on two commits to compare
them: .venv/bin/python -m bench.micro.loads_in_a_row [rows]
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from bench.harness import database_rate, postgres_database
from mlops.kernel.db import FEATURES, ensure_schema, make_engine
from mlops.simulator.store import replace_set


def main(n_rows: int) -> None:
    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.normal(size=(n_rows, len(FEATURES))), columns=list(FEATURES))
    target = pd.Series(rng.integers(0, 3, n_rows))
    with postgres_database() as url:
        engine = make_engine(url)
        ensure_schema(engine)
        for load in (1, 2, 3):
            rate, _ = database_rate(n_rows, lambda: replace_set(engine, "production", features, target))
            print(f"load {load}: {rate}", flush=True)
        engine.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000)
