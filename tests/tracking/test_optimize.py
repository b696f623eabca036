"""Checking an optimization request, and the grid search + cross-validation of one model (no MLflow)."""

from __future__ import annotations

import pytest

from mlops.kernel.config import Settings
from mlops.kernel.errors import BadRequest
from mlops.simulator.splits import load_split
from mlops.tracking.optimize import SearchFailed, run_metrics, run_params, search_model
from mlops.tracking.plan import ModelSearch, check_against_data, plan_searches
from mlops.tracking.schemas import OptimizationRequest
from tests.support.tracking import WALKTHROUGH_LR_ACCURACY, WALKTHROUGH_OPTIMIZATION, optimization

SETTINGS = Settings(n_jobs=2)


@pytest.fixture(scope="module")
def training():
    """The training split as read_set returns it (features by API name, targets)."""
    from mlops.kernel.datasets import LoadedSet

    split = load_split("training")
    return LoadedSet("training", 1, None, split.features, split.target)


def request(**changes) -> OptimizationRequest:
    return OptimizationRequest.model_validate(optimization(**changes))


def test_the_walkthrough_request_plans_three_searches():
    searches = plan_searches(OptimizationRequest.model_validate(WALKTHROUGH_OPTIMIZATION), SETTINGS)
    assert [(s.model_name, s.candidates) for s in searches] == [
        ("LogisticRegression", 2),
        ("RandomForest", 8),
        ("SVC", 8),
    ]


@pytest.mark.parametrize(
    ("changes", "error", "says"),
    [
        ({"hyperparameters": {"SVC": {"degre": [2]}}}, "Invalid hyperparameter", "degre"),
        ({"hyperparameters": {"SVC": {"kernel": ["cosine"]}}}, "Invalid hyperparameter", "kernel"),
        ({"hyperparameters": {"SVC": {"C": [-1]}}}, "Invalid hyperparameter", "C"),
        ({"hyperparameters": {"SVC": {"C": []}}}, "Invalid request", "at least one value"),
        ({"hyperparameters": {"KNN": {"k": [1]}}}, "Model not Found", "'RandomForest', 'SVC' or 'LogisticRegression'"),
        ({"models": ["SVC"]}, "Invalid request", "not in `models`"),
        ({"models": ["SVC", "SVC"], "hyperparameters": {}}, "Invalid request", "more than once"),
        ({"scoring": "acuracy"}, "Invalid scoring", "acuracy"),
    ],
)
def test_bad_grids_and_scorings_are_refused_before_any_work(changes, error, says):
    with pytest.raises(BadRequest) as refused:
        plan_searches(request(**changes), SETTINGS)
    assert refused.value.error == error
    assert says in refused.value.message


def test_a_grid_over_the_fit_limit_is_refused_naming_the_count():
    # (2 + 8 + 8) candidates x 5 folds = 90 fits
    assert plan_searches(request(), SETTINGS.model_copy(update={"grid_max_fits": 90}))
    with pytest.raises(BadRequest) as refused:
        plan_searches(request(), SETTINGS.model_copy(update={"grid_max_fits": 89}))
    assert refused.value.error == "Grid too large"
    assert "90 fits" in refused.value.message and "89" in refused.value.message


def test_a_model_without_a_grid_is_searched_with_its_defaults(training):
    searches = plan_searches(request(models=["SVC"], hyperparameters={}), SETTINGS)
    assert searches == [ModelSearch("SVC", {})]
    result = search_model(searches[0], training.features, training.target, scoring="accuracy", cv=3, n_jobs=1)
    assert result.best_params == {}
    assert 0.5 < result.metrics["accuracy"] <= 1


def test_cv_must_fit_the_smallest_class_and_scoring_the_three_classes(training):
    smallest = int(training.target.value_counts().min())
    check_against_data(request(cv=smallest), training)
    with pytest.raises(BadRequest) as refused:
        check_against_data(request(cv=smallest + 1), training)
    assert refused.value.error == "Invalid cv" and str(smallest) in refused.value.message
    with pytest.raises(BadRequest) as refused:
        check_against_data(request(scoring="f1"), training)  # binary f1 on three classes
    assert refused.value.error == "Invalid scoring"
    check_against_data(request(scoring="f1_weighted"), training)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_a_training_set_with_missing_or_infinite_features_is_refused_before_any_fit(training, bad_value):
    # The fits then skip scikit-learn's own finiteness checks, so this is the one check.
    from mlops.kernel.datasets import LoadedSet

    features = training.features.copy()
    features.iloc[3, 2] = bad_value
    with pytest.raises(BadRequest) as refused:
        check_against_data(request(), LoadedSet("training", 1, None, features, training.target))
    assert refused.value.error == "Invalid training set"
    assert "POST /root/simulator" in refused.value.message


