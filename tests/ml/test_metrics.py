"""The ML service's domain metrics on GET /metrics: inference requests by model version under
MLServer's names (success, failure, duration), degraded answers, and rows predicted by source."""

from __future__ import annotations

from mlops.kernel.walkthrough import WINE_SAMPLE
from tests.support.metrics import app_samples, sample
from tests.support.ml import use

WINE = {"model": "wine"}
ROW = list(WINE_SAMPLE.values())


def infer_body(rows: int) -> dict:
    return {"inputs": [{"name": "input-0", "shape": [rows, 13], "datatype": "FP64", "data": [ROW] * rows}]}


def test_inference_requests_are_counted_by_model_version_on_every_predict_route(client, trained):
    version = str(client.get("/root/ml").get_json()["model"]["version"])
    record = WINE_SAMPLE
    assert client.post("/root/ml/predict", json=record).status_code == 200
    assert client.post("/root/ml/predict", json=[record] * 3).status_code == 200
    assert client.post("/invocations", json={"instances": [ROW] * 2}).status_code == 200
    assert client.post("/v2/models/wine/infer", json=infer_body(4)).status_code == 200
    # values the pipeline cannot take: a failure of the version served
    assert client.post("/root/ml/predict", json={**record, "alcohol": 1e308}).status_code == 400

    samples = app_samples(client)
    labels = {**WINE, "version": version}
    assert sample(samples, "model_infer_request_success_total", **labels) == 4
    assert sample(samples, "model_infer_request_failure_total", **labels) == 1
    assert sample(samples, "model_infer_request_duration_count", **labels) == 5
    assert sample(samples, "model_infer_request_duration_sum", **labels) > 0
    assert sample(samples, "model_predicted_rows_total", **labels, source="online") == 1 + 3 + 2 + 4
    assert sample(samples, "model_infer_request_degraded_total", **labels) == 0


def test_a_request_before_any_model_is_a_failure_of_no_version(client, loaded):
    assert client.post("/v2/models/wine/infer", json=infer_body(1)).status_code == 409
    samples = app_samples(client)
    assert sample(samples, "model_infer_request_failure_total", **WINE, version="None") == 1
    assert sample(samples, "model_infer_request_success_total", **WINE, version="None") == 0


def test_a_body_refused_by_validation_never_reaches_the_model_and_is_not_an_inference(client, trained):
    assert client.post("/root/ml/predict", json={"alcohol": "strong"}).status_code == 400
    samples = app_samples(client)
    assert not [key for key in samples if key[0].startswith("model_infer_request")]


def test_training_and_evaluation_count_the_rows_they_predicted_by_set(client, trained, loaded):
    from sqlalchemy import text

    assert use(client, "testing").status_code == 200
    version = str(client.get("/root/ml").get_json()["model"]["version"])
    with loaded.connect() as connection:
        sizes = dict(connection.execute(text("SELECT name, n_samples FROM datasets")).all())
    samples = app_samples(client)
    labels = {**WINE, "version": version}
    assert sample(samples, "model_predicted_rows_total", **labels, source="training") == sizes["training"]
    assert sample(samples, "model_predicted_rows_total", **labels, source="testing") == sizes["testing"]


def test_the_loaded_model_gauge_follows_the_version_this_worker_serves(client, trained):
    first = str(client.get("/root/ml").get_json()["model"]["version"])
    assert sample(app_samples(client), "model_loaded", **WINE, version=first) == 1
    assert use(client, "training").status_code == 200  # a new version, put in this worker
    second = str(client.get("/root/ml").get_json()["model"]["version"])
    samples = app_samples(client)
    assert second != first
    assert sample(samples, "model_loaded", **WINE, version=first) == 0
    assert sample(samples, "model_loaded", **WINE, version=second) == 1
