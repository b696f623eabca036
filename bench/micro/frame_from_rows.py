"""Building the 13-feature frame of a predict request: from nested lists vs from one numpy array
(docs/performance.md, "Figures behind the code"). Run: .venv/bin/python bench/micro/frame_from_rows.py"""

import timeit

import numpy as np
import pandas as pd

from mlops.kernel.db import FEATURES


def best_of(function, number: int = 50) -> float:
    """The best per-call time of function over 5 repeats of `number` calls."""
    return min(timeit.repeat(function, number=number, repeat=5)) / number


for rows in (1, 100, 10_000):
    values = [[float(j) for j in range(13)] for _ in range(rows)]
    lists = best_of(lambda values=values: pd.DataFrame(values, columns=FEATURES, dtype=np.float64))
    array = best_of(
        lambda values=values: pd.DataFrame(np.array(values, dtype=np.float64), columns=FEATURES, copy=False)
    )
    print(f"{rows} rows: nested lists {lists * 1e3:.3f} ms, one array {array * 1e3:.3f} ms, ratio {lists / array:.1f}x")
