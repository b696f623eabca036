"""Production sets with a known fault: seeded clean draws from the reference's population, then
the faults a scenario names (shift, scale, noise, missing values, class priors, the fouling).

Where the clean rows come from (docs/monitoring-quality.md says why): a smoothed bootstrap of
real wine rows that are *not* in the monitoring reference. Each draw picks a real row of its
class and moves it by Gaussian noise shaped like that class's covariance, shrunk so that each
class keeps its mean and covariance (Silverman & Young's variance-corrected smoothed bootstrap).
So clean rows are continuous (no ties, as the real data has none), come from the wine
population, and are independent of the reference rows the verdict compares them with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops.kernel.db import FEATURES
from mlops.simulator.splits import Split, foul, wine_splits

# The real rows clean draws are made from; each pool leaves out one choice of monitoring reference.
POOLS: dict[str, tuple[str, ...]] = {
    # disjoint from the testing set, the reference of report / tests / verdict (the default)
    "training+production": ("training", "production"),
    # disjoint from training + testing, the verdict's larger reference
    "production": ("production",),
}
Pool = Literal["training+production", "production"]
# How values go missing: completely at random, or depending on another feature.
Mechanism = Literal["MCAR", "MAR"]
DEFAULT_POOL: Pool = "training+production"
DEFAULT_SIZE = 36
# The kernel's width relative to each class's spread: a draw is the class mean plus
# (row - mean + BANDWIDTH * noise) / sqrt(1 + BANDWIDTH**2), which keeps the class's covariance.
BANDWIDTH = 0.5
N_CLASSES = 3


@dataclass(frozen=True)
class MissingValues:
    """Which values go missing: a share of every feature's values, at random or driven by another feature."""

    rate: float
    mechanism: Mechanism = "MCAR"


@dataclass(frozen=True)
class Faults:
    """The faults of a scenario, already validated (feature names known, rates and factors in range)."""

    shift: dict[str, float]
    scale: dict[str, float]
    noise_sd: float = 0.0
    missing: MissingValues | None = None
    class_weights: tuple[float, ...] | None = None
    fouling: bool = False
    rows_from: Pool = DEFAULT_POOL


def relative(weights) -> np.ndarray:
    """Weights as probabilities; scaled by the largest first, so that weights near the float maximum
    do not sum to infinity (nor subnormal ones lose their ratios)."""
    scaled = np.asarray(weights, dtype=float) / np.max(weights)
    return scaled / np.sum(scaled)


@cache
def feature_moments() -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and standard deviation over the whole wine data (178 rows): the units
    of a scenario's `shift` (sd), `scale` (deviation from this mean) and `noise_sd` (sd)."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).data[list(FEATURES)].to_numpy(dtype=np.float64)
    return data.mean(axis=0), data.std(axis=0, ddof=1)


@cache
def _pool(rows_from: Pool) -> tuple[np.ndarray, np.ndarray]:
    """The real rows (features, classes) of a pool, before any fouling."""
    splits = wine_splits()
    names = POOLS[rows_from]
    features = np.vstack([splits[name].features.to_numpy(dtype=np.float64) for name in names])
    classes = np.concatenate([splits[name].target.to_numpy(dtype=np.int64) for name in names])
    return features, classes


def class_priors(rows_from: Pool) -> np.ndarray:
    """The share of each class among the pool's rows (what a clean draw keeps)."""
    _, classes = _pool(rows_from)
    return np.bincount(classes, minlength=N_CLASSES) / len(classes)


def draw_clean(
    size: int, rng: np.random.Generator, rows_from: Pool, class_weights=None
) -> tuple[np.ndarray, np.ndarray]:
    """`size` rows (features, classes) from the population of the pool's rows: see the module's docstring."""
    features, classes = _pool(rows_from)
    priors = class_priors(rows_from) if class_weights is None else relative(class_weights)
    drawn_classes = rng.choice(N_CLASSES, size=size, p=priors)
    drawn = np.empty((size, features.shape[1]))
    for label in range(N_CLASSES):
        where = np.flatnonzero(drawn_classes == label)
        if not len(where):
            continue
        rows = features[classes == label]
        mean = rows.mean(axis=0)
        picked = rows[rng.integers(0, len(rows), size=len(where))]
        noise = rng.multivariate_normal(np.zeros(rows.shape[1]), np.cov(rows, rowvar=False), size=len(where))
        drawn[where] = mean + (picked - mean + BANDWIDTH * noise) / np.sqrt(1 + BANDWIDTH**2)
    return drawn, drawn_classes


def draw_scenario(faults: Faults, size: int, seed: int) -> Split:
    """A production set of `size` clean rows with the faults applied, in this order: class priors
    (in the draw), scale, shift, noise, the walkthrough's fouling, missing values."""
    rng = np.random.default_rng(seed)
    values, classes = draw_clean(size, rng, faults.rows_from, faults.class_weights)
    mean, sd = feature_moments()
    for feature, factor in faults.scale.items():
        j = FEATURES.index(feature)
        values[:, j] = mean[j] + factor * (values[:, j] - mean[j])
    for feature, shift in faults.shift.items():
        j = FEATURES.index(feature)
        values[:, j] += shift * sd[j]
    if faults.noise_sd:
        values += rng.normal(0.0, faults.noise_sd, size=values.shape) * sd
    if faults.fouling:
        values = foul(values, values.std(axis=0), rng)
    if faults.missing is not None and faults.missing.rate:
        values[missing_mask(values, faults.missing, rng)] = np.nan
    return Split(pd.DataFrame(values, columns=list(FEATURES)), pd.Series(classes, name="target"))


def missing_mask(values: np.ndarray, missing: MissingValues, rng: np.random.Generator) -> np.ndarray:
    """Which values to blank: each with probability `rate` (MCAR), or (MAR) with a probability
    that grows with the rank of the next feature's value in the row (the last feature's driver
    is the first), from 0 to 2 x rate (capped at 1), so that about `rate` of each column goes."""
    n_rows, n_features = values.shape
    if missing.mechanism == "MCAR":
        return rng.random(values.shape) < missing.rate
    drivers = np.roll(values, -1, axis=1)
    # ranks of each driver column among its non-missing values (1..n); a missing driver counts as the middle
    ranks = pd.DataFrame(drivers).rank(axis=0).fillna((n_rows + 1) / 2).to_numpy()
    probability = np.minimum(1.0, 2 * missing.rate * ranks / (n_rows + 1))
    return rng.random((n_rows, n_features)) < probability


def ground_truth(faults: Faults, size: int) -> dict[str, Any]:
    """The scenario as stored with the set and shown by GET /root/simulator."""
    mean, sd = feature_moments()
    truth: dict[str, Any] = {
        "size": size,
        "rows_from": faults.rows_from,
        "shift": dict(faults.shift),
        "scale": dict(faults.scale),
        "noise_sd": faults.noise_sd,
        "missing": None
        if faults.missing is None
        else {"rate": faults.missing.rate, "mechanism": faults.missing.mechanism},
        "class_weights": None if faults.class_weights is None else list(faults.class_weights),
        "fouling": faults.fouling,
        # the units: shift and noise_sd are in these sd, scale stretches around these means
        "feature_sd": {feature: float(sd[FEATURES.index(feature)]) for feature in {**faults.shift, **faults.scale}},
        "feature_mean": {feature: float(mean[FEATURES.index(feature)]) for feature in faults.scale},
    }
    return truth
