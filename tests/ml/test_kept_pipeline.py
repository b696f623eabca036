"""The last served pipeline kept in a file next to the data: written when a model is loaded,
trained or installed; read, checksummed, only by a process that has no model while the dataset DB
is down, which then answers degraded with it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.exc import OperationalError

from mlops.kernel.db import make_engine
from mlops.kernel.walkthrough import WINE_SAMPLE
from mlops.ml.kept_pipeline import FILE_NAME, KeptPipeline
from mlops.ml.pipeline import predict, records_frame
from mlops.ml.pipeline_cache import PipelineCache
from tests.support.ml import set_model, use

# Nothing listens on port 1: connecting is refused at once, as for a database that is down.
DOWN_URL = "postgresql://postgres@127.0.0.1:1/gone"


@pytest.fixture
def kept(settings) -> KeptPipeline:
    return KeptPipeline.under(settings.data_dir, settings.dataset_db)


@pytest.fixture
def down_engine():
    engine = make_engine(DOWN_URL)
    yield engine
    engine.dispose()


def served(client) -> dict:
    return client.get("/root/ml").get_json()["model"]


def test_training_keeps_the_pipeline_with_its_model(client, trained, kept, settings):
    model, pipeline_bytes = kept.read()
    assert kept.path == settings.data_dir / FILE_NAME
    assert model.version == served(client)["version"] and model.trained
    assert model.model_name == "RandomForest" and len(pipeline_bytes) > 1000
    header = json.loads(kept.path.read_bytes().partition(b"\n")[0])
    assert header["format"] == 1 and header["size"] == len(pipeline_bytes) and len(header["sha256"]) == 64
    assert settings.dataset_db not in kept.path.read_bytes().decode(errors="replace")  # a digest, not the URL


def test_the_file_is_written_once_per_model_and_again_for_the_next(client, trained, kept):
    first = kept.path.stat().st_ino
    assert client.post("/root/ml/predict", json=WINE_SAMPLE).status_code == 200
    assert kept.path.stat().st_ino == first  # the same model: not written again
    assert use(client, "training").status_code == 200
    model, _ = kept.read()
    assert kept.path.stat().st_ino != first and model.version == served(client)["version"]


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda raw: raw[:-10], id="truncated"),
        pytest.param(lambda raw: raw[:-10] + bytes(10), id="altered"),
        pytest.param(lambda raw: raw.replace(b'"format": 1', b'"format": 2', 1), id="other format"),
        pytest.param(lambda raw: b"not json\n" + raw.partition(b"\n")[2], id="no header"),
    ],
)
def test_a_spoiled_file_is_not_used(client, trained, kept, spoil):
    kept.path.write_bytes(spoil(kept.path.read_bytes()))
    assert kept.read() is None


def test_a_file_kept_for_another_database_is_not_used(client, trained, kept, settings):
    other = KeptPipeline.under(settings.data_dir, "sqlite:///elsewhere.db")
    assert other.path == kept.path and kept.read() is not None
    assert other.read() is None


def test_a_process_started_while_the_database_is_down_answers_with_the_kept_model(client, trained, kept, down_engine):
    version = served(client)["version"]
    fresh = PipelineCache(kept=kept)  # a worker (re)started during the outage: nothing loaded
    prediction = predict(down_engine, fresh, records_frame([WINE_SAMPLE]))
    assert prediction.model.version == version
    assert prediction.degraded.startswith("The dataset database is unavailable")
    assert f"version {version}, from the copy kept in {kept.path}" in prediction.degraded
    expected = client.post("/root/ml/predict", json=WINE_SAMPLE).get_json()
    assert prediction.predicted == expected["predictions"] and prediction.probabilities == expected["probabilities"]


def test_without_a_kept_file_a_process_with_nothing_loaded_is_the_503_it_was(tmp_path, down_engine, settings):
    fresh = PipelineCache(kept=KeptPipeline.under(tmp_path / "empty", settings.dataset_db))
    with pytest.raises(OperationalError):
        predict(down_engine, fresh, records_frame([WINE_SAMPLE]))


def test_the_kept_model_gives_way_to_the_deployed_one_once_the_database_is_back(
    client, trained, kept, down_engine, ml_engine
):
    fresh = PipelineCache(kept=kept)
    assert predict(down_engine, fresh, records_frame([WINE_SAMPLE])).degraded is not None
    assert set_model(client).status_code == 200 and use(client, "training").status_code == 200  # a new version
    fresh._recheck_at = 0.0  # as RECHECK_SECONDS later
    back = predict(ml_engine, fresh, records_frame([WINE_SAMPLE]))
    assert back.degraded is None and back.model.version == served(client)["version"]
