"""Does a big load pay for the predictions of the set it replaces? In process on PostgreSQL: a 1M-row
production set, evaluated (1M predictions) or not, then replaced by 10M rows, twice each,
alternating (docs/performance.md, P4). Run: .venv/bin/python -m bench.micro.load_after_predictions
"""

from __future__ import annotations

from bench.harness import database_rate, postgres_database
from mlops.kernel.datasets import read_set, replace_predictions
from mlops.kernel.db import ensure_schema, make_engine
from mlops.simulator.splits import resampled_production
from mlops.simulator.store import replace_set_blocks

SMALL, BIG = 1_000_000, 10_000_000


def load(engine, rows: int) -> str:
    """Load `rows` resampled production rows; say how fast (bench.harness.database_rate)."""

    def blocks():
        return ((block.features, block.target) for block in resampled_production(rows))

    rate, _ = database_rate(rows, lambda: replace_set_blocks(engine, "production", rows, blocks))
    return rate


def main() -> None:
    with postgres_database() as url:
        engine = make_engine(url)
        ensure_schema(engine)
        for evaluated in (True, False, True, False):
            load(engine, SMALL)
            if evaluated:
                with engine.begin() as connection:
                    small = read_set(connection, "production")
                    replace_predictions(connection, small.dataset_id, small.features.index, small.target.to_numpy(), 1)
            rate = load(engine, BIG)
            print(f"{BIG:,} rows replacing {SMALL:,} {'with' if evaluated else 'without'} their predictions: {rate}")
        engine.dispose()


if __name__ == "__main__":
    main()
