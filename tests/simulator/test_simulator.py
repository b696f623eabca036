"""The simulator's splits and its HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mlops.kernel.datasets import read_set
from mlops.kernel.db import FEATURE_COLUMNS, datasets, samples
from mlops.kernel.web.state import state_of
from mlops.simulator.splits import load_split


def load(client, set_name, **extra):
    return client.post("/root/simulator", json={"set_name": set_name, **extra})


def test_status_names_the_component(client):
    response = client.get("/root/simulator")
    assert response.status_code == 200
    assert response.get_json() == {"name": "simulator", "message": "Simulator", "sets": {}}


@pytest.mark.parametrize(("set_name", "size"), [("training", 106), ("testing", 36), ("production", 36)])
def test_load_writes_the_split_with_its_targets(client, settings, set_name, size):
    response = load(client, set_name)
    assert response.status_code == 200
    assert response.get_json() == {"message": f"Load {set_name} set"}
    engine = state_of(client.application).engine
    with engine.connect() as connection:
        stored = read_set(connection, set_name)
    assert len(stored.features) == len(stored.target) == size
    # each sample's class is stored with it, in the split's order
    assert stored.target.tolist() == load_split(set_name).target.tolist()
    # stratified: the three classes keep wine's proportions (59 / 71 / 48 of 178)
    counts = stored.target.value_counts().sort_index().tolist()
    expected = [round(size * n / 178) for n in (59, 71, 48)]
    assert all(abs(c - e) <= 1 for c, e in zip(counts, expected, strict=True))


def test_production_is_fouled_with_nulls_in_every_column(client):
    load(client, "production")
    engine = state_of(client.application).engine
    with engine.connect() as connection:
        for column in FEATURE_COLUMNS:
            nulls = connection.execute(select(func.count()).where(samples.c[column].is_(None))).scalar()
            assert nulls == 1, column  # ~3 % of 36 rows
        stored = read_set(connection, "production")
    clean = load_split("testing")
    # the noise shifts the features away from the clean data
    assert (stored.features.mean() > clean.features.mean()).sum() >= 10


def test_reload_replaces_the_set_instead_of_duplicating_it(client):
    load(client, "training")
    engine = state_of(client.application).engine
    with engine.connect() as connection:
        first = read_set(connection, "training")
    load(client, "training")
    with engine.connect() as connection:
        second = read_set(connection, "training")
        assert connection.execute(select(func.count()).select_from(datasets)).scalar() == 1
        assert connection.execute(select(func.count()).select_from(samples)).scalar() == 106
    assert second.dataset_id != first.dataset_id  # a new version
    assert second.features.equals(first.features)
    assert second.target.equals(first.target)


def test_split_is_deterministic_and_matches_across_backends():
    for set_name in ("training", "testing", "production"):
        a, b = load_split(set_name), load_split(set_name)
        assert a.features.equals(b.features)
        assert a.target.equals(b.target)


def test_stored_rows_equal_the_split(client):
    """What comes back from the database (either backend) is exactly the split, NULLs included."""
    for set_name in ("training", "production"):
        load(client, set_name)
        engine = state_of(client.application).engine
        with engine.connect() as connection:
            stored = read_set(connection, set_name)
        split = load_split(set_name)
        assert stored.features.reset_index(drop=True).equals(split.features)
        assert stored.target.reset_index(drop=True).equals(split.target)


def test_sets_do_not_overlap():
    frames = [load_split(name).features for name in ("training", "testing")]
    keys = [set(map(tuple, f.round(6).to_numpy().tolist())) for f in frames]
    assert not keys[0] & keys[1]


def test_production_can_be_resampled_to_a_larger_size(client):
    response = load(client, "production", size=500)
    assert response.status_code == 200
    engine = state_of(client.application).engine
    with engine.connect() as connection:
        stored = read_set(connection, "production")
    assert len(stored.target) == 500
    assert stored.features.isna().sum().tolist() == [15] * 13


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"set_name": "validation"}, 400),
        ({"set_name": 5}, 400),
        ({}, 400),
        ({"set_name": "training", "extra": 1}, 400),
        ({"set_name": "training", "size": 10}, 400),
        ({"set_name": "production", "size": 0}, 400),
        ({"set_name": "production", "size": "10"}, 400),
        (["training"], 400),
    ],
)
def test_bad_input_is_a_json_4xx_and_changes_nothing(client, body, status):
    load(client, "training")
    engine = state_of(client.application).engine
    with engine.connect() as connection:
        before = read_set(connection, "training")
    response = client.post("/root/simulator", json=body)
    assert response.status_code == status
    assert set(response.get_json()) == {"error", "message"}
    with engine.connect() as connection:
        after = read_set(connection, "training")
        assert connection.execute(select(func.count()).select_from(datasets)).scalar() == 1
    assert after.dataset_id == before.dataset_id


def test_malformed_json_and_wrong_content_type(client):
    response = client.post("/root/simulator", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "Malformed JSON"
    response = client.post("/root/simulator", data="set_name=training", content_type="text/plain")
    assert response.status_code == 415
    assert set(response.get_json()) == {"error", "message"}


def test_unknown_set_lists_accepted_values(client):
    message = load(client, "validation").get_json()["message"]
    for name in ("training", "testing", "production"):
        assert name in message


def test_a_method_the_path_does_not_have_is_a_405_that_lists_those_it_has(client):
    answer = client.patch("/root/simulator", json={})
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST", "HEAD", "OPTIONS"}
    assert answer.get_json()["error"] == "Method Not Allowed"
    assert answer.content_type == "application/json"


def test_whole_number_floats_are_integers_as_json_schema_says(client):
    answer = client.post("/root/simulator", json={"set_name": "production", "size": 120.0, "seed": 7.0})
    assert answer.status_code == 200, answer.get_json()
    refused = client.post("/root/simulator", json={"set_name": "production", "size": 120.5})
    assert refused.status_code == 400 and "size" in refused.get_json()["message"]
    assert client.post("/root/simulator", json={"set_name": "production", "size": True}).status_code == 400


def test_metrics_count_requests_by_endpoint_rule_and_status(client):
    from prometheus_client.parser import text_string_to_metric_families

    client.post("/root/simulator", json={"set_name": "nope"})
    client.get("/root/nowhere/12345")
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.get_data(as_text=True))
        for sample in family.samples
    }

    def requests(method: str, path: str, status: str) -> float:
        labels = {"method": method, "path": path, "status_code": status, "app_name": "simulator"}
        return samples.get(("rest_server_requests_total", tuple(sorted(labels.items()))), 0.0)

    assert requests("POST", "/root/simulator", "400") == 1
    # a path that matched no route is one series, whatever the path was
    assert requests("GET", "<unmatched>", "404") == 1


def test_metrics_count_the_rows_loaded_by_set(client):
    from tests.support.metrics import app_samples, sample

    assert load(client, "training").status_code == 200
    assert load(client, "production", size=1000, seed=3).status_code == 200  # written in blocks
    assert load(client, "production", size=40, seed=3).status_code == 200
    assert load(client, "nope").status_code == 400
    samples = app_samples(client)
    assert sample(samples, "simulator_loads_total", set_name="training") == 1
    assert sample(samples, "simulator_rows_loaded_total", set_name="training") == len(load_split("training").target)
    assert sample(samples, "simulator_loads_total", set_name="production") == 2
    assert sample(samples, "simulator_rows_loaded_total", set_name="production") == 1040
    assert not [key for key in samples if dict(key[1]).get("set_name") == "nope"]


def test_a_seed_up_to_2_32_is_stored_on_either_backend(client):
    """numpy takes seeds up to 2**32 - 1; PostgreSQL's INTEGER holds 2**31 - 1 (a 500 found by R7)."""
    answer = client.post("/root/simulator", json={"set_name": "production", "seed": 2**32 - 1})
    assert answer.status_code == 200, answer.get_json()
    assert client.get("/root/simulator").get_json()["sets"]["production"]["seed"] == 2**32 - 1


def test_an_older_integer_seed_column_is_widened(postgres_database):
    """A dataset DB created by a release whose seed column was INTEGER takes a 2**32 - 1 seed too."""
    from sqlalchemy import BigInteger, inspect, text

    from mlops.kernel.db import ensure_schema, make_engine

    engine = make_engine(postgres_database())
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE set_scenarios (dataset_id INTEGER PRIMARY KEY, seed INTEGER, scenario JSON)")
        )
    ensure_schema(engine)
    seed = next(c for c in inspect(engine).get_columns("set_scenarios") if c["name"] == "seed")
    assert isinstance(seed["type"], BigInteger)
    engine.dispose()