def test_walkthrough_logistic_regression_grid_scores_honestly(training):
    """liblinear on three classes (one-vs-rest) succeeds, with the walkthrough's accuracy."""
    search = ModelSearch("LogisticRegression", {"C": [0.1, 1], "solver": ["liblinear"]})
    result = search_model(search, training.features, training.target, scoring="accuracy", cv=5, n_jobs=2)
    assert result.best_params == {"C": 0.1, "solver": "liblinear"}
    assert result.metrics["accuracy"] == pytest.approx(WALKTHROUGH_LR_ACCURACY)
    assert result.metrics["recall"] == pytest.approx(result.metrics["accuracy"])  # weighted recall
    assert 0.9 < result.metrics["f1_score"] < 1 and 0.9 < result.metrics["precision"] < 1
    assert result.execution_time > 0 and 0 <= result.cpu_usage <= 100
    assert result.best_estimator.predict(training.features.iloc[:3]).shape == (3,)

    params = run_params(search, result, training, "accuracy", 5)
    assert params == {
        "model_C": "0.1",
        "model_solver": "liblinear",
        "data_samples": "106",
        "data_features": "13",
        "data_classes": "3",
        "grid_search_C": "[0.1, 1]",
        "grid_search_solver": "['liblinear']",
        "grid_search_scoring": "accuracy",
        "grid_search_cv_folds": "5",
    }
    assert set(run_metrics(result)) == {
        "model_accuracy",
        "model_f1_score",
        "model_precision",
        "model_recall",
        "system_cpu_usage",
        "system_execution_time",
    }


@pytest.mark.parametrize(
    ("model_name", "grid", "says"),
    [
        # Each value is valid alone; together scikit-learn refuses them in fit().
        ("RandomForest", {"bootstrap": [False], "max_samples": [0.5]}, "All the 3 fits failed"),
        ("LogisticRegression", {"penalty": ["l1"], "solver": ["lbfgs"]}, "supports only 'l2'"),
        # A precomputed kernel needs a square kernel matrix, not features.
        ("SVC", {"kernel": ["precomputed"]}, "square kernel matrix"),
    ],
)
def test_a_grid_whose_fits_all_fail_is_a_search_failure(training, model_name, grid, says):
    with pytest.raises(SearchFailed) as failed:
        search_model(
            ModelSearch(model_name, grid), training.features, training.target, scoring="accuracy", cv=3, n_jobs=1
        )
    assert failed.value.status == 400
    assert failed.value.message.startswith(f"{model_name}: ")
    assert says in failed.value.message


def test_a_scorer_that_fails_on_every_candidate_is_a_search_failure(training):
    # SVC without probability=True has no predict_proba for log loss.
    search = ModelSearch("SVC", {"C": [1.0]})
    with pytest.raises(SearchFailed) as failed:
        search_model(search, training.features, training.target, scoring="neg_log_loss", cv=3, n_jobs=1)
    assert "neg_log_loss" in failed.value.message


@pytest.mark.parametrize("model_name", ["LogisticRegression", "RandomForest", "SVC"])
@pytest.mark.parametrize(("scoring", "cv"), [("accuracy", 5), ("f1_weighted", 3)])
def test_the_best_candidates_own_fold_predictions_are_what_cross_val_predict_gives(training, model_name, scoring, cv):
    """The search reuses the grid search's fold predictions instead of fitting the folds again."""
    import numpy as np
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV, check_cv, cross_val_predict

    from mlops.kernel.catalogue import build_estimator
    from mlops.tracking.fold_predictions import FoldPredictions

    grid = WALKTHROUGH_OPTIMIZATION["hyperparameters"][model_name]
    features, target = training.features.to_numpy(), training.target.to_numpy()
    folds = list(check_cv(cv, target, classifier=True).split(features, target))
    recorder = FoldPredictions(get_scorer(scoring), list(grid))
    search = GridSearchCV(build_estimator(model_name), grid, scoring=recorder, cv=folds).fit(features, target)
    plain = GridSearchCV(build_estimator(model_name), grid, scoring=scoring, cv=cv).fit(
        training.features, training.target
    )
    assert search.best_params_ == plain.best_params_
    assert np.array_equal(search.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"])
    reused = recorder.of(search.best_params_, features, folds)
    assert reused is not None
    refitted = cross_val_predict(plain.best_estimator_, training.features, training.target, cv=cv)
    assert np.array_equal(reused, refitted)


def test_folds_that_cannot_be_told_apart_are_fitted_again():
    """Two test folds with the same rows give no reusable predictions: the search falls back."""
    import numpy as np
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV, check_cv

    from mlops.kernel.catalogue import build_estimator
    from mlops.tracking.fold_predictions import FoldPredictions

    features = np.repeat(np.arange(6.0).reshape(3, 2), 2, axis=0)  # each row twice
    target = np.array([0, 0, 1, 1, 2, 2])
    folds = list(check_cv(2, target, classifier=True).split(features, target))  # two identical folds
    recorder = FoldPredictions(get_scorer("accuracy"), ["C"])
    search = GridSearchCV(build_estimator("SVC"), {"C": [1.0]}, scoring=recorder, cv=folds).fit(features, target)
    assert recorder.of(search.best_params_, features, folds) is None


def test_the_logged_estimator_knows_the_feature_names(training):
    result = search_model(
        ModelSearch("SVC", {"C": [0.1, 1.0]}), training.features, training.target, scoring="accuracy", cv=3, n_jobs=2
    )
    assert list(result.best_estimator.feature_names_in_) == list(training.features.columns)
