"""The ML service as a real process, spoken to by the reference clients of the protocols it
implements: tritonclient's HTTP client for the Open Inference Protocol (binary tensor data, its
default, and JSON), and plain HTTP for MLflow's /invocations."""

from __future__ import annotations

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from mlops.kernel.datasets import read_set
from mlops.kernel.db import FEATURES, make_engine
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL

pytestmark = pytest.mark.e2e


def post(url: str, body) -> dict:
    response = requests.post(url, json=body, timeout=120)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response.json()


@pytest.fixture
def served(start_service, service_settings):
    """Simulator and ML service running, the walkthrough's forest trained; the production rows."""
    simulator = start_service("simulator", service_settings)
    ml = start_service("ml", service_settings, workers=2)
    for name in ("training", "testing", "production"):
        post(simulator.url + "/root/simulator", {"set_name": name})
    post(ml.url + "/root/ml/set_model", RANDOM_FOREST_MODEL)
    post(ml.url + "/root/ml", {"dataset": "training"})
    engine = make_engine(service_settings.dataset_db)
    with engine.connect() as connection:
        rows = read_set(connection, "production").features.to_numpy()
    engine.dispose()
    return ml.url, rows


def reference(url: str, rows: np.ndarray) -> dict:
    records = [{k: (None if np.isnan(v) else float(v)) for k, v in zip(FEATURES, row, strict=True)} for row in rows]
    return post(url + "/root/ml/predict", records)


def test_tritonclient_talks_to_the_ml_service(served):
    url, rows = served
    expected = reference(url, rows)
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("wine") and client.is_model_ready("wine", "2")
        assert not client.is_model_ready("wine", "1")
        metadata = client.get_model_metadata("wine")
        assert metadata["versions"] == ["2"]
        assert {o["name"] for o in metadata["outputs"]} == {"predict", "predict_proba"}
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

        for binary in (True, False):  # tritonclient's default is binary tensor data
            tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
            tensor.set_data_from_numpy(rows, binary_data=binary)
            wanted = [
                httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("predict", "predict_proba")
            ]
            result = client.infer("wine", [tensor], outputs=wanted, request_id="r1")
            assert result.as_numpy("predict").tolist() == expected["predictions"], binary
            assert result.as_numpy("predict_proba").tolist() == expected["probabilities"], binary
            assert result.get_response()["model_version"] == "2"
        # no outputs named: tritonclient asks for all of them as binary data
        tensor = httpclient.InferInput("input-0", [1, 13], "FP32")
        tensor.set_data_from_numpy(np.nan_to_num(rows[:1]).astype(np.float32))
        result = client.infer("wine", [tensor], model_version="2")
        assert result.as_numpy("predict").shape == (1,) and result.as_numpy("predict_proba").shape == (1, 3)

        with pytest.raises(InferenceServerException, match="shape must be \\[n, 13\\]"):
            bad = httpclient.InferInput("input-0", [1, 12], "FP64")
            bad.set_data_from_numpy(np.ones((1, 12)))
            client.infer("wine", [bad])
        with pytest.raises(InferenceServerException, match="hue"):
            huge = httpclient.InferInput("input-0", [1, 13], "FP64")
            huge.set_data_from_numpy(np.full((1, 13), 1e308))
            client.infer("wine", [huge])
        with pytest.raises(InferenceServerException, match="not 'iris'"):
            client.get_model_metadata("iris")
    finally:
        client.close()


def test_raw_json_v2_and_mlflow_invocations_over_http(served):
    url, rows = served
    expected = reference(url, rows)
    data = [[None if np.isnan(v) else float(v) for v in row] for row in rows]
    body = {"inputs": [{"name": "input-0", "shape": [len(data), 13], "datatype": "FP64", "data": data}]}
    answer = post(url + "/v2/models/wine/infer", body)
    assert answer["outputs"][0]["data"] == expected["predictions"]
    assert post(url + "/invocations", {"dataframe_split": {"columns": list(FEATURES), "data": data}}) == {
        "predictions": expected["predictions"]
    }
    ready = requests.get(url + "/v2/health/ready", timeout=10)
    assert ready.status_code == 200
    # One request per connection: the next one goes to whichever worker is free (kernel/launch.py).
    assert ready.headers["Connection"] == "close"
