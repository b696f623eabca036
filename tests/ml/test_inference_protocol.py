"""The Open Inference Protocol (V2) on the ML service, in raw JSON and binary tensor data: health,
metadata, inference with the [n, 13] tensor and the pandas content type, and its error shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlops.kernel.datasets import read_set
from mlops.kernel.db import FEATURE_COLUMNS, FEATURES
from tests.support.ml import set_model, use

INFER = "/v2/models/wine/infer"


def production(engine) -> np.ndarray:
    """The production rows (fouled: NaN where missing)."""
    with engine.connect() as connection:
        return read_set(connection, "production").features.to_numpy()


def as_json(values: np.ndarray) -> list:
    """Values as JSON data, null where missing."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in values]


def tensor(rows: list, **extra) -> dict:
    return {"name": "input-0", "shape": [len(rows), len(FEATURES)], "datatype": "FP64", "data": rows, **extra}


def outputs(answer: dict) -> dict[str, np.ndarray]:
    """The answer's outputs as arrays of their shapes."""
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in answer["outputs"]}


def reference(client, rows: list) -> dict:
    """What POST /root/ml/predict answers for the same rows."""
    records = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    response = client.post("/root/ml/predict", json=records)
    assert response.status_code == 200
    return response.get_json()


def test_health_and_metadata_follow_the_served_model(client, loaded):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    not_ready = client.get("/v2/health/ready")
    assert not_ready.status_code == 503
    assert not_ready.get_json()["ready"] is False and "No model set" in not_ready.get_json()["error"]
    assert client.get("/v2/models/wine/ready").status_code == 503
    no_model = client.get("/v2/models/wine")
    assert no_model.status_code == 409 and set(no_model.get_json()) == {"error"}

    assert set_model(client).status_code == 200 and use(client, "training").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/wine/ready").get_json() == {"name": "wine", "ready": True}
    metadata = client.get("/v2/models/wine").get_json()
    assert metadata["name"] == "wine" and metadata["platform"] == "sklearn"
    assert metadata["versions"] == ["2"]  # set_model made version 1, training version 2
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 13]}]
    assert metadata["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert client.get("/v2/models/wine/versions/2").get_json() == metadata
    assert client.get("/v2/models/wine/versions/2/ready").status_code == 200
    server = client.get("/v2").get_json()
    assert server["name"] == "mlops-ml" and "binary_tensor_data" in server["extensions"]

    # A new training is a new version: the protocol serves it at once, as /root/ml/predict does.
    assert use(client, "training").status_code == 200
    assert client.get("/v2/models/wine").get_json()["versions"] == ["3"]
    assert client.get("/v2/models/wine/versions/2/ready").status_code == 404


def test_unknown_models_and_versions_are_404s_in_the_protocol_error_shape(client, trained):
    for path in (
        "/v2/models/iris",
        "/v2/models/iris/ready",
        "/v2/models/wine/versions/7",
        "/v2/models/wine/versions/x/ready",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert set(response.get_json()) == {"error"}, path
    response = client.post("/v2/models/iris/infer", json={"inputs": [tensor([[1.0] * 13])]})
    assert response.status_code == 404 and "'wine'" in response.get_json()["error"]
    response = client.post("/v2/models/wine/versions/1/infer", json={"inputs": [tensor([[1.0] * 13])]})
    assert response.status_code == 404 and "the served version is 2" in response.get_json()["error"]


def test_a_tensor_flat_or_nested_predicts_as_the_predict_endpoint_does(client, trained):
    rows = as_json(production(trained))
    expected = reference(client, rows)
    nested = client.post(INFER, json={"id": "run-42", "inputs": [tensor(rows)]})
    assert nested.status_code == 200
    answer = nested.get_json()
    assert answer["model_name"] == "wine" and answer["model_version"] == "2" and answer["id"] == "run-42"
    got = outputs(answer)
    assert got["predict"].tolist() == expected["predictions"]
    assert got["predict_proba"].tolist() == expected["probabilities"]
    assert [o["datatype"] for o in answer["outputs"]] == ["INT64", "FP64"]

    flat = client.post(INFER, json={"inputs": [tensor([v for row in rows for v in row], shape=[len(rows), 13])]})
    assert outputs(flat.get_json())["predict"].tolist() == expected["predictions"]
    versioned = client.post("/v2/models/wine/versions/2/infer", json={"inputs": [tensor(rows)]})
    assert outputs(versioned.get_json())["predict"].tolist() == expected["predictions"]
    # integers are numbers too (FP32 and INT64 tensors are converted to float64)
    ints = client.post(
        INFER, json={"inputs": [tensor([[13, 2, 2, 19, 100, 2, 2, 0, 2, 5, 1, 3, 1000]], datatype="INT64")]}
    )
    assert ints.status_code == 200


def test_only_the_requested_outputs_are_answered(client, trained):
    rows = as_json(production(trained)[:3])
    answer = client.post(INFER, json={"inputs": [tensor(rows)], "outputs": [{"name": "predict_proba"}]}).get_json()
    assert [o["name"] for o in answer["outputs"]] == ["predict_proba"]
    unknown = client.post(INFER, json={"inputs": [tensor(rows)], "outputs": [{"name": "predict_log_proba"}]})
    assert unknown.status_code == 400 and "predict, predict_proba" in unknown.get_json()["error"]


def test_the_pandas_content_type_takes_one_column_per_feature(client, trained):
    values = production(trained)
    rows = as_json(values)
    expected = reference(client, rows)
    # any order, either spelling of od280/od315_of_diluted_wines, [n] or [n, 1]
    names = list(reversed(FEATURE_COLUMNS))
    columns = [
        {
            "name": name,
            "shape": [len(rows)] if i % 2 else [len(rows), 1],
            "datatype": "FP64",
            "data": [row[FEATURE_COLUMNS.index(name)] for row in rows],
        }
        for i, name in enumerate(names)
    ]
    response = client.post(INFER, json={"parameters": {"content_type": "pd"}, "inputs": columns})
    assert response.status_code == 200, response.get_json()
    assert outputs(response.get_json())["predict"].tolist() == expected["predictions"]

    without_alcohol = [c for c in columns if c["name"] != "alcohol"]
    missing = client.post(INFER, json={"parameters": {"content_type": "pd"}, "inputs": without_alcohol})
    assert missing.status_code == 400 and "missing alcohol" in missing.get_json()["error"]
    ragged = [dict(columns[0], shape=[2], data=columns[0]["data"][:2]), *columns[1:]]
    response = client.post(INFER, json={"parameters": {"content_type": "pd"}, "inputs": ragged})
    assert response.status_code == 400 and "different lengths" in response.get_json()["error"]


def binary_request(values: np.ndarray, header: dict) -> tuple[bytes, dict[str, str]]:
    """A JSON header followed by the tensor's little-endian bytes (the binary tensor data extension)."""
    head = json.dumps(header).encode()
    return head + values.astype("<f8").tobytes(), {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }


def read_binary_answer(response) -> dict[str, np.ndarray]:
    length = int(response.headers["Inference-Header-Content-Length"])
    raw = response.get_data()
    header, offset, found = json.loads(raw[:length]), length, {}
    for output in header["outputs"]:
        size = output["parameters"]["binary_data_size"]
        dtype = {"INT64": "<i8", "FP64": "<f8"}[output["datatype"]]
        found[output["name"]] = np.frombuffer(raw[offset : offset + size], dtype=dtype).reshape(output["shape"])
        offset += size
    assert offset == len(raw)
    return found


def test_binary_tensor_data_in_and_out(client, trained):
    values = production(trained)  # NaN stays NaN in binary: a missing value, imputed
    expected = reference(client, as_json(values))
    spec = {
        "name": "input-0",
        "shape": list(values.shape),
        "datatype": "FP64",
        "parameters": {"binary_data_size": values.size * 8},
    }
    body, headers = binary_request(values, {"inputs": [spec], "parameters": {"binary_data_output": True}})
    response = client.post(INFER, data=body, headers=headers)
    assert response.status_code == 200, response.get_data()
    assert response.headers["Content-Type"] == "application/octet-stream"
    got = read_binary_answer(response)
    assert got["predict"].tolist() == expected["predictions"]
    assert got["predict_proba"].tolist() == expected["probabilities"]

    # one output as bytes, the other as JSON
    body, headers = binary_request(
        values, {"inputs": [spec], "outputs": [{"name": "predict", "parameters": {"binary_data": False}}]}
    )
    answer = client.post(INFER, data=body, headers=headers).get_json()
    assert answer["outputs"][0]["data"] == expected["predictions"]

    wrong_size = dict(spec, parameters={"binary_data_size": values.size * 8 - 8})
    body, headers = binary_request(values, {"inputs": [wrong_size]})
    response = client.post(INFER, data=body, headers=headers)
    assert response.status_code == 400 and "binary_data_size" in response.get_json()["error"]
    body, headers = binary_request(values, {"inputs": [spec]})
    headers["Inference-Header-Content-Length"] = str(len(body) + 1)
    assert client.post(INFER, data=body, headers=headers).status_code == 400
    infinite = values.copy()
    infinite[0, 0] = np.inf
    body, headers = binary_request(infinite, {"inputs": [spec]})
    response = client.post(INFER, data=body, headers=headers)
    assert response.status_code == 400 and "finite" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("request_body", "says"),
    [
        ({"inputs": [{"name": "x", "shape": [1, 12], "datatype": "FP64", "data": [1.0] * 12}]}, "[n, 13]"),
        ({"inputs": [{"name": "x", "shape": [2, 13], "datatype": "FP64", "data": [1.0] * 13}]}, "26 elements"),
        ({"inputs": [{"name": "x", "shape": [1, 13], "datatype": "BYTES", "data": [1.0] * 13}]}, "not numeric"),
        ({"inputs": [{"name": "x", "shape": [1, 13], "datatype": "FP64"}]}, "data is required"),
        ({"inputs": [{"name": "x", "shape": [1, 13], "datatype": "FP64", "data": ["1"] * 13}]}, "valid number"),
        ({"inputs": [{"name": "x", "shape": [1, 13], "datatype": "INT32", "data": [1.5] * 13}]}, "whole numbers"),
        ({"inputs": [tensor([[1.0] * 13]), tensor([[1.0] * 13])]}, "one input tensor"),
        ({"inputs": [tensor([[1.0] * 13])], "parameters": {"content_type": "str"}}, "content_type"),
        (
            {"inputs": [{"name": "x", "shape": [2, 13], "datatype": "FP64", "data": [[1.0] * 13, [1.0] * 12]}]},
            "every row",
        ),
        ({"inputs": []}, "inputs"),
        ({"inputs": [tensor([[1.0] * 13])], "extra": 1}, "unknown field"),
    ],
)
def test_bad_inference_requests_are_400s_in_the_protocol_error_shape(client, trained, request_body, says):
    response = client.post(INFER, json=request_body)
    assert response.status_code == 400
    assert set(response.get_json()) == {"error"}
    assert says in response.get_json()["error"]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_overflowing_values_and_missing_models_answer_in_the_protocol_error_shape(client, loaded):
    body = {"inputs": [tensor([[1e308] * 13])]}
    assert client.post(INFER, json=body).status_code == 409  # no model yet
    assert set_model(client).status_code == 200 and use(client, "training").status_code == 200
    response = client.post(INFER, json=body)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("Invalid values: ") and "overflow" in response.get_json()["error"]
    text = client.post(INFER, data="1,2,3", content_type="text/csv")
    assert text.status_code == 415 and set(text.get_json()) == {"error"}


def test_the_protocol_is_in_the_openapi_document(client):
    document = client.get("/openapi.json").get_json()
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}", "/v2/models/{model_name}/ready"):
        assert "get" in document["paths"][path], path
    infer = document["paths"]["/v2/models/{model_name}/versions/{version}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"
    }
    assert {p["name"] for p in infer["parameters"]} == {"model_name", "version"}
