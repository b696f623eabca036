"""MLflow's scoring-server endpoint, POST /invocations, with each of its input formats."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.kernel.datasets import read_set
from mlops.kernel.db import FEATURES


def production_rows(engine) -> list[list[float | None]]:
    with engine.connect() as connection:
        values = read_set(connection, "production").features.to_numpy()
    return [[None if np.isnan(v) else float(v) for v in row] for row in values]


def test_every_mlflow_input_format_predicts_as_the_predict_endpoint(client, trained):
    rows = production_rows(trained)
    records = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    expected = client.post("/root/ml/predict", json=records).get_json()["predictions"]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(FEATURES)}
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": list(FEATURES), "data": rows}},
        "dataframe_records": {"dataframe_records": records},
        "instances as records": {"instances": records},
        "instances as rows": {"instances": rows},
        "inputs as rows": {"inputs": rows},
        "inputs as columns": {"inputs": columns},
        "with empty params": {"inputs": rows, "params": {}},
    }
    for name, body in bodies.items():
        response = client.post("/invocations", json=body)
        assert response.status_code == 200, (name, response.get_json())
        assert response.get_json() == {"predictions": expected}, name


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"inputs": [[1.0] * 13], "instances": [[1.0] * 13]}, "exactly one of"),
        ({"rows": [[1.0] * 13]}, "exactly one of"),
        ([[1.0] * 13], "exactly one of"),
        ({"inputs": [[1.0] * 12]}, "at least 13"),
        ({"inputs": {"alcohol": [1.0], "hue": [1.0, 2.0]}}, "different lengths"),
        ({"inputs": {"alcohol": [1.0]}}, "missing malic_acid"),
        ({"inputs": [[1.0] * 13], "params": {"temperature": 0.5}}, "params"),
        ({"dataframe_split": {"columns": ["alcohol"], "data": [[1.0]]}}, "missing malic_acid"),
    ],
)
def test_bad_invocations_are_400s(client, trained, body, says):
    response = client.post("/invocations", json=body)
    assert response.status_code == 400
    assert set(response.get_json()) == {"error", "message"}
    assert says in response.get_json()["message"]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_overflowing_values_are_a_400_naming_the_features(client, trained):
    response = client.post("/invocations", json={"inputs": [[1e308] * 13]})
    assert response.status_code == 400
    assert response.get_json()["error"] == "Invalid values" and "hue" in response.get_json()["message"]
