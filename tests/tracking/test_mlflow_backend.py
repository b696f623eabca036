"""Opening the MLflow backend store: URIs, a fresh SQLite store, an unreachable database."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from mlops.kernel.config import Settings
from mlops.kernel.errors import Unavailable
from mlops.tracking.mlflow import MlflowBackend, naming, reads, writes
from mlops.tracking.mlflow.store import end_orphaned_runs
from tests.support.processes import free_port


def test_postgresql_urls_use_psycopg_3_servers_are_reached_over_http_and_other_uris_are_refused(tmp_path):
    backend = MlflowBackend.from_settings(
        Settings(data_dir=tmp_path, mlflow_tracking_uri="postgresql://u@h:5432/mlflow")
    )
    assert backend.tracking_uri == "postgresql+psycopg://u@h:5432/mlflow"
    default = MlflowBackend.from_settings(Settings(data_dir=tmp_path))
    assert default.tracking_uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert default.artifact_root == (tmp_path / "mlartifacts").resolve().as_uri()
    server = MlflowBackend.from_settings(Settings(data_dir=tmp_path, mlflow_tracking_uri="http://mlflow:5000"))
    assert server.on_server and not default.on_server
    with pytest.raises(ValueError, match="database URI"):
        MlflowBackend.from_settings(Settings(data_dir=tmp_path, mlflow_tracking_uri="ftp://mlflow:5000"))


def test_an_unreachable_tracking_server_is_a_503_naming_mlflow(tmp_path):
    from mlops.kernel.errors import Unavailable
    from tests.support.processes import free_port

    backend = MlflowBackend.from_settings(
        Settings(data_dir=tmp_path, mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    )
    with pytest.raises(ConnectionError):
        backend.ping()
    with pytest.raises(Unavailable) as unavailable:
        backend.client()
    assert unavailable.value.error == "MLflow unavailable"


def test_a_new_sqlite_store_is_created_whole_even_after_an_interrupted_start(tmp_path):
    store = tmp_path / "store" / "mlflow.db"
    backend = MlflowBackend.from_settings(Settings(data_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{store}"))
    backend.ping()  # /health creates the (empty) file before MLflow's schema exists
    assert store.exists() and store.stat().st_size == 0
    leftover = store.with_name("mlflow.db.creating-999999")  # a start stopped mid-migration
    leftover.write_bytes(b"half a schema")
    assert reads.list_experiments(backend) == []
    assert not leftover.exists()
    experiment_id = writes.find_or_create_experiment(backend, "e", {"owner": "me"})
    record = reads.get_experiment(backend, experiment_id)
    assert record.artifact_location == f"{backend.artifact_root}/{experiment_id}"
    assert record.tags == {"owner": "me"}
    backend.dispose()


def test_an_unreachable_database_is_503_without_mlflow_retrying_for_minutes(tmp_path):
    uri = f"postgresql://postgres@127.0.0.1:{free_port()}/mlflow"
    backend = MlflowBackend.from_settings(Settings(data_dir=tmp_path, mlflow_tracking_uri=uri))
    with pytest.raises(Unavailable) as unavailable:
        reads.list_experiments(backend)
    assert unavailable.value.status == 503 and "MLflow" in unavailable.value.message
    with pytest.raises(OperationalError):
        backend.ping()


def test_runs_left_running_by_dead_processes_of_this_host_are_ended_failed(backend):
    import socket
    import subprocess

    client = backend.client()
    experiment_id = writes.find_or_create_experiment(backend, f"orphans-{uuid.uuid4().hex[:8]}", {})
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    runs = {
        "dead": client.create_run(experiment_id, tags={naming.PROCESS_TAG: f"{host}:{dead.pid}"}).info.run_id,
        "alive": client.create_run(experiment_id, tags={naming.PROCESS_TAG: f"{host}:{os.getpid()}"}).info.run_id,
        "elsewhere": client.create_run(
            experiment_id, tags={naming.PROCESS_TAG: f"other-{host}:{dead.pid}"}
        ).info.run_id,
        "untagged": client.create_run(experiment_id).info.run_id,
    }
    assert runs["dead"] in end_orphaned_runs(client)
    status = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {"dead": "FAILED", "alive": "RUNNING", "elsewhere": "RUNNING", "untagged": "RUNNING"}
    assert "stopped" in client.get_run(runs["dead"]).data.tags["error"]
    for name in ("alive", "elsewhere", "untagged"):
        client.set_terminated(runs[name], "FINISHED")


def test_new_sqlite_stores_are_copies_of_one_template_each_with_its_own_default_experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    locations = []
    for name in ("first", "second"):
        backend = MlflowBackend.from_settings(Settings(data_dir=tmp_path / name))
        client = backend.client()
        locations.append(client.get_experiment("0").artifact_location)
        assert client.create_experiment(f"made in {name}") == "1"  # a fresh store's first id
        backend.dispose()
    templates = list((tmp_path / "cache" / "mlops").glob("mlflow-*-empty-store.db"))
    assert len(templates) == 1
    assert locations == [(tmp_path / name / "mlartifacts" / "0").resolve().as_uri() for name in ("first", "second")]


def test_the_experiment_list_read_with_plain_sql_is_what_mlflows_client_gives(backend):
    from collections import Counter

    client = backend.client()
    made = [writes.find_or_create_experiment(backend, f"counted-{uuid.uuid4().hex[:8]}", {}) for _ in range(3)]
    for experiment_id, runs in zip(made, (3, 0, 2), strict=True):
        for _ in range(runs):
            client.set_terminated(client.create_run(experiment_id).info.run_id, "FINISHED")
    client.delete_run(client.search_runs([made[0]])[0].info.run_id)  # a deleted run is not counted
    writes.delete_experiment(backend, made[1])  # nor listed, once deleted
    experiments = reads.list_experiments(backend)
    runs = Counter(run.experiment_id for run in reads.list_runs(backend, [e.experiment_id for e in experiments]))
    through_mlflow = [(e.experiment_id, e.name, e.lifecycle_stage, runs[e.experiment_id]) for e in experiments]
    counted = [(c.experiment_id, c.name, c.lifecycle_stage, c.run_count) for c in reads.count_runs(backend)]
    assert counted == through_mlflow
    assert {(made[0], 2), (made[2], 2)} <= {(c[0], c[3]) for c in counted}
    assert made[1] not in {c[0] for c in counted}


def test_a_new_sqlite_store_is_ready_and_lists_experiments_without_importing_mlflow(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from mlops.kernel.config import Settings
        from mlops.tracking.app import create_app

        client = create_app(Settings(data_dir=Path({str(tmp_path)!r}))).test_client()
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.get_json()
        listed = client.get("/root/tracking/experiments")
        assert listed.status_code == 200 and listed.get_json()["data"] == [], listed.get_json()
        assert "mlflow" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)  # a fresh interpreter: nothing imported yet
    # the store made from the template is one MLflow opens and writes to
    backend = MlflowBackend.from_settings(Settings(data_dir=tmp_path))
    experiment_id = writes.find_or_create_experiment(backend, "after", {})
    assert [c.experiment_id for c in reads.count_runs(backend)] == [experiment_id]
    backend.dispose()


def test_a_store_made_by_another_worker_meanwhile_is_read_without_importing_mlflow(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from mlops.kernel.config import Settings
        from mlops.tracking.mlflow import MlflowBackend, reads
        from mlops.tracking.mlflow.files import make_sqlite_store

        settings = Settings(data_dir=Path({str(tmp_path)!r}))
        this, other = MlflowBackend.from_settings(settings), MlflowBackend.from_settings(settings)
        this.ping()  # the health check's connection, on the empty file
        assert make_sqlite_store(other)  # another worker makes the store
        assert reads.count_runs(this) == []
        assert "mlflow" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
