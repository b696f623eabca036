"""Statistics, best run, prefixes and times, computed from plain run records (no MLflow)."""

from __future__ import annotations

import math

import pytest

from mlops.kernel.errors import NotFound
from mlops.tracking.deploy import model_of_run, parse_param_value
from mlops.tracking.mlflow import ExperimentCount, ExperimentRecord, RunRecord
from mlops.tracking.queries import (
    best_run,
    describe,
    experiment_general,
    experiment_statistics,
    experiments_overview,
    format_time,
    run_metrics,
    run_parameters,
    run_summary,
    statistic_names,
)
from tests.support.tracking import WALKTHROUGH_STATISTICS


def run(run_id="r1", experiment_id="1", status="FINISHED", start=0, end=1000, metrics=None, params=None, model="SVC"):
    return RunRecord(
        run_id=run_id,
        experiment_id=experiment_id,
        run_name=f"{model} Grid_Search_Opt and CV_Performance",
        status=status,
        lifecycle_stage="active",
        start_time=start,
        end_time=end,
        tags={"mlflow.runName": "x", "model_type": model, "experiment_type": "GridSearch_CrossValidation"},
        params=params or {},
        metrics=metrics or {},
    )


def test_describe_matches_hand_computed_values():
    stats = describe([4.0, 1.0, 3.0, 2.0])
    assert stats["mean"] == 2.5
    assert stats["median"] == 2.5
    assert stats["variance"] == pytest.approx(1.25)  # ((1.5² + 0.5²) * 2) / 4: population
    assert stats["std_dev"] == pytest.approx(math.sqrt(1.25))
    assert (stats["min"], stats["max"]) == (1.0, 4.0)
    assert stats["mode"] == 4.0  # no value repeats: the first one
    assert stats["iqr"] == 2.0  # sorted[3] - sorted[1] = 4 - 2


def test_describe_mode_is_the_most_common_value_and_iqr_uses_the_index_rule():
    stats = describe([5.0, 2.0, 2.0, 9.0, 7.0])
    assert stats["mode"] == 2.0
    assert stats["median"] == 5.0
    assert stats["iqr"] == 5.0  # n=5: sorted[3] - sorted[1] = 7 - 2
    assert stats["mean"] == 5.0
    assert stats["variance"] == pytest.approx((0 + 9 + 9 + 16 + 4) / 5)


def test_describe_of_one_value():
    assert describe([0.5]) == {
        "mean": 0.5,
        "median": 0.5,
        "std_dev": 0.0,
        "variance": 0.0,
        "min": 0.5,
        "max": 0.5,
        "mode": 0.5,
        "iqr": 0.0,
    }


# The per-run metrics the walkthrough's statistics example (WALKTHROUGH_STATISTICS) implies: three
# runs listed newest first (SVC, RandomForest, LogisticRegression). The LogisticRegression values
# are the ones the walkthrough shows for that run; accuracies are k/106 on the 106 training rows.
WALKTHROUGH_RUN_METRICS = [
    ("SVC", 0.6640186309814453, 97 / 106, 0.9145840674968364, 0.9189476849854208),
    ("RandomForest", 0.22951197624206543, 94 / 106, 0.8854538500764916, 0.8876836503450208),
    ("LogisticRegression", 0.0740654468536377, 98 / 106, 0.9237421383647799, 0.9257992656461439),
]


def walkthrough_runs() -> list[RunRecord]:
    return [
        run(
            run_id=model,
            model=model,
            metrics={
                "system_execution_time": duration,
                "system_cpu_usage": 18.6,
                "model_accuracy": accuracy,
                "model_f1_score": f1,
                "model_precision": precision,
                "model_recall": accuracy,  # weighted recall is the accuracy
            },
        )
        for model, duration, accuracy, f1, precision in WALKTHROUGH_RUN_METRICS
    ]


def test_statistics_reproduce_the_walkthrough_example_exactly():
    answer = experiment_statistics("1", walkthrough_runs(), statistic_names(["all"]))
    assert answer == WALKTHROUGH_STATISTICS  # equal to the last digit


def test_statistics_filter_names_and_metric_names():
    runs = walkthrough_runs()
    assert statistic_names(None) == list(WALKTHROUGH_STATISTICS)
    assert statistic_names(["all", "accuracy"]) == list(WALKTHROUGH_STATISTICS)
    assert statistic_names(["recall", "model_accuracy"]) == ["accuracy", "recall"]
    assert statistic_names(["system_execution_time"]) == ["duration"]
    answer = experiment_statistics("1", runs, ["duration"])
    assert answer == {"duration": WALKTHROUGH_STATISTICS["duration"]}


def test_statistics_skip_runs_without_metrics_and_404_when_none_has_them():
    runs = [*walkthrough_runs(), run(run_id="failed", status="FAILED")]
    assert experiment_statistics("1", runs, ["accuracy"]) == {"accuracy": WALKTHROUGH_STATISTICS["accuracy"]}
    with pytest.raises(NotFound):
        experiment_statistics("1", [run(status="FAILED")], ["accuracy"])


