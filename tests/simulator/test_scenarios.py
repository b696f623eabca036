"""Production sets drawn with a fault scenario: seeded, from the reference's population, their
ground truth stored and shown; bad scenarios are 400s naming the field. SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.kernel.datasets import read_set
from mlops.kernel.db import FEATURES
from mlops.kernel.web.state import state_of
from mlops.simulator.scenarios import Faults, MissingValues, draw_scenario, feature_moments
from mlops.simulator.splits import wine_splits


def load(client, **body):
    return client.post("/root/simulator", json={"set_name": "production", **body})


def stored_production(client):
    engine = state_of(client.application).engine
    with engine.connect() as connection:
        return read_set(connection, "production")


def test_a_clean_draw_is_seeded_has_36_rows_and_no_missing_value(client):
    assert load(client, seed=5, scenario={}).status_code == 200
    first = stored_production(client)
    load(client, seed=5, scenario={})
    again = stored_production(client)
    load(client, seed=6, scenario={})
    other = stored_production(client)
    assert len(first.features) == 36
    assert not first.features.isna().any().any()
    assert first.features.equals(again.features) and first.target.equals(again.target)
    assert not first.features.equals(other.features)


def test_the_scenario_and_seed_are_stored_with_the_set_and_shown_by_get(client):
    scenario = {"shift": {"alcohol": 1.0}, "missing": {"rate": 0.1, "mechanism": "MAR"}, "class_weights": [1, 1, 0]}
    assert load(client, seed=11, size=50, scenario=scenario).status_code == 200
    sets = client.get("/root/simulator").get_json()["sets"]
    truth = sets["production"]
    assert truth["rows"] == 50 and truth["seed"] == 11
    assert truth["scenario"]["shift"] == {"alcohol": 1.0}
    assert truth["scenario"]["missing"] == {"rate": 0.1, "mechanism": "MAR"}
    assert truth["scenario"]["class_weights"] == [1.0, 1.0, 0.0]
    assert truth["scenario"]["rows_from"] == "training+production"
    assert truth["scenario"]["feature_sd"]["alcohol"] == pytest.approx(feature_moments()[1][0])
    # a reload without a scenario is the walkthrough's fouled split again, and says so
    load(client)
    assert client.get("/root/simulator").get_json()["sets"]["production"]["scenario"] is None


def test_clean_rows_never_come_from_the_reference_rows():
    from mlops.simulator.scenarios import _pool

    testing = wine_splits()["testing"].features.to_numpy()
    training_testing = np.vstack([wine_splits()[name].features.to_numpy() for name in ("training", "testing")])
    for rows_from, reference in (("training+production", testing), ("production", training_testing)):
        pool, _ = _pool(rows_from)
        shared = (pool[:, None, :] == reference[None, :, :]).all(axis=2)
        assert not shared.any(), rows_from


def test_each_fault_does_what_it_says():
    size = 4000
    clean = draw_scenario(Faults({}, {}), size, seed=1).features
    sd = feature_moments()[1]
    shifted = draw_scenario(Faults({"flavanoids": 1.0}, {}), size, seed=1).features
    assert (shifted["flavanoids"] - clean["flavanoids"]).mean() == pytest.approx(sd[FEATURES.index("flavanoids")])
    assert shifted.drop(columns="flavanoids").equals(clean.drop(columns="flavanoids"))
    scaled = draw_scenario(Faults({}, {"ash": 2.0}), size, seed=1).features
    assert scaled["ash"].std() == pytest.approx(2 * clean["ash"].std())
    noisy = draw_scenario(Faults({}, {}, noise_sd=1.0), size, seed=1).features
    assert (noisy - clean).std().to_numpy() == pytest.approx(sd, rel=0.1)
    mcar = draw_scenario(Faults({}, {}, missing=MissingValues(0.1)), size, seed=1).features
    assert mcar.isna().mean().to_numpy() == pytest.approx(np.full(13, 0.1), abs=0.02)
    mar = draw_scenario(Faults({}, {}, missing=MissingValues(0.1, "MAR")), size, seed=1).features
    assert mar.isna().mean().to_numpy() == pytest.approx(np.full(13, 0.1), abs=0.02)
    # MAR: alcohol goes missing where the next feature (malic_acid) is high
    high = clean["malic_acid"] > clean["malic_acid"].median()
    assert mar["alcohol"][high].isna().mean() > 2 * mar["alcohol"][~high].isna().mean()
    one_class = draw_scenario(Faults({}, {}, class_weights=(0, 1, 0)), size, seed=1)
    assert set(one_class.target) == {1}
    fouled = draw_scenario(Faults({}, {}, fouling=True), size, seed=1).features
    assert fouled.isna().mean().to_numpy() == pytest.approx(np.full(13, 0.03), abs=0.005)


def test_class_weights_near_the_float_maximum_or_subnormal_keep_their_ratios(client):
    assert load(client, seed=2, scenario={"class_weights": [1e308, 1e308, 1e308]}).status_code == 200
    assert set(stored_production(client).target) == {0, 1, 2}
    assert load(client, seed=2, scenario={"class_weights": [0, 1e-320, 0]}).status_code == 200
    assert set(stored_production(client).target) == {1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scenario": {"shift": {"alcool": 1.0}}}, "scenario.shift"),
        ({"scenario": {"scale": {"proline": 1.0, "colour": 2.0}}}, "scenario.scale"),
        ({"scenario": {"scale": {"ash": -0.5}}}, "scenario.scale"),
        ({"scenario": {"noise_sd": -1}}, "scenario.noise_sd"),
        ({"scenario": {"noise_sd": 1e300}}, "scenario.noise_sd"),
        ({"scenario": {"shift": {"proline": 1e308}}}, "scenario.shift"),
        ({"scenario": {"missing": {"rate": -0.1}}}, "scenario.missing.rate"),
        ({"scenario": {"missing": {"rate": 1.5}}}, "scenario.missing.rate"),
        ({"scenario": {"missing": {"rate": 0.1, "mechanism": "MNAR"}}}, "scenario.missing.mechanism"),
        ({"scenario": {"class_weights": [0, 0, 0]}}, "scenario.class_weights"),
        ({"scenario": {"class_weights": [1, -1, 1]}}, "scenario.class_weights.1"),
        ({"scenario": {"class_weights": [1, 1]}}, "scenario.class_weights"),
        ({"scenario": {"fouling": "yes"}}, "scenario.fouling"),
        ({"scenario": {"drift": 1}}, "scenario.drift"),
        ({"scenario": {"rows_from": "testing"}}, "scenario.rows_from"),
        ({"seed": -1}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"size": 2_000_000, "scenario": {}}, "size"),
    ],
)
def test_a_bad_scenario_is_a_400_naming_the_field_and_keeps_the_stored_set(client, body, field):
    load(client, seed=3, scenario={})
    before = stored_production(client)
    response = load(client, **body)
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "Invalid request"
    assert answer["message"].startswith(field + ":"), answer["message"]
    assert stored_production(client).dataset_id == before.dataset_id


@pytest.mark.parametrize("field", ["seed", "scenario"])
def test_seed_and_scenario_are_for_production_only(client, field):
    response = client.post("/root/simulator", json={"set_name": "testing", field: 1 if field == "seed" else {}})
    assert response.status_code == 400
    assert f"`{field}`" in response.get_json()["message"]
