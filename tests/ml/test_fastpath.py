"""The compiled prediction path answers exactly what scikit-learn's pipeline answers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mlops.kernel.pipelines import make_pipeline
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL
from mlops.ml import fastpath
from mlops.ml.fastpath import NonFiniteValues, compile_pipeline
from mlops.simulator.splits import load_split

MODELS = [
    ("RandomForest", RANDOM_FOREST_MODEL["hyperparameters"], True),
    ("RandomForest", {"n_estimators": 3, "max_depth": None}, True),
    ("LogisticRegression", {"C": 0.1, "solver": "liblinear"}, True),
    ("LogisticRegression", {"C": 1.0}, True),
    ("SVC", {"probability": True}, False),
    ("SVC", {"kernel": "linear"}, False),
]


@pytest.fixture(scope="module")
def data():
    return load_split("training"), load_split("production", size=3000)


@pytest.mark.parametrize(("model_name", "hyperparameters", "compiled"), MODELS)
def test_compiled_prediction_equals_the_pipeline(data, model_name, hyperparameters, compiled):
    training, production = data
    pipeline = make_pipeline(model_name, hyperparameters).fit(training.features, training.target)
    fast = compile_pipeline(pipeline)
    assert (fast.probabilities is not None) is compiled
    rows = production.features  # noisy, with NaN in every column
    predicted, probabilities = fast.predict(rows)
    assert predicted.tolist() == pipeline.predict(rows).tolist()
    assert fast.classes.tolist() == pipeline.classes_.tolist()
    if hasattr(pipeline, "predict_proba"):
        np.testing.assert_allclose(probabilities, pipeline.predict_proba(rows), rtol=0, atol=1e-12)
    else:
        assert probabilities is None
    one_row = rows.iloc[:1]
    assert fast.predict(one_row)[0].tolist() == pipeline.predict(one_row).tolist()


@pytest.mark.parametrize(("model_name", "hyperparameters", "compiled"), MODELS[1::2])
def test_batch_classes_in_chunks_equal_the_pipeline(data, model_name, hyperparameters, compiled, monkeypatch):
    from mlops.ml import fastpath

    training, production = data
    pipeline = make_pipeline(model_name, hyperparameters).fit(training.features, training.target)
    monkeypatch.setattr(fastpath, "CHUNK_ROWS", 701)  # 3000 rows: four full chunks and a short one
    classes = compile_pipeline(pipeline).predict_classes(production.features)
    assert classes.tolist() == pipeline.predict(production.features).tolist()


def test_batch_classes_on_every_core_equal_the_pipeline(data, monkeypatch):
    training, production = data
    pipeline = make_pipeline("RandomForest", {"n_estimators": 30}).fit(training.features, training.target)
    monkeypatch.setattr(fastpath, "PARALLEL_MIN_ROWS", 1_000)
    monkeypatch.setattr(fastpath.os, "cpu_count", lambda: 4)
    threads = set()
    real_predict = fastpath.CompiledPipeline.predict
    # every part waits until another one runs beside it: broken (an error) if they ran one by one
    side_by_side = threading.Barrier(2, timeout=30)

    def predict(self, rows):
        threads.add(threading.current_thread().name)
        side_by_side.wait()
        return real_predict(self, rows)

    monkeypatch.setattr(fastpath.CompiledPipeline, "predict", predict)
    classes = compile_pipeline(pipeline).predict_classes(production.features)  # 3000 rows: 4 parts of 750
    assert classes.tolist() == pipeline.predict(production.features).tolist()
    assert len(threads) > 1 and all(name.startswith("predict") for name in threads)


def test_a_refused_row_is_named_by_its_place_in_the_whole_batch(data, monkeypatch):
    training, production = data
    pipeline = make_pipeline("RandomForest", {"n_estimators": 5}).fit(training.features, training.target)
    monkeypatch.setattr(fastpath, "CHUNK_ROWS", 701)
    rows = production.features.copy()
    rows.iloc[2_500, 0] = np.finfo(np.float64).max  # in the fourth part
    with pytest.raises(NonFiniteValues) as refused:
        compile_pipeline(pipeline).predict_classes(rows)
    assert refused.value.rows == [2_500]


@pytest.mark.parametrize("n_rows", [1, 7, 19, 20, 21, 300])
def test_forest_walks_give_the_same_bits_either_way(data, n_rows, monkeypatch):
    training, production = data
    pipeline = make_pipeline("RandomForest", {"n_estimators": 100, "max_depth": None}).fit(
        training.features, training.target
    )
    rows = production.features.iloc[:n_rows]
    at_once = compile_pipeline(pipeline).predict(rows)
    monkeypatch.setattr(fastpath, "WALK_ALL_TREES_AT_MOST", 0)  # tree by tree, scikit-learn's walk
    tree_by_tree = compile_pipeline(pipeline).predict(rows)
    assert np.array_equal(at_once[1], tree_by_tree[1])
    assert np.array_equal(at_once[1], pipeline.predict_proba(rows))
    assert at_once[0].tolist() == pipeline.predict(rows).tolist()
