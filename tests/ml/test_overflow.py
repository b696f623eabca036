"""Input that overflows anywhere in the pipeline is refused, naming the features: the compiled
path refuses what scikit-learn refuses (and the scores a linear model cannot compute)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.kernel.db import FEATURES
from mlops.ml.fastpath import NonFiniteValues, compile_pipeline
from mlops.ml.pipeline import make_pipeline
from mlops.simulator.splits import load_split

MODELS = [
    ("RandomForest", {"n_estimators": 10, "max_depth": 10}),
    ("LogisticRegression", {"C": 0.1, "solver": "liblinear"}),
    ("LogisticRegression", {"C": 1.0}),
    ("SVC", {"probability": True}),
    ("SVC", {"kernel": "linear"}),
]


@pytest.fixture(scope="module")
def training():
    return load_split("training")


def fitted(training, model_name, hyperparameters):
    return make_pipeline(model_name, hyperparameters).fit(training.features, training.target)


def rows_with(training, values: dict[str, float], n: int = 3, at: int = 1) -> pd.DataFrame:
    """n training rows, row `at` with these features replaced."""
    rows = training.features.iloc[:n].copy()
    for name, value in values.items():
        rows.loc[rows.index[at], name] = value
    return rows


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize(("model_name", "hyperparameters"), MODELS)
def test_every_feature_at_1e308_is_refused_as_scikit_learn_refuses_it(training, model_name, hyperparameters):
    pipeline = fitted(training, model_name, hyperparameters)
    rows = rows_with(training, dict.fromkeys(FEATURES, 1e308))
    with pytest.raises(ValueError, match="infinity or a value too large"):
        pipeline.predict(rows)
    with pytest.raises(NonFiniteValues) as refused:
        compile_pipeline(pipeline).predict(rows)
    assert refused.value.rows == [1]
    assert refused.value.step == "after scaling"
    scaler = pipeline.named_steps["scale"]
    overflowing = [
        f for f, scale in zip(FEATURES, scaler.scale_, strict=True) if 1e308 / scale > np.finfo(np.float64).max
    ]
    assert overflowing and refused.value.features == overflowing
    assert "row 1" in str(refused.value) and overflowing[0] in str(refused.value)


@pytest.mark.parametrize(("model_name", "hyperparameters"), MODELS)
def test_one_feature_that_overflows_in_scaling_is_named(training, model_name, hyperparameters):
    pipeline = fitted(training, model_name, hyperparameters)
    scaler = pipeline.named_steps["scale"]
    name = FEATURES[int(np.argmin(scaler.scale_))]  # the smallest scale: the easiest to overflow
    rows = rows_with(training, {name: np.finfo(np.float64).max * 0.9})
    with pytest.raises(NonFiniteValues) as refused:
        compile_pipeline(pipeline).predict(rows)
    assert refused.value.features == [name]
    with pytest.raises(NonFiniteValues):
        compile_pipeline(pipeline).predict_classes(rows)


def test_values_beyond_float32_after_scaling_are_refused_for_the_trees(training):
    pipeline = fitted(training, "RandomForest", {"n_estimators": 5})
    scaler = pipeline.named_steps["scale"]
    i = int(np.argmax(scaler.scale_))  # the largest scale: finite in float64, beyond float32 once scaled
    rows = rows_with(training, {FEATURES[i]: scaler.mean_[i] + scaler.scale_[i] * 1e39})
    with pytest.raises(ValueError, match="infinity or a value too large for dtype\\('float32'\\)"):
        pipeline.predict(rows)
    with pytest.raises(NonFiniteValues, match="float32") as refused:
        compile_pipeline(pipeline).predict(rows)
    assert refused.value.features == [FEATURES[i]]


@pytest.mark.parametrize("solver", ["liblinear", "lbfgs"])
def test_scores_that_overflow_in_a_linear_model_name_the_heaviest_feature(training, solver):
    pipeline = fitted(training, "LogisticRegression", {"solver": solver, "C": 100.0})
    scaler, model = pipeline.named_steps["scale"], pipeline.named_steps["model"]
    weights = np.abs(model.coef_).max(axis=0)
    # A feature whose scaled value stays finite but whose weighted score does not.
    candidates = [i for i in np.argsort(-weights) if weights[i] > 1.5 and scaler.scale_[i] < 1.5]
    assert candidates, "the fitted model has no heavy feature with a small scale"
    i = int(candidates[0])
    rows = rows_with(training, {FEATURES[i]: scaler.mean_[i] + scaler.scale_[i] * 1.1e308})
    with pytest.raises(NonFiniteValues) as refused:
        compile_pipeline(pipeline).predict(rows)
    assert refused.value.step == "in the model's scores"
    assert refused.value.features == [FEATURES[i]]
    assert refused.value.rows == [1]


def test_finite_extremes_that_do_not_overflow_still_predict(training):
    pipeline = fitted(training, "RandomForest", {"n_estimators": 5})
    rows = rows_with(training, dict.fromkeys(FEATURES, 1e30))
    predicted, probabilities = compile_pipeline(pipeline).predict(rows)
    assert predicted.tolist() == pipeline.predict(rows).tolist()
    assert np.isfinite(probabilities).all()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_predict_with_every_feature_at_1e308_is_a_400_naming_the_features(client, trained):
    # The report: this answered 200 with probabilities [[null, null, null]] and class 0.
    response = client.post("/root/ml/predict", json=dict.fromkeys(FEATURES, 1e308))
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "Invalid values"
    assert "after scaling" in answer["message"] and "hue" in answer["message"]
    # the same rows with sane values still predict
    assert client.post("/root/ml/predict", json=dict.fromkeys(FEATURES, 1.0)).status_code == 200
