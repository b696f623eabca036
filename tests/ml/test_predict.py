"""POST /root/ml/predict: every accepted input shape, the answer, and the inputs it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlops.kernel.datasets import read_set
from mlops.kernel.db import FEATURE_COLUMNS, FEATURES
from mlops.ml.schemas import MAX_PREDICT_ROWS
from tests.support.ml import set_model, use

SQL_SPELLING = "od280__od315_of_diluted_wines"


def production_records(engine) -> list[dict]:
    """The production set's rows as JSON records, missing values as null."""
    with engine.connect() as connection:
        features = read_set(connection, "production").features
    return [{k: (None if np.isnan(v) else v) for k, v in row.items()} for row in features.to_dict(orient="records")]


def predict(client, body):
    return client.post("/root/ml/predict", json=body)


def test_every_input_shape_gets_the_same_answer(client, trained):
    records = production_records(trained)
    assert any(None in r.values() for r in records)  # the fouled rows with NULLs are in there
    expected = predict(client, records)
    assert expected.status_code == 200
    answer = expected.get_json()
    assert len(answer["predictions"]) == len(records)
    assert answer["classes"] == [0, 1, 2]
    assert answer["model"] == {"model_name": "RandomForest", "version": 2, "registered_version": None}

    shuffled = list(reversed(FEATURES))
    sql_spelled = [{FEATURE_COLUMNS[FEATURES.index(k)]: v for k, v in r.items()} for r in records]
    shapes = {
        "dataframe_records": {"dataframe_records": records},
        "dataframe_split": {
            "dataframe_split": {"columns": list(FEATURES), "data": [list(r.values()) for r in records]}
        },
        "dataframe_split, columns reordered, with index": {
            "dataframe_split": {
                "columns": shuffled,
                "index": list(range(len(records))),
                "data": [[r[c] for c in shuffled] for r in records],
            }
        },
        "SQL column spelling": sql_spelled,
    }
    for shape, body in shapes.items():
        response = predict(client, body)
        assert response.status_code == 200, shape
        assert response.get_json() == answer, shape
    one = predict(client, records[5]).get_json()
    assert one["predictions"] == answer["predictions"][5:6]
    assert one["probabilities"] == answer["probabilities"][5:6]


def test_predictions_are_those_stored_by_evaluation(client, trained):
    assert use(client, "production").status_code == 200
    with trained.connect() as connection:
        stored = read_set(connection, "production", with_predictions=True)
    answer = predict(client, production_records(trained)).get_json()
    assert answer["predictions"] == stored.prediction.tolist()
    probabilities = np.array(answer["probabilities"])
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == np.array(answer["predictions"])).all()


def test_missing_values_are_imputed_with_the_training_means(client, trained):
    with trained.connect() as connection:
        means = read_set(connection, "training").features.mean()
    all_null = predict(client, {name: None for name in FEATURES}).get_json()
    at_means = predict(client, {name: float(means[name]) for name in FEATURES}).get_json()
    assert all_null["predictions"] == at_means["predictions"]
    assert np.allclose(all_null["probabilities"], at_means["probabilities"])


def test_a_model_without_probabilities_answers_classes_only(client, loaded):
    set_model(client, "SVC", {"C": 10, "kernel": "rbf"})
    use(client, "training")
    answer = predict(client, production_records(loaded)[:3]).get_json()
    assert "probabilities" not in answer
    assert len(answer["predictions"]) == 3
    assert answer["model"]["model_name"] == "SVC"


def test_liblinear_logistic_regression_answers_probabilities(client, loaded):
    set_model(client, "LogisticRegression", {"solver": "liblinear", "C": 0.1})
    use(client, "training")
    answer = predict(client, production_records(loaded)).get_json()
    assert np.allclose(np.array(answer["probabilities"]).sum(axis=1), 1.0)


def test_predict_without_a_trained_model_is_a_409(client, loaded):
    record = {name: 1.0 for name in FEATURES}
    response = predict(client, record)
    assert response.status_code == 409
    assert "/root/ml/set_model" in response.get_json()["message"]
    set_model(client)
    response = predict(client, record)
    assert response.status_code == 409
    assert '{"dataset": "training"}' in response.get_json()["message"]


