"""The re-training verdict: a few families of statistical checks of production against the
reference, each at a stated level, so that a healthy production set raises it rarely (at most
FALSE_ALARM_LEVEL of the time, by Bonferroni across the families), and every reason is shown.

The families (docs/monitoring-quality.md gives the measured error rates):
- distribution shift: Evidently's Cramér-von Mises test per feature on the values present, the
  13 p-values adjusted together (Benjamini-Hochberg: under no shift at all, the chance that any
  feature fires stays at the family's level; with several shifted features it finds more);
- missing values, a signal of their own (the drift tests drop them): Fisher's exact test,
  one-sided, on the rows with at least one missing value;
- prediction drift: the chi-square test of homogeneity of the predicted classes;
- quality drop, where the true classes are stored: Fisher's exact test, one-sided, on the
  correct predictions, with the change of accuracy's 95 % interval (Newcombe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops.kernel.db import FEATURES
from mlops.monitoring.checks import PREDICTION, TARGET, distribution_shift

FALSE_ALARM_LEVEL = 0.05
FAMILIES = ("distribution shift", "missing values", "prediction drift", "quality drop")
FAMILY_LEVEL = FALSE_ALARM_LEVEL / len(FAMILIES)
INTERVAL_LEVEL = 0.95


@dataclass(frozen=True)
class Verdict:
    """Whether re-training is advised, and every check considered with its figures."""

    retraining_advised: bool
    reasons: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "retraining_advised": self.retraining_advised,
            "rule": {
                "false_alarm_level": FALSE_ALARM_LEVEL,
                "families": list(FAMILIES),
                "level_per_family": FAMILY_LEVEL,
                "combined_by": "Bonferroni across the families: advised when any check fires",
                "features_adjusted_by": "Benjamini-Hochberg across the features",
            },
            "reasons": self.reasons,
        }

    def fired(self) -> list[dict[str, Any]]:
        """The checks that fired."""
        return [reason for reason in self.reasons if reason["fired"]]

    def message(self) -> str:
        """Say in one sentence what the verdict means and why."""
        fired = self.fired()
        if not fired:
            return (
                f"No re-training advised: none of the {len(self.reasons)} checks found production different "
                f"from the reference (false-alarm level {FALSE_ALARM_LEVEL:.0%})"
            )
        return "Re-training advised: " + "; ".join(describe(reason) for reason in fired)


def describe(reason: dict[str, Any]) -> str:
    """A check's effect in a few words."""
    effect = reason["effect"]
    check = reason["check"]
    if check == "distribution shift":
        if effect["wasserstein_distance_sd"] is None:
            return f"{reason['feature']}: not tested"
        mean_shift = effect["standardised_mean_difference"]
        shown = "n/a" if mean_shift is None else f"{mean_shift:+.2f} sd"
        return f"{reason['feature']}: mean {shown}, Wasserstein {effect['wasserstein_distance_sd']:.2f} sd"
    if check == "missing values":
        return (
            f"missing values {effect['missing_share_reference']:.1%} -> {effect['missing_share_current']:.1%} "
            f"(rows with one: {effect['rows_with_missing_reference']:.0%} -> {effect['rows_with_missing_current']:.0%})"
        )
    if check == "prediction drift":
        return f"predicted classes: {effect['total_variation_distance']:.0%} of the predictions' shares moved"
    low, high = effect["change_interval"]
    return (
        f"accuracy {effect['accuracy_reference']:.1%} -> {effect['accuracy_current']:.1%} "
        f"({effect['change']:+.1%}, {INTERVAL_LEVEL:.0%} interval {low:+.1%} to {high:+.1%})"
    )


def decide(reference: pd.DataFrame, current: pd.DataFrame, labelled_reference: pd.DataFrame) -> Verdict:
    """Run every check of current against reference; quality compares against labelled_reference,
    whose predictions were not fitted on (the testing set)."""
    ref_features = reference[list(FEATURES)].to_numpy(dtype=np.float64)
    cur_features = current[list(FEATURES)].to_numpy(dtype=np.float64)
    reasons = [
        *feature_shifts(ref_features, cur_features),
        missing_values(ref_features, cur_features),
        prediction_drift(reference[PREDICTION].to_numpy(), current[PREDICTION].to_numpy()),
    ]
    if current[TARGET].notna().all():
        reasons.append(
            quality_drop(
                labelled_reference[PREDICTION].to_numpy(),
                labelled_reference[TARGET].to_numpy(),
                current[PREDICTION].to_numpy(),
                current[TARGET].to_numpy(),
            )
        )
    return Verdict(any(reason["fired"] for reason in reasons), reasons)


def feature_shifts(reference: np.ndarray, current: np.ndarray) -> list[dict[str, Any]]:
    """One reason per feature (the columns of both arrays, NaN for missing values): Cramér-von Mises
    p-value, its Benjamini-Hochberg adjustment, the standardised mean difference, Wasserstein in sd."""
    from scipy.stats import false_discovery_control

    reasons = []
    p_values = []
    for j, feature in enumerate(FEATURES):
        ref = reference[:, j][~np.isnan(reference[:, j])]
        cur = current[:, j][~np.isnan(current[:, j])]
        reason: dict[str, Any] = {
            "check": "distribution shift",
            "feature": feature,
            "test": "Cramér-von Mises, two-sample (Evidently cramer_von_mises), on the values present",
            "sizes": {"reference": len(ref), "current": len(cur)},
        }
        if len(ref) < 2 or len(cur) < 2:
            reason |= {
                "p_value": None,
                "adjusted_p_value": None,
                "threshold": FAMILY_LEVEL,
                "fired": False,
                "effect": {"standardised_mean_difference": None, "wasserstein_distance_sd": None},
                "note": "fewer than 2 values present on one side: not tested (see the missing values check)",
            }
        else:
            p_value, distance = distribution_shift(ref, cur)
            sd = ref.std(ddof=1)
            reason |= {
                "p_value": p_value,
                "effect": {
                    "standardised_mean_difference": float((cur.mean() - ref.mean()) / sd) if sd > 0 else None,
                    "wasserstein_distance_sd": distance,
                },
            }
            p_values.append(p_value)
        reasons.append(reason)
    adjusted = iter(false_discovery_control(p_values) if p_values else [])
    for reason in reasons:
        if reason["p_value"] is not None:
            q = float(next(adjusted))
            reason |= {"adjusted_p_value": q, "threshold": FAMILY_LEVEL, "fired": q <= FAMILY_LEVEL}
    return [_ordered(reason) for reason in reasons]


