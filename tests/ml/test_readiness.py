"""The ML service's readiness: /ready (can it answer its main requests: without a trained model,
the deployment ones) and the Open Inference Protocol's ready routes (can this worker infer: a
trained model loaded here), each saying what is loaded or what is missing."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from mlops.kernel.db import deployed_model, make_engine
from mlops.ml.app import create_app
from mlops.ml.kept_pipeline import KeptPipeline
from mlops.ml.pipeline_cache import PipelineCache
from mlops.ml.readiness import NOTHING_TO_SERVE, model_readiness
from tests.support.ml import set_model, use

V2_READY = ("/v2/health/ready", "/v2/models/wine/ready")
DOWN_URL = "postgresql://postgres@127.0.0.1:1/gone"  # nothing listens on port 1: refused at once


def ready(client) -> dict:
    answer = client.get("/ready")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def not_inferring(client) -> list[str]:
    """The V2 ready routes' errors, insisting they are 503 with ready false."""
    errors = []
    for path in V2_READY:
        answer = client.get(path)
        body = answer.get_json()
        assert answer.status_code == 503 and body["ready"] is False, (path, body)
        errors.append(body["error"])
    return errors


def test_a_fresh_service_is_ready_for_its_deployment_requests_and_says_no_model_is_deployed(client):
    body = ready(client)
    assert body["status"] == "ready" and body["checks"]["database"] == "ok"
    assert body["checks"]["model"].startswith("none loaded: No model set: No model is set yet")
    assert "/root/ml/set_model" in body["checks"]["model"] and "degraded" not in body
    assert all(error.startswith("No model set: ") for error in not_inferring(client))


def test_a_model_set_but_not_trained_is_named_with_what_to_run(client, loaded):
    assert set_model(client).status_code == 200
    model = ready(client)["checks"]["model"]
    assert model.startswith("none loaded: Model not trained: The deployed RandomForest model (version 1)")
    assert 'POST /root/ml {"dataset": "training"}' in model
    assert all(error.startswith("Model not trained: ") for error in not_inferring(client))


def test_a_trained_model_is_ready_once_loaded_in_the_worker(client, trained, settings):
    version = client.get("/root/ml").get_json()["model"]["version"]
    assert ready(client)["checks"]["model"] == f"RandomForest version {version} loaded"
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    assert client.get("/v2/models/wine/ready").get_json() == {"name": "wine", "ready": True}
    assert client.get(f"/v2/models/wine/versions/{version}/ready").status_code == 200
    assert client.get(f"/v2/models/wine/versions/{version + 1}/ready").status_code == 404

    # another worker (a new app on the same database) has nothing loaded: the probe loads it
    other = create_app(settings)
    cache = other.extensions["mlops"].resources
    assert cache.compiled is None
    assert ready(other.test_client())["checks"]["model"] == f"RandomForest version {version} loaded"
    assert cache.compiled is not None and cache.model.version == version
    other.extensions["mlops"].dispose()


def test_a_stored_model_that_cannot_be_loaded_leaves_the_service_ready_for_a_new_one(client, trained, ml_engine):
    with ml_engine.begin() as connection:
        connection.execute(update(deployed_model).values(version=deployed_model.c.version + 1, pipeline=b"junk"))
    client.application.extensions["mlops"].resources.announce_change()
    assert ready(client)["checks"]["model"].startswith("none loaded: Stored model unusable: ")
    assert all(error.startswith("Stored model unusable: ") for error in not_inferring(client))
    assert set_model(client).status_code == 200 and use(client, "training").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


@pytest.fixture
def down_engine():
    engine = make_engine(DOWN_URL)
    yield engine
    engine.dispose()


def test_while_the_database_is_down_a_worker_with_a_model_is_ready_and_degraded(client, trained, settings, down_engine):
    version = client.get("/root/ml").get_json()["model"]["version"]
    kept = KeptPipeline.under(settings.data_dir, settings.dataset_db)
    loaded = client.application.extensions["mlops"].resources
    for cache in (loaded, PipelineCache(kept=kept)):  # the model it had loaded, or the kept copy
        cache.announce_change()  # as if VERSION_CHECK_SECONDS passed: it reads the row again
        readiness = model_readiness(down_engine, cache)
        assert readiness.model.version == version
        assert readiness.detail == f"RandomForest version {version} loaded"
        assert readiness.degraded.startswith("The dataset database is unavailable")


def test_while_the_database_is_down_a_worker_with_nothing_to_serve_is_not_ready(tmp_path, down_engine, settings):
    nothing = PipelineCache(kept=KeptPipeline.under(tmp_path / "none", settings.dataset_db))
    readiness = model_readiness(down_engine, nothing)
    assert readiness.model is None and not readiness.deployable and readiness.detail == NOTHING_TO_SERVE
