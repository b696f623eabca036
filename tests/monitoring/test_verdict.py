"""The re-training verdict on fixed seeds: clean production is not advised, faults are, each for
the right reason; every check is listed with its figures. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from mlops.kernel.db import FEATURES
from mlops.monitoring.app import CACHE_HEADER
from mlops.monitoring.verdict import FAMILY_LEVEL
from mlops.simulator.scenarios import Faults, MissingValues, draw_scenario
from mlops.simulator.store import replace_set
from tests.support.monitoring import evaluate, monitor
from tests.support.sets import load_sets

CHECKS = ["distribution shift"] * len(FEATURES) + ["missing values", "prediction drift", "quality drop"]


def production(engine, model, faults: Faults, *, size: int = 36, seed: int = 1) -> None:
    """Store a production set drawn with these faults and the model's predictions on it."""
    drawn = draw_scenario(faults, size, seed)
    replace_set(engine, "production", drawn.features, drawn.target)
    evaluate(engine, model, "production")


def verdict(client, **extra) -> dict:
    response = monitor(client, "verdict", **extra)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def fired(answer: dict) -> list[dict]:
    return [reason for reason in answer["data"]["reasons"] if reason["fired"]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_production_is_not_advised_and_every_check_is_listed(client, reference_ready, wine_model, seed):
    production(reference_ready, wine_model, Faults({}, {}), seed=seed)
    answer = verdict(client)
    assert answer["data"]["retraining_advised"] is False
    assert answer["message"].startswith("No re-training advised")
    reasons = answer["data"]["reasons"]
    assert [reason["check"] for reason in reasons] == CHECKS
    assert [reason["feature"] for reason in reasons[: len(FEATURES)]] == list(FEATURES)
    for reason in reasons:
        assert reason["threshold"] == FAMILY_LEVEL
        assert 0 <= reason["p_value"] <= 1
        assert reason["sizes"] == {"reference": 36, "current": 36}
        assert reason["effect"]
    assert answer["datasets"]["reference"]["set"] == "testing"
    assert answer["data"]["rule"]["false_alarm_level"] == 0.05


def test_a_big_shift_is_advised_for_the_shifted_features(client, reference_ready, wine_model):
    shifted = {"alcohol": 2.0, "color_intensity": 2.0, "proline": -2.0}
    production(reference_ready, wine_model, Faults(shifted, {}))
    answer = verdict(client)
    assert answer["data"]["retraining_advised"] is True
    features_fired = {reason["feature"] for reason in fired(answer) if reason["check"] == "distribution shift"}
    assert set(shifted) <= features_fired
    for reason in answer["data"]["reasons"][: len(FEATURES)]:
        if reason["feature"] in shifted:
            # the effect sizes say how far and which way
            smd = reason["effect"]["standardised_mean_difference"]
            assert smd * shifted[reason["feature"]] > 1
            assert reason["effect"]["wasserstein_distance_sd"] > 1
            assert reason["adjusted_p_value"] <= FAMILY_LEVEL
    assert "alcohol: mean +" in answer["message"] and "proline: mean -" in answer["message"]


def test_missing_values_are_a_signal_of_their_own(client, reference_ready, wine_model):
    production(reference_ready, wine_model, Faults({}, {}, missing=MissingValues(0.1)))
    answer = verdict(client)
    assert answer["data"]["retraining_advised"] is True
    (missing,) = [reason for reason in fired(answer) if reason["check"] == "missing values"]
    assert missing["effect"]["missing_share_reference"] == 0
    assert missing["effect"]["missing_share_current"] == pytest.approx(0.1, abs=0.04)
    # the drift tests run on the values present, and find nothing to say about them
    assert not [reason for reason in fired(answer) if reason["check"] == "distribution shift"]


def test_a_single_class_is_prediction_drift(client, reference_ready, wine_model):
    production(reference_ready, wine_model, Faults({}, {}, class_weights=(0, 0, 1)))
    answer = verdict(client)
    assert answer["data"]["retraining_advised"] is True
    (drift,) = [reason for reason in fired(answer) if reason["check"] == "prediction drift"]
    assert drift["effect"]["class_shares_current"]["2"] > 0.9
    assert drift["effect"]["total_variation_distance"] > 0.5


def test_the_walkthrough_production_is_advised_with_its_missing_values(client, reference_ready, wine_model):
    load_sets(reference_ready, "production")
    evaluate(reference_ready, wine_model, "production")
    answer = verdict(client)
    assert answer["data"]["retraining_advised"] is True
    assert "missing values" in {reason["check"] for reason in fired(answer)}


def test_quality_drop_shows_the_change_of_accuracy_with_its_interval(client, reference_ready, wine_model):
    production(reference_ready, wine_model, Faults({}, {}, noise_sd=1.5))
    answer = verdict(client)
    quality = answer["data"]["reasons"][-1]
    assert quality["check"] == "quality drop"
    effect = quality["effect"]
    assert effect["change"] == pytest.approx(effect["accuracy_current"] - effect["accuracy_reference"])
    low, high = effect["change_interval"]
    assert low < effect["change"] < high
    assert quality["fired"] == (quality["p_value"] <= FAMILY_LEVEL)
    assert effect["change"] < -0.1 and quality["fired"]


def test_training_and_testing_as_reference(client, reference_ready, wine_model):
    production(reference_ready, wine_model, Faults({}, {}, class_weights=None, rows_from="production"))
    answer = verdict(client, reference="training+testing")
    assert answer["reference"] == "training+testing"
    assert answer["datasets"]["training"]["set"] == "training"
    sizes = [reason["sizes"]["reference"] for reason in answer["data"]["reasons"]]
    # features, missing values and prediction drift against 106 + 36 rows; quality against testing only
    assert sizes == [142] * (len(FEATURES) + 2) + [36]
    assert answer["data"]["retraining_advised"] is False


def test_a_repeat_on_unchanged_data_comes_from_the_cache(client, reference_ready, wine_model):
    production(reference_ready, wine_model, Faults({}, {}))
    first = monitor(client, "verdict")
    again = monitor(client, "verdict")
    assert first.headers[CACHE_HEADER] == "miss" and again.headers[CACHE_HEADER] == "hit"
    assert first.get_json() == again.get_json()
    production(reference_ready, wine_model, Faults({}, {}), seed=2)
    assert monitor(client, "verdict").headers[CACHE_HEADER] == "miss"


def test_the_html_pages_open_with_the_verdict(client, reference_ready, wine_model):
    production(reference_ready, wine_model, Faults({"hue": 3.0}, {}))
    for path in ("/root/monitoring/report.html", "/root/monitoring/tests.html?tests=data_drift"):
        page = client.get(path).get_data(as_text=True)
        section = page[page.index('<section id="verdict"') :]
        assert section.index("Re-training advised") < 200
        assert "hue: mean +" in section
        assert section.count("<tr") == 1 + len(CHECKS)


def test_the_verdict_needs_evaluated_sets(client, engine_of_app):
    response = monitor(client, "verdict")
    assert response.status_code == 409
    assert 'POST /root/simulator {"set_name": "testing"}' in response.get_json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"metric": "verdict", "reference": "production"},
        {"metric": "report", "reference": "testing"},
        {"metric": "verdict", "tests": {"data_drift": True}},
    ],
)
def test_bad_verdict_requests_are_400s(client, body):
    response = client.post("/root/monitoring", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "Invalid request"


def test_verdicts_are_counted_by_outcome_and_the_last_one_is_a_gauge(client, reference_ready, wine_model):
    from tests.support.metrics import app_samples, sample

    production(reference_ready, wine_model, Faults({}, {}), seed=1)
    verdict(client)
    verdict(client)  # from the cache: a verdict given all the same
    load_sets(reference_ready, "production")
    evaluate(reference_ready, wine_model, "production")
    answer = verdict(client)
    samples = app_samples(client)
    testing = {"reference": "testing"}
    assert sample(samples, "monitoring_verdicts_total", outcome="not_advised", **testing) == 2
    assert sample(samples, "monitoring_verdicts_total", outcome="retraining_advised", **testing) == 1
    assert sample(samples, "monitoring_retraining_advised", **testing) == 1
    missing = sample(samples, "monitoring_verdict_checks_fired_total", check="missing values", **testing)
    assert missing == 1 and "missing values" in {reason["check"] for reason in fired(answer)}

    production(reference_ready, wine_model, Faults({}, {}), seed=1)
    verdict(client)
    assert sample(app_samples(client), "monitoring_retraining_advised", **testing) == 0
