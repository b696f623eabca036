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
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, train_size=TRAIN_SIZE, stratify=y, random_state=SEED
    )
    X_test, X_prod, y_test, y_prod = train_test_split(
        X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=SEED
    )
    return {
        "training": _reindexed(X_train, y_train),
        "testing": _reindexed(X_test, y_test),
        "production": _reindexed(X_prod, y_prod),
    }


def _reindexed(X: pd.DataFrame, y: pd.Series) -> Split:
    X = X.reset_index(drop=True).astype("float64")
    y = y.reset_index(drop=True).astype("int64")
    return Split(X, y)


def load_split(set_name: str, size: int | None = None) -> Split:
    """The named set; production is fouled, and `size` resamples production's rows (seeded)."""
    split = wine_splits()[set_name]
    if set_name != "production":
        return split
    rng = np.random.default_rng(SEED)
    if size is not None:
        picked = rng.integers(0, len(split.target), size=size)
        split = Split(
            split.features.iloc[picked].reset_index(drop=True),
            split.target.iloc[picked].reset_index(drop=True),
        )
    return Split(foul(split.features, rng), split.target)


def foul(features: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Add noise and a shift scaled to each column's spread, then blank ~3 % of every column."""
    values = features.to_numpy(copy=True)
    spread = values.std(axis=0, ddof=0)
    spread[spread == 0] = 1.0
    values += rng.normal(SHIFT_SCALE, NOISE_SCALE, size=values.shape) * spread
    n_rows, n_cols = values.shape
    n_missing = max(1, round(MISSING_FRACTION * n_rows)) if n_rows else 0
    for column in range(n_cols):
        values[rng.choice(n_rows, size=n_missing, replace=False), column] = np.nan
    return pd.DataFrame(values, columns=features.columns)
