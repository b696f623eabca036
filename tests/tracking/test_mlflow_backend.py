"""Opening the MLflow backend store: URIs, a fresh SQLite store, an unreachable database."""

from __future__ import annotations

import pytest

from mlops.kernel.config import Settings
from mlops.kernel.errors import Unavailable
from mlops.tracking import mlflow_log
from mlops.tracking.mlflow_log import MlflowBackend
from tests.processes import free_port


def test_postgresql_urls_use_psycopg_3_and_other_uris_are_refused(tmp_path):
    backend = MlflowBackend.from_settings(Settings(data_dir=tmp_path, mlflow_tracking_uri="postgresql://u@h:5432/mlflow"))
    assert backend.tracking_uri == "postgresql+psycopg://u@h:5432/mlflow"
    default = MlflowBackend.from_settings(Settings(data_dir=tmp_path))
    assert default.tracking_uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert default.artifact_root == (tmp_path / "mlartifacts").resolve().as_uri()
    with pytest.raises(ValueError, match="database URI"):
        MlflowBackend.from_settings(Settings(data_dir=tmp_path, mlflow_tracking_uri="http://mlflow:5000"))


def test_a_new_sqlite_store_is_created_whole_even_after_an_interrupted_start(tmp_path):
    store = tmp_path / "store" / "mlflow.db"
    backend = MlflowBackend.from_settings(Settings(data_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{store}"))
    backend.ping()  # /health creates the (empty) file before MLflow's schema exists
    assert store.exists() and store.stat().st_size == 0
    leftover = store.with_name("mlflow.db.creating-999999")  # a start stopped mid-migration
    leftover.write_bytes(b"half a schema")
    assert mlflow_log.list_experiments(backend) == []
    assert not leftover.exists()
    experiment_id = mlflow_log.find_or_create_experiment(backend, "e", {"owner": "me"})
    record = mlflow_log.get_experiment(backend, experiment_id)
    assert record.artifact_location == f"{backend.artifact_root}/{experiment_id}"
    assert record.tags == {"owner": "me"}
    backend.dispose()


def test_an_unreachable_database_is_503_without_mlflow_retrying_for_minutes(tmp_path):
    uri = f"postgresql://postgres@127.0.0.1:{free_port()}/mlflow"
    backend = MlflowBackend.from_settings(Settings(data_dir=tmp_path, mlflow_tracking_uri=uri))
    with pytest.raises(Unavailable) as unavailable:
        mlflow_log.list_experiments(backend)
    assert unavailable.value.status == 503 and "MLflow" in unavailable.value.message
    with pytest.raises(Exception):
        backend.ping()
