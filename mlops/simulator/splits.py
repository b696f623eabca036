"""The wine splits: training 60 %, the rest halved into testing and production, production fouled."""

from __future__ import annotations

from collections.abc import Iterator
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
# A resampled production set is made and written this many rows at a time; about three blocks
# are held at once (one being made, one waiting, one being encoded), 6 MB of features each.
RESAMPLE_BLOCK_ROWS = 65_536


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
    if size is not None:
        blocks = list(resampled_production(size, seed))
        return Split(
            pd.concat([block.features for block in blocks], ignore_index=True),
            pd.concat([block.target for block in blocks], ignore_index=True),
        )
    rng = np.random.default_rng(seed)
    values = split.features.to_numpy(dtype=np.float64, copy=True)
    target = split.target.to_numpy(dtype=np.int64)
    return Split(
        pd.DataFrame(foul(values, values.std(axis=0, ddof=0), rng), columns=split.features.columns),
        pd.Series(target, name=split.target.name),
    )


def resampled_production(size: int, seed: int = SEED, block_rows: int = RESAMPLE_BLOCK_ROWS) -> Iterator[Split]:
    """Production's rows resampled (with replacement, seeded) to `size` rows and fouled, yielded a
    block of rows at a time, so that a set of any size is made in constant memory.

    The same seed and size (and block_rows) always give the same rows; another size gives another
    sample (the size is part of the seed). Three generators each serve one purpose: which rows are
    picked, the noise, and which values go missing (exactly MISSING_FRACTION of each column,
    spread over the blocks in proportion to their rows).
    """
    base = wine_splits()["production"]
    values = base.features.to_numpy(dtype=np.float64)
    target = base.target.to_numpy(dtype=np.int64)

    def picks() -> Iterator[np.ndarray]:
        rng = np.random.default_rng([seed, size, 1])
        for start in range(0, size, block_rows):
            yield rng.integers(0, len(target), size=min(block_rows, size - start))

    # The spread of the resampled rows, from how often each row is picked (a first pass over the
    # picks only): the same statistic as over the whole resampled set, never held.
    counts = sum((np.bincount(picked, minlength=len(target)) for picked in picks()), np.zeros(len(target), np.int64))
    spread = weighted_std(values, counts)
    noise = np.random.default_rng([seed, size, 2])
    missing = np.random.default_rng([seed, size, 3])
    n_missing = max(1, round(MISSING_FRACTION * size))
    start = 0
    for picked in picks():
        stop = start + len(picked)
        block = values[picked]
        _add_noise(block, spread, noise)
        # rows start..stop get their share of the column's missing values
        share = n_missing * stop // size - n_missing * start // size
        for column in range(block.shape[1]):
            block[missing.choice(len(block), size=share, replace=False), column] = np.nan
        yield Split(
            pd.DataFrame(block, columns=base.features.columns), pd.Series(target[picked], name=base.target.name)
        )
        start = stop


def weighted_std(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per column, the (population) standard deviation of the rows repeated counts times."""
    mean = counts @ values / counts.sum()
    return np.sqrt(counts @ (values - mean) ** 2 / counts.sum())


def foul(values: np.ndarray, spread: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add noise and a shift scaled to each column's spread, then blank ~3 % of every column.

    Works in place on `values` (rows x features) and returns it.
    """
    n_rows, n_cols = values.shape
    _add_noise(values, spread, rng)
    n_missing = max(1, round(MISSING_FRACTION * n_rows)) if n_rows else 0
    for column in range(n_cols):
        values[rng.choice(n_rows, size=n_missing, replace=False), column] = np.nan
    return values


def _add_noise(values: np.ndarray, spread: np.ndarray, rng: np.random.Generator) -> None:
    """Add Gaussian noise and a shift scaled to each column's spread, in place."""
    spread = np.where(spread == 0, 1.0, spread)
    # Drawn a block of rows at a time: the same numbers as one draw of the whole shape (the
    # generator fills it row by row), without a second array as big as the set.
    for start in range(0, len(values), NOISE_BLOCK_ROWS):
        block = values[start : start + NOISE_BLOCK_ROWS]
        block += rng.normal(SHIFT_SCALE, NOISE_SCALE, size=block.shape) * spread