def missing_values(reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    """Whether current has more rows with a missing feature than reference (Fisher's exact, one-sided)."""
    from scipy.stats import fisher_exact

    ref_values, cur_values = np.isnan(reference), np.isnan(current)
    ref_rows, cur_rows = int(ref_values.any(axis=1).sum()), int(cur_values.any(axis=1).sum())
    n_ref, n_cur = len(reference), len(current)
    table = [[cur_rows, n_cur - cur_rows], [ref_rows, n_ref - ref_rows]]
    p_value = float(fisher_exact(table, alternative="greater").pvalue)
    ref_share, cur_share = float(ref_values.mean()), float(cur_values.mean())
    return _ordered(
        {
            "check": "missing values",
            "test": "Fisher's exact, one-sided: more rows with a missing value in current",
            "p_value": p_value,
            "threshold": FAMILY_LEVEL,
            "fired": p_value <= FAMILY_LEVEL,
            "effect": {
                "missing_share_reference": ref_share,
                "missing_share_current": cur_share,
                "change": cur_share - ref_share,
                "rows_with_missing_reference": ref_rows / n_ref,
                "rows_with_missing_current": cur_rows / n_cur,
                "features_missing_current": {
                    feature: float(share)
                    for feature, share in zip(FEATURES, cur_values.mean(axis=0), strict=True)
                    if share > 0
                },
            },
            "sizes": {"reference": n_ref, "current": n_cur},
        }
    )


def prediction_drift(reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    """Whether the predicted classes are distributed differently (chi-square test of homogeneity)."""
    from scipy.stats import chi2_contingency

    classes = np.union1d(reference, current)
    table = np.array([[np.sum(reference == c) for c in classes], [np.sum(current == c) for c in classes]])
    if len(classes) > 1:
        result = chi2_contingency(table)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    else:  # one class on both sides: nothing moved
        statistic, p_value = 0.0, 1.0
    ref_shares, cur_shares = table[0] / table[0].sum(), table[1] / table[1].sum()
    return _ordered(
        {
            "check": "prediction drift",
            "test": "chi-square test of homogeneity of the predicted classes",
            "statistic": statistic,
            "p_value": p_value,
            "threshold": FAMILY_LEVEL,
            "fired": p_value <= FAMILY_LEVEL,
            "effect": {
                "total_variation_distance": float(np.abs(ref_shares - cur_shares).sum() / 2),
                "class_shares_reference": {str(c): float(s) for c, s in zip(classes, ref_shares, strict=True)},
                "class_shares_current": {str(c): float(s) for c, s in zip(classes, cur_shares, strict=True)},
            },
            "sizes": {"reference": int(table[0].sum()), "current": int(table[1].sum())},
        }
    )


def quality_drop(
    ref_predicted: np.ndarray, ref_true: np.ndarray, cur_predicted: np.ndarray, cur_true: np.ndarray
) -> dict[str, Any]:
    """Whether accuracy dropped (Fisher's exact, one-sided), with the change's 95 % interval."""
    from scipy.stats import fisher_exact
    from statsmodels.stats.proportion import confint_proportions_2indep

    ref_right, cur_right = int((ref_predicted == ref_true).sum()), int((cur_predicted == cur_true).sum())
    n_ref, n_cur = len(ref_true), len(cur_true)
    table = [[n_cur - cur_right, cur_right], [n_ref - ref_right, ref_right]]
    p_value = float(fisher_exact(table, alternative="greater").pvalue)
    low, high = confint_proportions_2indep(
        cur_right, n_cur, ref_right, n_ref, method="newcomb", compare="diff", alpha=1 - INTERVAL_LEVEL
    )
    return _ordered(
        {
            "check": "quality drop",
            "test": "Fisher's exact, one-sided: fewer correct predictions in current (true classes stored)",
            "p_value": p_value,
            "threshold": FAMILY_LEVEL,
            "fired": p_value <= FAMILY_LEVEL,
            "effect": {
                "accuracy_reference": ref_right / n_ref,
                "accuracy_current": cur_right / n_cur,
                "change": cur_right / n_cur - ref_right / n_ref,
                "change_interval": [float(low), float(high)],
                "interval_level": INTERVAL_LEVEL,
            },
            "sizes": {"reference": n_ref, "current": n_cur},
        }
    )


_KEY_ORDER = (
    "check",
    "feature",
    "fired",
    "effect",
    "test",
    "statistic",
    "p_value",
    "adjusted_p_value",
    "threshold",
    "sizes",
    "note",
)


def _ordered(reason: dict[str, Any]) -> dict[str, Any]:
    """The reason's keys in reading order: what, whether it fired, how much, then the test's figures."""
    return {key: reason[key] for key in _KEY_ORDER if key in reason}
