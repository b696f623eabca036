"""Examples of the monitoring service's operations, in the walkthrough's words: the routes declare
them (app.py, examples=), and the OpenAPI document and docs/API.md show them."""

from __future__ import annotations

from mlops.kernel.examples import ABRIDGED, Example
from mlops.monitoring.checks import TEST_PRESETS

DATASETS = {
    "reference": {"set": "testing", "dataset_id": 2, "model_version": 3, "rows": 36, "rows_used": 36},
    "current": {"set": "production", "dataset_id": 3, "model_version": 3, "rows": 36, "rows_used": 36},
}
ALL_TESTS = list(TEST_PRESETS)
SUMMARY_MESSAGE = "41 of 86 tests did not pass: production data differs from testing data, consider re-training"

STATUS_EXAMPLES = [
    Example("Status", {"name": "monitoring", "message": "Monitoring"}),
]

MONITORING_EXAMPLES = [
    Example(
        "Evidently's report (abridged)",
        {
            "message": "Report of the production set (current) against the testing set (reference)",
            "data": {
                "version": "0.7.23",
                "metrics": [
                    {
                        "metric": "DatasetDriftMetric",
                        "result": {
                            "drift_share": 0.5,
                            "number_of_columns": 15,
                            "number_of_drifted_columns": 4,
                            "share_of_drifted_columns": 0.26666666666666666,
                            "dataset_drift": False,
                        },
                    },
                    ABRIDGED,
                ],
                "timestamp": "2026-11-26 18:04:21.105791",
            },
            "datasets": DATASETS,
            "notes": [],
        },
        body={"metric": "report"},
    ),
    Example(
        "The five test suites (abridged)",
        {
            "message": SUMMARY_MESSAGE,
            "data": {
                "version": "0.7.23",
                "tests": [
                    {
                        "name": "Share of Drifted Columns",
                        "description": "The drift is detected for 26.7% features (4 out of 15). The test threshold is lt=0.3",
                        "status": "SUCCESS",
                        "group": "data_drift",
                        "parameters": ABRIDGED,
                    },
                    ABRIDGED,
                ],
                "summary": {
                    "all_passed": False,
                    "total_tests": 86,
                    "success_tests": 45,
                    "failed_tests": 41,
                    "by_status": {"SUCCESS": 45, "FAIL": 41},
                },
                "timestamp": "2026-11-26 18:04:23.882911",
            },
            "tests": ALL_TESTS,
            "datasets": DATASETS,
            "notes": [],
        },
        body={"metric": "tests"},
    ),
    Example(
        "The summary of the chosen test suites: should the model be re-trained?",
        {
            "message": SUMMARY_MESSAGE,
            "data": {
                "all_passed": False,
                "total_tests": 86,
                "success_tests": 45,
                "failed_tests": 41,
                "by_status": {"SUCCESS": 45, "FAIL": 41},
            },
            "tests": ALL_TESTS,
            "datasets": DATASETS,
            "notes": [],
        },
        body={"metric": "summary", "tests": dict.fromkeys(ALL_TESTS, True)},
    ),
    Example(
        "The re-training verdict on the walkthrough's production set (abridged: 2 of the 13 features)",
        {
            "message": "Re-training advised: missing values 0.0% -> 2.8% (rows with one: 0% -> 28%)",
            "data": {
                "retraining_advised": True,
                "rule": {
                    "false_alarm_level": 0.05,
                    "families": ["distribution shift", "missing values", "prediction drift", "quality drop"],
                    "level_per_family": 0.0125,
                    "combined_by": "Bonferroni across the families: advised when any check fires",
                    "features_adjusted_by": "Benjamini-Hochberg across the features",
                },
                "reasons": [
                    {
                        "check": "distribution shift",
                        "feature": "alcohol",
                        "fired": False,
                        "effect": {
                            "standardised_mean_difference": 0.6058337725585415,
                            "wasserstein_distance_sd": 0.6144275886432922,
                        },
                        "test": "Cramér-von Mises, two-sample (Evidently cramer_von_mises), on the values present",
                        "p_value": 0.04190191286690659,
                        "adjusted_p_value": 0.08389032517166864,
                        "threshold": 0.0125,
                        "sizes": {"reference": 36, "current": 35},
                    },
                    {
                        "check": "distribution shift",
                        "feature": "ash",
                        "fired": False,
                        "effect": {
                            "standardised_mean_difference": 0.47763576653398776,
                            "wasserstein_distance_sd": 0.5239808395817458,
                        },
                        "test": "Cramér-von Mises, two-sample (Evidently cramer_von_mises), on the values present",
                        "p_value": 0.00501790119801504,
                        "adjusted_p_value": 0.02174423852473184,
                        "threshold": 0.0125,
                        "sizes": {"reference": 36, "current": 35},
                    },
                    ABRIDGED,
                    {
                        "check": "missing values",
                        "fired": True,
                        "effect": {
                            "missing_share_reference": 0.0,
                            "missing_share_current": 0.027777777777777776,
                            "change": 0.027777777777777776,
                            "rows_with_missing_reference": 0.0,
                            "rows_with_missing_current": 0.2777777777777778,
                            "features_missing_current": {"alcohol": 0.027777777777777776, "…": "…"},
                        },
                        "test": "Fisher's exact, one-sided: more rows with a missing value in current",
                        "p_value": 0.0004740417747336613,
                        "threshold": 0.0125,
                        "sizes": {"reference": 36, "current": 36},
                    },
                    {
                        "check": "prediction drift",
                        "fired": False,
                        "effect": {
                            "total_variation_distance": 0.1388888888888889,
                            "class_shares_reference": {
                                "0": 0.3611111111111111,
                                "1": 0.3611111111111111,
                                "2": 0.2777777777777778,
                            },
                            "class_shares_current": {"0": 0.5, "1": 0.2777777777777778, "2": 0.2222222222222222},
                        },
                        "test": "chi-square test of homogeneity of the predicted classes",
                        "statistic": 1.4199781829515348,
                        "p_value": 0.4916495606028587,
                        "threshold": 0.0125,
                        "sizes": {"reference": 36, "current": 36},
                    },
                    {
                        "check": "quality drop",
                        "fired": False,
                        "effect": {
                            "accuracy_reference": 0.9722222222222222,
                            "accuracy_current": 0.8333333333333334,
                            "change": -0.13888888888888884,
                            "change_interval": [-0.29283649571156006, 0.0050381019318852804],
                            "interval_level": 0.95,
                        },
                        "test": "Fisher's exact, one-sided: fewer correct predictions in current (true classes stored)",
                        "p_value": 0.05326703896317556,
                        "threshold": 0.0125,
                        "sizes": {"reference": 36, "current": 36},
                    },
                ],
            },
            "reference": "testing",
            "datasets": DATASETS,
            "notes": [],
        },
        body={"metric": "verdict"},
    ),
    Example(
        "The verdict against training and testing together (more rows, more power)",
        {
            "message": "No re-training advised: none of the 16 checks found production different from the "
            "reference (false-alarm level 5%)",
            "data": {"retraining_advised": False, "rule": ABRIDGED, "reasons": [ABRIDGED]},
            "reference": "training+testing",
            "datasets": DATASETS
            | {"training": {"set": "training", "dataset_id": 1, "model_version": 3, "rows": 106, "rows_used": 106}},
            "notes": [],
        },
        body={"metric": "verdict", "reference": "training+testing"},
    ),
    Example(
        "An unknown reference",
        body={"metric": "verdict", "reference": "production"},
        status=400,
    ),
    Example("Before the testing set is loaded", body={"metric": "report"}, status=409),
]

REPORT_PAGE_EXAMPLES = [
    Example("Open it in a browser: Evidently's report as a self-contained HTML page", "<!DOCTYPE html>…"),
]

TESTS_PAGE_EXAMPLES = [
    Example("Two of the test suites as an HTML page", "<!DOCTYPE html>…", query="tests=data_drift,data_quality"),
    Example(
        "An unknown test suite",
        query="tests=foo",
        status=400,
    ),
]
