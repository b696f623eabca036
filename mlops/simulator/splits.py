"""The wine splits: training 60 %, the rest halved into testing and production, production fouled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops.kernel.db import FEATURES

SEED = 42
TRAIN_SIZE = 0.6
# Production is "fouled" to look like dirty real-world data: every value gets Gaussian noise
# (a fraction of its column's spread) plus a shift, and ~3 % of each column goes missing.
NOISE_SCALE = 0.3
SHIFT_SCALE = 0.5
MISSING_FRACTION = 0.03
NOISE_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class Split:
    """One set: features under the API's feature names, and the true classes."""

    features: pd.DataFrame
    target: pd.Series


def wine_splits() -> dict[str, Split]:
    """Split scikit-learn's wine data, stratified with seed 42: 106 / 36 / 36 samples."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    wine = load_wine(as_frame=True)
    X = wine.data[list(FEATURES)]
    y = wine.target
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, train_size=TRAIN_SIZE, stratify=y, random_state=SEED)
    X_test, X_prod, y_test, y_prod = train_test_split(X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=SEED)
    return {
        "training": _reindexed(X_train, y_train),
        "testing": _reindexed(X_test, y_test),
        "production": _reindexed(X_prod, y_prod),
    }


def _reindexed(X: pd.DataFrame, y: pd.Series) -> Split:
    X = X.reset_index(drop=True).astype("float64")
    y = y.reset_index(drop=True).astype("int64")
    return Split(X, y)


def load_split(set_name: str, size: int | None = None, seed: int = SEED) -> Split:
    """The named set; production is fouled, and `size` resamples production's rows (seeded)."""
    split = wine_splits()[set_name]
    if set_name != "production":
        return split
    rng = np.random.default_rng(seed)
    values = split.features.to_numpy(dtype=np.float64, copy=True)
    target = split.target.to_numpy(dtype=np.int64)
    if size is not None:
        # Whole-array takes (docs/performance.md, P4). The features stay column-major
        # (as pandas stores them), so the spread below sums each column as it always did.
        picked = rng.integers(0, len(target), size=size)
        # The spread of the resampled rows, from how often each row was picked: the same
        # statistic as over the big array, without two temporary copies of it.
        spread = weighted_std(values, np.bincount(picked, minlength=len(target)))
        values, target = np.take(values.T, picked, axis=1).T, target[picked]
    else:
        spread = values.std(axis=0, ddof=0)
    return Split(
        pd.DataFrame(foul(values, spread, rng), columns=split.features.columns),
        pd.Series(target, name=split.target.name),
    )


def weighted_std(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per column, the (population) standard deviation of the rows repeated counts times."""
    mean = counts @ values / counts.sum()
    return np.sqrt(counts @ (values - mean) ** 2 / counts.sum())


def foul(values: np.ndarray, spread: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add noise and a shift scaled to each column's spread, then blank ~3 % of every column.

    Works in place on `values` (rows x features) and returns it.
    """
    spread = spread.copy()
    spread[spread == 0] = 1.0
    n_rows, n_cols = values.shape
    # The noise is drawn a block of rows at a time: the same numbers as one draw of the whole
    # shape (the generator fills it row by row), without a second array as big as the set.
    for start in range(0, n_rows, NOISE_BLOCK_ROWS):
        block = values[start : start + NOISE_BLOCK_ROWS]
        block += rng.normal(SHIFT_SCALE, NOISE_SCALE, size=block.shape) * spread
    n_missing = max(1, round(MISSING_FRACTION * n_rows)) if n_rows else 0
    for column in range(n_cols):
        values[rng.choice(n_rows, size=n_missing, replace=False), column] = np.nan
    return values