def _record(**changes):
    record = {name: 1.0 for name in FEATURES}
    for key, value in changes.items():
        if value is _DROP:
            record.pop(key)
        else:
            record[key] = value
    return record


_DROP = object()
_FULL = {name: 1.0 for name in FEATURES}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_record(alcohol=_DROP), "missing alcohol"),
        ({**_FULL, "colour": 1.0}, "unknown colour"),
        ({**_FULL, SQL_SPELLING: 1.0}, "given twice od280/od315_of_diluted_wines"),
        ([_FULL, _record(proline=_DROP)], "record 1: missing proline"),
        ({"dataframe_split": {"columns": list(FEATURES)[:12], "data": [[1.0] * 12]}}, "missing proline"),
        ({"dataframe_split": {"columns": list(FEATURES), "data": [[1.0] * 12]}}, "row 0 has 12 values"),
        ({"dataframe_split": {"columns": list(FEATURES), "data": [[1.0] * 13, [1.0] * 14]}}, "row 1 has 14 values"),
        ({"dataframe_records": [{"alcohol": 1.0}]}, "missing malic_acid"),
        ({}, "missing alcohol"),
    ],
)
def test_wrong_feature_names_or_counts_are_400s_listing_the_expected_features(client, body, says):
    response = predict(client, body)
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"] == "Invalid features"
    assert says in answer["message"]
    assert ", ".join(FEATURES) in answer["message"]


@pytest.mark.parametrize(
    "body",
    [
        _record(alcohol="13.2"),
        _record(alcohol=True),
        _record(alcohol=[1.0]),
        _record(alcohol={"value": 1}),
        [_FULL, _record(hue="NaN")],
        {"dataframe_split": {"columns": list(FEATURES), "data": [["x"] * 13]}},
        {"dataframe_split": {"columns": list(FEATURES), "data": "rows"}},
        {"dataframe_split": {"columns": list(FEATURES)}},
        {"dataframe_split": {"columns": list(FEATURES), "data": [[1.0] * 13]}, "extra": 1},
        {"dataframe_records": [], "dataframe_split": {}},
        [],
        [1, 2, 3],
        "alcohol",
        42,
        None,
    ],
)
def test_values_of_the_wrong_type_are_400s(client, body):
    response = client.post("/root/ml/predict", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert set(response.get_json()) == {"error", "message"}


def test_non_finite_values_are_refused(client):
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"alcohol": {literal}}}'  # Python's json reads these non-standard literals
        response = client.post("/root/ml/predict", data=body, content_type="application/json")
        assert response.status_code == 400, literal
        assert "finite" in response.get_json()["message"]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_values_too_large_for_the_model_are_a_400(client, trained):
    response = predict(client, {name: 1e300 for name in FEATURES})
    assert response.status_code == 400
    assert response.get_json()["error"] == "Invalid values"


def test_rows_per_request_are_capped(client):
    too_many = {"dataframe_split": {"columns": [], "data": [[]] * (MAX_PREDICT_ROWS + 1)}}
    response = predict(client, too_many)
    assert response.status_code == 400
    assert str(MAX_PREDICT_ROWS) in response.get_json()["message"]


def test_openapi_describes_every_input_shape(client):
    document = client.get("/openapi.json").get_json()
    operation = document["paths"]["/root/ml/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRows"
    }
    schemas = document["components"]["schemas"]
    shapes = schemas["PredictRows"]["oneOf"]
    assert len(shapes) == 4
    assert {"$ref": "#/components/schemas/SplitRows"} in shapes
    assert {"$ref": "#/components/schemas/RecordRows"} in shapes
    assert schemas["DataframeSplit"]["properties"]["data"]["maxItems"] == MAX_PREDICT_ROWS
    assert set(schemas["UseModel"]["properties"]["dataset"]["enum"]) == {"training", "testing", "production"}
    assert schemas["SetModel"]["required"] == ["model_name"]
    assert schemas["SetModel"]["properties"]["model_name"]["enum"] == ["RandomForest", "SVC", "LogisticRegression"]
    record = shapes[1]
    assert set(record["propertyNames"]["enum"]) == {*FEATURES, SQL_SPELLING}
    assert record["minProperties"] == record["maxProperties"] == 13