def test_best_run_is_the_highest_on_the_first_metric_then_the_next():
    runs = walkthrough_runs()
    best = best_run("1", runs, ["model_accuracy"])
    assert best == {
        "run_id": "LogisticRegression",
        "run_name": "LogisticRegression Grid_Search_Opt and CV_Performance",
        "model": "LogisticRegression",
        "metrics": {"model_accuracy": 98 / 106},
    }
    tied = [
        run(run_id="a", metrics={"model_accuracy": 0.9, "model_f1_score": 0.80}),
        run(run_id="b", metrics={"model_accuracy": 0.9, "model_f1_score": 0.85}),
        run(run_id="c", metrics={"model_accuracy": 0.8, "model_f1_score": 0.99}),
    ]
    assert best_run("1", tied, ["model_accuracy", "model_f1_score"])["run_id"] == "b"
    assert best_run("1", tied, ["model_f1_score"])["run_id"] == "c"
    with pytest.raises(NotFound):
        best_run("1", [run(status="FAILED")], ["model_accuracy"])


def test_prefixes_are_stripped_by_kind():
    record = run(
        params={
            "model_C": "0.1",
            "model_solver": "liblinear",
            "data_samples": "106",
            "data_features": "13",
            "data_classes": "3",
            "grid_search_C": "[0.1, 1]",
            "grid_search_solver": "['liblinear']",
            "grid_search_scoring": "accuracy",
            "grid_search_cv_folds": "5",
        },
        metrics={"model_accuracy": 0.9, "model_recall": 0.9, "system_cpu_usage": 18.6, "system_execution_time": 0.07},
    )
    assert run_parameters(record, "data") == {"classes": "3", "features": "13", "samples": "106"}
    assert run_parameters(record, "grid_search") == {
        "C": "[0.1, 1]",
        "cv_folds": "5",
        "scoring": "accuracy",
        "solver": "['liblinear']",
    }
    assert run_parameters(record, "model") == {"C": "0.1", "solver": "liblinear"}
    assert run_metrics(record, "system") == {"cpu_usage": 18.6, "execution_time": 0.07}
    assert run_metrics(record, "model") == {"accuracy": 0.9, "recall": 0.9}


def test_times_are_utc_to_the_second_and_system_tags_hidden():
    assert format_time(1730321056789) == "2024-10-30 20:44:16"
    assert format_time(None) is None
    summary = run_summary(run(start=1730321056789, end=None))
    assert summary["start_time"] == "2024-10-30 20:44:16"
    assert summary["end_time"] is None
    assert summary["tags"] == {"model_type": "SVC", "experiment_type": "GridSearch_CrossValidation"}


def test_general_counts_runs_by_status_with_first_start_and_last_end():
    experiment = ExperimentRecord(
        "1", "wine_test", "/app/mlruns/1", "active", {"owner": "Ale", "mlflow.note": "x"}, 0, 1000
    )
    runs = [
        run(status="FINISHED", start=3000, end=9000),
        run(status="FAILED", start=2000, end=2500),
        run(status="RUNNING", start=9500, end=None),
        run(status="KILLED", start=1000, end=1500),
    ]
    general = experiment_general(experiment, runs)
    assert general["experiment_info"]["tags"] == {"owner": "Ale"}
    assert general["experiment_info"]["data_creation"] == "1970-01-01 00:00:00"
    assert general["experiment_runs"] == {
        "number_of_runs": 4,
        "completed_runs": 1,
        "failed_runs": 1,
        "active_runs": 1,
        "stopped_runs": 1,
        "first_run_completed": "1970-01-01 00:00:01",
        "last_run_completed": "1970-01-01 00:00:09",
    }
    empty = experiment_general(experiment, [])["experiment_runs"]
    assert (empty["number_of_runs"], empty["first_run_completed"], empty["last_run_completed"]) == (0, None, None)


def test_overview_shows_each_experiment_with_its_run_count():
    overview = experiments_overview([ExperimentCount("1", "e1", "active", 2), ExperimentCount("2", "e2", "active", 0)])
    assert overview == [
        {"experiment_id": "1", "name": "e1", "lifecycle_stage": "active", "run_count": 2},
        {"experiment_id": "2", "name": "e2", "lifecycle_stage": "active", "run_count": 0},
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("None", None),
        ("True", True),
        ("False", False),
        ("3", 3),
        ("-2", -2),
        ("0.1", 0.1),
        ("1e-3", 0.001),
        ("liblinear", "liblinear"),
        ("scale", "scale"),
        ("nan", "nan"),
        ("inf", "inf"),
    ],
)
def test_logged_param_text_goes_back_to_its_value(text, value):
    assert parse_param_value(text) == value
    assert type(parse_param_value(text)) is type(value)


def test_model_of_a_run_is_its_type_and_best_hyperparameters():
    record = run(
        model="RandomForest", params={"model_max_depth": "None", "model_n_estimators": "3", "data_samples": "106"}
    )
    assert model_of_run(record) == {
        "model_name": "RandomForest",
        "hyperparameters": {"max_depth": None, "n_estimators": 3},
    }
    from mlops.kernel.errors import Conflict

    with pytest.raises(Conflict):
        model_of_run(run(status="FAILED"))
