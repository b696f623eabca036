"""Evidently behind one module: the monitoring report, the test suites, their summary and HTML.

This is the only module that imports Evidently, and it does so inside the functions: the import
takes seconds, and the service must start (and answer /health) without waiting for it. An
Evidently upgrade touches this file only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.kernel.db import FEATURES
from mlops.kernel.errors import Conflict
from mlops.kernel.imports import import_heavy

if TYPE_CHECKING:
    from evidently.legacy.report import Report
    from evidently.legacy.test_suite import TestSuite

TARGET = "target"
PREDICTION = "prediction"
# The request's names of the test presets, in the order they run.
TEST_PRESETS = (
    "data_drift",
    "data_quality",
    "data_stability",
    "no_target_performance",
    "multi_class_classification",
)


@dataclass(frozen=True)
class EvidentlyRun:
    """A computed Evidently report or test suite, and its JSON (made at once: it is where Evidently
    raises the errors of metrics that could not be computed)."""

    evidently: Report | TestSuite
    json: dict[str, Any]

    def html(self) -> str:
        """A self-contained HTML page of the run: Evidently's script, font and data inline."""
        return self.evidently.get_html()


def import_evidently() -> None:
    """Import the parts of Evidently used here (the first import takes seconds)."""
    import_heavy(
        "evidently.legacy.calculations.stattests",
        "evidently.legacy.metric_preset",
        "evidently.legacy.pipeline.column_mapping",
        "evidently.legacy.report",
        "evidently.legacy.test_preset",
        "evidently.legacy.test_suite",
    )


def column_mapping():
    """Tell Evidently which column is what: the 13 wine features are numerical, the task classification."""
    from evidently.legacy.pipeline.column_mapping import ColumnMapping

    return ColumnMapping(
        target=TARGET,
        prediction=PREDICTION,
        numerical_features=list(FEATURES),
        task="classification",
    )


def run_report(reference: pd.DataFrame, current: pd.DataFrame) -> EvidentlyRun:
    """Compute data drift, data quality, target drift and classification metrics of current against reference."""
    import_evidently()
    from evidently.legacy.metric_preset import (
        ClassificationPreset,
        DataDriftPreset,
        DataQualityPreset,
        TargetDriftPreset,
    )
    from evidently.legacy.report import Report

    report = Report(metrics=[DataDriftPreset(), DataQualityPreset(), TargetDriftPreset(), ClassificationPreset()])
    return _run(report, reference, current)


def run_test_suite(reference: pd.DataFrame, current: pd.DataFrame, presets: tuple[str, ...]) -> EvidentlyRun:
    """Run the named test presets (names from TEST_PRESETS) on current against reference."""
    import_evidently()
    from evidently.legacy.test_preset import (
        DataDriftTestPreset,
        DataQualityTestPreset,
        DataStabilityTestPreset,
        MulticlassClassificationTestPreset,
        NoTargetPerformanceTestPreset,
    )
    from evidently.legacy.test_suite import TestSuite

    preset_classes = {
        "data_drift": DataDriftTestPreset,
        "data_quality": DataQualityTestPreset,
        "data_stability": DataStabilityTestPreset,
        "no_target_performance": NoTargetPerformanceTestPreset,
        "multi_class_classification": MulticlassClassificationTestPreset,
    }
    suite = TestSuite(tests=[preset_classes[name]() for name in presets])
    return _run(suite, reference, current)


def _run(check: Report | TestSuite, reference: pd.DataFrame, current: pd.DataFrame) -> EvidentlyRun:
    try:
        check.run(reference_data=reference, current_data=current, column_mapping=column_mapping())
        # NaN and infinities are not JSON: they become null
        return EvidentlyRun(check, json.loads(check.json(), parse_constant=lambda _constant: None))
    except ValueError as error:
        # Evidently refuses data it cannot compute on (e.g. a column that is entirely missing);
        # that is a property of the stored sets, which the user can change, not a fault of ours.
        raise Conflict(
            f"Evidently cannot compute on the stored sets: {error}. Reload the production set with more "
            'rows (POST /root/simulator {"set_name": "production"}) and evaluate it again',
            error="Data not usable for monitoring",
        ) from None


def distribution_shift(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Evidently's two-sample Cramér-von Mises test of one feature (its p-value), and Evidently's
    Wasserstein distance between the two, in units of the reference's standard deviation.

    Both arrays must be free of missing values and hold at least two values each.
    """
    import_evidently()
    from evidently.legacy.calculations.stattests import cramer_von_mises, wasserstein_stat_test
    from evidently.legacy.core import ColumnType

    # Evidently's Cramér-von Mises reads a Series; the thresholds are not used: the verdict
    # decides from the p-values of all features at once.
    p_value = cramer_von_mises(pd.Series(reference), pd.Series(current), ColumnType.Numerical, 0.05).drift_score
    distance = wasserstein_stat_test(reference, current, ColumnType.Numerical, 0.1).drift_score
    return float(p_value), float(distance)


def summary_of(suite_json: dict[str, Any]) -> dict[str, Any]:
    """The suite's summary as Evidently words it: all_passed, total/success/failed counts, by_status."""
    return suite_json["summary"]
