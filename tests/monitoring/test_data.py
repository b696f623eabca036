"""Reading what monitoring compares: versions, frames and sampling, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from mlops.kernel.db import FEATURES
from mlops.kernel.errors import Conflict
from mlops.monitoring.data import DataVersion, data_version, read_monitoring_data
from tests.support.monitoring import evaluate
from tests.support.sets import load_sets


def test_version_follows_reloads_and_new_predictions(engine, wine_model):
    with engine.connect() as connection:
        assert data_version(connection) == DataVersion(None, None, None, None)
    load_sets(engine, "testing", "production")
    with engine.connect() as connection:
        loaded = data_version(connection)
    assert loaded.reference_id is not None and loaded.current_id is not None
    assert (loaded.reference_model_version, loaded.current_model_version) == (None, None)

    evaluate(engine, wine_model, "testing", model_version=3)
    evaluate(engine, wine_model, "production", model_version=3)
    with engine.connect() as connection:
        evaluated = data_version(connection)
    assert evaluated == DataVersion(loaded.reference_id, 3, loaded.current_id, 3)

    load_sets(engine, "production")  # a reload drops the production predictions
    with engine.connect() as connection:
        reloaded = data_version(connection)
    assert reloaded.current_id > loaded.current_id
    assert reloaded.current_model_version is None
    assert reloaded.reference_id == loaded.reference_id


def test_frames_hold_features_target_and_prediction(engine, wine_model):
    load_sets(engine, "testing", "production")
    for name in ("testing", "production"):
        evaluate(engine, wine_model, name)
    data = read_monitoring_data(engine, max_rows=1000)
    for frame in (data.reference, data.current):
        assert list(frame.columns) == [*FEATURES, "target", "prediction"]
        assert len(frame) == 36
        assert frame["prediction"].isin([0, 1, 2]).all()
    assert data.reference.isna().sum().sum() == 0
    assert data.current[list(FEATURES)].isna().sum().tolist() == [1] * 13
    with engine.connect() as connection:
        assert data.version == data_version(connection)
    assert not data.reference_set.sampled and not data.current_set.sampled


def test_a_large_set_is_sampled_the_same_way_every_time(engine, wine_model):
    load_sets(engine, "testing", "production", production_size=500)
    for name in ("testing", "production"):
        evaluate(engine, wine_model, name)
    first = read_monitoring_data(engine, max_rows=100)
    second = read_monitoring_data(engine, max_rows=100)
    assert len(first.current) == 100 and first.current_set.rows == 500 and first.current_set.sampled
    assert first.current.equals(second.current)
    assert first.current.index.is_monotonic_increasing  # rows keep their stored order
    assert len(first.reference) == 36


def test_reading_before_evaluation_is_a_409(engine):
    load_sets(engine, "testing", "production")
    with pytest.raises(Conflict, match=r'POST /root/ml \{"dataset": "testing"\}'):
        read_monitoring_data(engine, max_rows=1000)


def test_a_large_set_is_sampled_by_position_the_same_rows_every_time(engine, wine_model, monkeypatch):
    from mlops.kernel import datasets
    from mlops.kernel.datasets import read_set
    from mlops.monitoring import data

    monkeypatch.setattr(datasets, "POSITIONS_PER_QUERY", 300)  # the sample takes several lookups
    load_sets(engine, "testing", "production", production_size=5_000)
    for name in ("testing", "production"):
        evaluate(engine, wine_model, name)
    sampled = read_monitoring_data(engine, max_rows=1_000).current
    with engine.connect() as connection:
        whole = read_set(connection, "production", with_predictions=True)
    frame = whole.features.assign(target=whole.target, prediction=whole.prediction)
    positions = data.sample_positions(5_000, 1_000)
    assert len(set(positions)) == 1_000 and list(positions) == sorted(positions)
    assert sampled.equals(frame.iloc[positions])
    assert read_monitoring_data(engine, max_rows=1_000).current.equals(sampled)  # seeded
