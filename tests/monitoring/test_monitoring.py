"""The monitoring service's API on real data, real predictions and real Evidently, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from mlops.kernel.datasets import read_set
from mlops.kernel.db import FEATURES
from mlops.kernel.web.state import state_of
from mlops.monitoring.app import CACHE_HEADER, create_app
from mlops.monitoring.checks import TEST_PRESETS
from tests.support.monitoring import assert_self_contained, evaluate, metric_results, monitor
from tests.support.sets import load_sets

SUMMARY_KEYS = {"all_passed", "total_tests", "success_tests", "failed_tests", "by_status"}


def stored_accuracy(engine, name: str) -> float:
    with engine.connect() as connection:
        stored = read_set(connection, name, with_predictions=True)
    return float((stored.prediction == stored.target).mean())


def test_status_names_the_component(client):
    response = client.get("/root/monitoring")
    assert response.status_code == 200
    assert response.get_json() == {"name": "monitoring", "message": "Monitoring"}


def test_each_missing_step_is_a_409_naming_the_step_to_run_first(client, engine_of_app, wine_model):
    steps = [
        ('POST /root/simulator {"set_name": "testing"}', lambda: load_sets(engine_of_app, "testing")),
        ('POST /root/ml {"dataset": "testing"}', lambda: evaluate(engine_of_app, wine_model, "testing")),
        ('POST /root/simulator {"set_name": "production"}', lambda: load_sets(engine_of_app, "production")),
        ('POST /root/ml {"dataset": "production"}', lambda: evaluate(engine_of_app, wine_model, "production")),
    ]
    for step, run_step in steps:
        answers = [
            monitor(client, "report"),
            monitor(client, "summary", tests={"data_drift": True}),
            client.get("/root/monitoring/report.html"),
            client.get("/root/monitoring/tests.html"),
        ]
        for response in answers:
            assert response.status_code == 409, step
            assert set(response.get_json()) == {"error", "message"}
            assert step in response.get_json()["message"]
        run_step()


def test_report_has_drift_for_every_feature_and_the_classification_metrics(client, evaluated):
    response = monitor(client, "report")
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["message"] == "Report of the production set (current) against the testing set (reference)"
    report = answer["data"]

    (drift_table,) = metric_results(report, "DataDriftTable")
    drift = drift_table["drift_by_columns"]
    assert set(FEATURES) <= set(drift)
    for feature in FEATURES:
        assert drift[feature]["column_type"] == "num"
        assert 0 <= drift[feature]["drift_score"] <= 1
    # The fouled production set drifts: Evidently flags some features (4 of 13 at 36 rows).
    drifted = [feature for feature in FEATURES if drift[feature]["drift_detected"]]
    assert drifted, {feature: drift[feature]["drift_score"] for feature in FEATURES}

    # ... and has missing values in every feature column, where testing has none.
    (missing,) = metric_results(report, "DatasetMissingValuesMetric")
    assert missing["reference"]["number_of_missing_values"] == 0
    assert set(missing["current"]["columns_with_missing_values"]) == set(FEATURES)

    # Target drift and the classification metrics, computed on the stored predictions.
    assert {r["column_name"] for r in metric_results(report, "ColumnDriftMetric")} == {"target", "prediction"}
    (quality,) = metric_results(report, "ClassificationQualityMetric")
    assert quality["reference"]["accuracy"] == pytest.approx(stored_accuracy(evaluated, "testing"))
    assert quality["current"]["accuracy"] == pytest.approx(stored_accuracy(evaluated, "production"))
    assert quality["current"]["accuracy"] < quality["reference"]["accuracy"]
    for name in ("precision", "recall", "f1"):
        assert 0 < quality["current"][name] <= 1
    (matrix,) = metric_results(report, "ClassificationConfusionMatrix")
    assert matrix["current_matrix"]["labels"] == [0, 1, 2]
    assert sum(map(sum, matrix["current_matrix"]["values"])) == 36

    assert answer["datasets"]["reference"] | {"dataset_id": None} == {
        "set": "testing",
        "dataset_id": None,
        "model_version": 1,
        "rows": 36,
        "rows_used": 36,
    }
    assert answer["datasets"]["current"]["set"] == "production"
    assert answer["notes"] == []


def test_test_suite_and_summary_counts_add_up(client, evaluated):
    response = monitor(client, "tests")
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    suite = answer["data"]
    assert answer["tests"] == list(TEST_PRESETS)
    tests = suite["tests"]
    assert {test["group"] for test in tests} >= {"data_drift", "data_quality", "data_integrity", "classification"}
    assert all(test["status"] in {"SUCCESS", "WARNING", "FAIL", "ERROR", "SKIPPED"} for test in tests)
    # the fouling shows: every feature's missing-values test fails
    missing_tests = [t for t in tests if t["name"] == "The Share of Missing Values in a Column"]
    failed_columns = {t["parameters"]["column_name"] for t in missing_tests if t["status"] == "FAIL"}
    assert failed_columns == set(FEATURES)

    summary = suite["summary"]
    assert set(summary) == SUMMARY_KEYS
    by_status = summary["by_status"]
    assert summary["total_tests"] == len(tests) == sum(by_status.values())
    assert summary["success_tests"] == by_status.get("SUCCESS", 0) + by_status.get("WARNING", 0)
    assert summary["failed_tests"] == by_status.get("FAIL", 0)
    assert summary["all_passed"] is False
    assert answer["message"] == (
        f"{summary['total_tests'] - summary['success_tests']} of {summary['total_tests']} tests did not pass: "
        "production data differs from testing data, consider re-training"
    )

    # The summary of all five presets (flags absent or all true) is the suite's summary.
    for extra in ({}, {"tests": dict.fromkeys(TEST_PRESETS, True)}):
        answer = monitor(client, "summary", **extra).get_json()
        assert answer["data"] == summary
        assert answer["tests"] == list(TEST_PRESETS)


def test_fewer_presets_run_fewer_tests(client, evaluated):
    everything = monitor(client, "summary").get_json()["data"]
    flags = dict.fromkeys(TEST_PRESETS, False) | {"data_drift": True, "multi_class_classification": True}
    response = monitor(client, "summary", tests=flags)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["tests"] == ["data_drift", "multi_class_classification"]
    chosen = answer["data"]
    assert set(chosen) == SUMMARY_KEYS
    assert 0 < chosen["total_tests"] < everything["total_tests"]
    assert chosen["total_tests"] == sum(chosen["by_status"].values())

    only_drift = monitor(client, "tests", tests={"data_drift": True}).get_json()["data"]
    assert {test["group"] for test in only_drift["tests"]} == {"data_drift"}
    assert only_drift["summary"]["total_tests"] < chosen["total_tests"]


def test_a_repeat_is_served_from_the_cache_until_the_data_changes(client, evaluated, wine_model):
    first = monitor(client, "report")
    assert first.headers[CACHE_HEADER] == "miss"
    repeat = monitor(client, "report")
    assert repeat.headers[CACHE_HEADER] == "hit"
    assert repeat.get_json() == first.get_json()  # the very same run (Evidently's timestamp included)

    # A new version of the production set (reloaded and evaluated) is new data.
    load_sets(evaluated, "production")
    evaluate(evaluated, wine_model, "production")
    reloaded = monitor(client, "report")
    assert reloaded.headers[CACHE_HEADER] == "miss"
    first_answer, reloaded_answer = first.get_json(), reloaded.get_json()
    assert reloaded_answer["datasets"]["current"]["dataset_id"] > first_answer["datasets"]["current"]["dataset_id"]
    assert reloaded_answer["data"]["timestamp"] != first_answer["data"]["timestamp"]
    # what was computed on the replaced version is freed, not kept until pushed out
    cache = state_of(client.application).resources
    versions = {key.version for key in [*cache.results.keys(), *cache.verdicts.keys()]}
    versions |= {version for version, _max_rows in cache.frames.keys()}
    (kept,) = versions
    assert kept.current_id == reloaded_answer["datasets"]["current"]["dataset_id"]

    # So are predictions of another model version, and the answer points out the mismatch.
    evaluate(evaluated, wine_model, "testing", model_version=2)
    new_model = monitor(client, "report")
    assert new_model.headers[CACHE_HEADER] == "miss"
    assert new_model.get_json()["datasets"]["reference"]["model_version"] == 2
    (note,) = new_model.get_json()["notes"]
    assert "different model versions" in note

    # Each choice of presets is its own entry; the summary reuses the suite's run.
    assert monitor(client, "tests").headers[CACHE_HEADER] == "miss"
    assert monitor(client, "summary").headers[CACHE_HEADER] == "hit"
    assert monitor(client, "summary", tests={"data_drift": True}).headers[CACHE_HEADER] == "miss"


def test_a_set_larger_than_the_limit_is_sampled_and_the_answer_says_so(settings, wine_model):
    app = create_app(settings.model_copy(update={"monitoring_max_rows": 50}))
    try:
        engine = state_of(app).engine
        load_sets(engine, "testing", "production", production_size=200)
        for name in ("testing", "production"):
            evaluate(engine, wine_model, name)
        client = app.test_client()
        answer = monitor(client, "report").get_json()
        assert answer["datasets"]["current"] | {"dataset_id": None} == {
            "set": "production",
            "dataset_id": None,
            "model_version": 1,
            "rows": 200,
            "rows_used": 50,
        }
        assert answer["datasets"]["reference"]["rows_used"] == 36
        note, power = answer["notes"]
        assert "production set has 200 rows" in note and "sample of 50" in note
        # what the sample means for the drift verdict: the smallest shift the tests can detect
        # (KS distance at p < 0.05) with the rows used and with every row
        assert "36 testing rows with 50 production rows" in power
        assert "0.2968" in power and "0.2459" in power  # 1.358 * sqrt(1/36 + 1/50), then 1/200
        assert "MONITORING_MAX_ROWS" in power
        (summary,) = metric_results(answer["data"], "DatasetSummaryMetric")
        assert summary["current"]["number_of_rows"] == 50
        assert summary["reference"]["number_of_rows"] == 36
    finally:
        state_of(app).dispose()


def test_data_evidently_cannot_use_is_a_409(client, engine_of_app, wine_model):
    # one production row: fouling blanks every one of its features, and Evidently refuses empty columns
    load_sets(engine_of_app, "testing", "production", production_size=1)
    for name in ("testing", "production"):
        evaluate(engine_of_app, wine_model, name)
    response = monitor(client, "report")
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "Data not usable for monitoring"
    assert 'POST /root/simulator {"set_name": "production"}' in body["message"]


NAMES = re.compile(".*".join(TEST_PRESETS))


@pytest.mark.parametrize(
    ("body", "lists_the_tests"),
    [
        ({"metric": "drift"}, False),
        ({"metric": 1}, False),
        ({}, False),
        ({"metric": "report", "extra": True}, False),
        ({"metric": "summary", "tests": {"data_drift": True, "concept_drift": True}}, True),
        ({"metric": "summary", "tests": {"data_drift": "true"}}, True),
        ({"metric": "summary", "tests": {"data_drift": 1}}, True),
        ({"metric": "summary", "tests": {"data_drift": None}}, True),
        ({"metric": "summary", "tests": ["data_drift"]}, True),
        ({"metric": "summary", "tests": "data_drift"}, True),
        ({"metric": "summary", "tests": dict.fromkeys(TEST_PRESETS, False)}, True),
        ({"metric": "summary", "tests": {}}, True),
        ({"metric": "report", "tests": {"data_drift": True}}, False),
        (["report"], False),
        ("report", False),
    ],
)
def test_bad_input_is_a_400_json(client, body, lists_the_tests):
    response = client.post("/root/monitoring", json=body)
    assert response.status_code == 400
    answer = response.get_json()
    assert set(answer) == {"error", "message"}
    assert bool(NAMES.search(answer["message"])) is lists_the_tests, answer["message"]


def test_wrong_content_type_and_malformed_json(client):
    response = client.post("/root/monitoring", data='{"metric": "report"}', content_type="text/plain")
    assert response.status_code == 415
    response = client.post("/root/monitoring", data="{metric", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "Malformed JSON"


@pytest.mark.parametrize("query", ["?tests=concept_drift", "?tests=", "?tests=data_drift,nope", "?other=1"])
def test_bad_html_query_is_a_400_json(client, query):
    response = client.get("/root/monitoring/tests.html" + query)
    assert response.status_code == 400
    assert set(response.get_json()) == {"error", "message"}


def test_html_pages_are_complete_and_self_contained(client, evaluated):
    report = client.get("/root/monitoring/report.html")
    assert report.status_code == 200
    assert report.mimetype == "text/html"
    assert "default-src 'none'" in report.headers["Content-Security-Policy"]
    page = report.get_data(as_text=True)
    assert_self_contained(page)
    assert "Current: Model Quality Metrics" in page
    for feature in FEATURES:
        assert f'"{feature}"' in page

    tests = client.get("/root/monitoring/tests.html?tests=data_drift, data_quality")
    assert tests.status_code == 200
    page = tests.get_data(as_text=True)
    assert_self_contained(page)
    assert "Share of Drifted Columns" in page
    # the same run as the JSON of the same presets
    assert monitor(client, "tests", tests={"data_drift": True, "data_quality": True}).headers[CACHE_HEADER] == "hit"


def test_openapi_describes_the_endpoints(client):
    document = client.get("/openapi.json").get_json()
    assert {"get", "post"} <= set(document["paths"]["/root/monitoring"])
    assert "get" in document["paths"]["/root/monitoring/report.html"]
    assert document["paths"]["/root/monitoring/tests.html"]["get"]["parameters"][0]["name"] == "tests"
    schemas = document["components"]["schemas"]
    assert schemas["MonitoringRequest"]["properties"]["metric"]["enum"] == ["report", "tests", "summary", "verdict"]
    assert list(schemas["TestFlags"]["properties"]) == list(TEST_PRESETS)
