"""Optimizations in the background ("wait": false): 202 and a job, its progress, its answer, and
what becomes of it when its process is gone."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from mlops.kernel.db import optimization_jobs
from mlops.kernel.web.state import state_of
from mlops.tracking.app import create_app
from mlops.tracking.jobs import this_process
from mlops.tracking.mlflow import reads
from tests.support.tracking import optimization

JOBS = "/root/tracking/jobs/"


def wait_for_job(client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        response = client.get(JOBS + job_id)
        assert response.status_code == 200, response.get_json()
        job = response.get_json()["data"]
        seen.append(job)
        if job["state"] in ("done", "failed"):
            return {**job, "seen": seen}
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {seen[-1]['state']} after {timeout} s")


def dead_process() -> str:
    """The "<host>:<pid>" of a process of this host that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def test_wait_false_answers_202_with_a_job_that_ends_with_the_walkthrough_answer(client, training_loaded, backend):
    body = optimization(wait=False)
    response = client.post("/root/tracking/model_management", json=body)
    assert response.status_code == 202, response.get_json()
    accepted = response.get_json()
    assert accepted["message"] == "Optimization accepted"
    job_id = accepted["data"]["job_id"]
    assert response.headers["Location"] == JOBS + job_id
    assert accepted["data"]["state"] in ("queued", "running")
    assert accepted["data"]["fits_total"] == 90  # (2 + 8 + 8) candidates x 5 folds

    job = wait_for_job(client, job_id)
    assert job["state"] == "done" and job["status_code"] == 201
    assert job["fits_done"] == job["fits_total"] == 90
    assert job["elapsed_seconds"] > 0
    answer = job["answer"]
    assert answer["message"] == "Experiments retrieved successfully"
    assert set(answer["data"]["run_ids"]) == {"LogisticRegression", "RandomForest", "SVC"}
    for run_id in answer["data"]["run_ids"].values():
        assert reads.get_run(backend, run_id).status == "FINISHED"
    # the fits count up while it runs, never down
    done = [seen["fits_done"] for seen in job["seen"]]
    assert done == sorted(done)


def test_the_blocking_request_is_unchanged(client, training_loaded):
    response = client.post("/root/tracking/model_management", json=optimization())
    assert response.status_code == 201
    assert set(response.get_json()) == {"message", "data"}


def test_a_bad_grid_is_refused_at_once_not_queued(client, training_loaded):
    response = client.post(
        "/root/tracking/model_management",
        json=optimization(wait=False, hyperparameters={"SVC": {"kernel": ["cosine"]}}),
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "Invalid hyperparameter"


def test_a_job_that_fails_says_why_with_the_blocking_answer(client):
    # no training set loaded: the blocking request answers 409
    response = client.post("/root/tracking/model_management", json=optimization(wait=False))
    assert response.status_code == 202
    job = wait_for_job(client, response.get_json()["data"]["job_id"])
    assert job["state"] == "failed"
    assert job["status_code"] == 409
    assert set(job["answer"]) == {"error", "message"}


def test_an_unknown_job_is_a_404(client):
    for job_id in ("0123456789abcdef0123456789abcdef", "x" * 500):
        response = client.get(JOBS + job_id)
        assert response.status_code == 404
        assert response.get_json()["error"] == "Job not found"


def _insert_job(app, state: str, owner: str, heartbeat_at: datetime | None = None) -> str:
    import uuid

    job_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    with state_of(app).engine.begin() as connection:
        connection.execute(
            insert(optimization_jobs).values(
                job_id=job_id,
                state=state,
                request=optimization(wait=False),
                fits_done=0,
                fits_total=90,
                owner=owner,
                heartbeat_at=heartbeat_at or now,
                submitted_at=now,
            )
        )
    return job_id


def test_after_a_restart_a_running_job_of_the_stopped_process_is_failed_never_running_forever(app, client):
    job_id = _insert_job(app, "running", dead_process())
    job = client.get(JOBS + job_id).get_json()["data"]
    assert job["state"] == "failed"
    assert job["status_code"] == 503
    assert job["answer"]["error"] == "Job interrupted"
    assert "Send the optimization again" in job["answer"]["message"]


def test_a_running_job_whose_heartbeat_stopped_is_failed_even_on_another_host(app, client):
    stale = datetime.now(UTC) - timedelta(minutes=5)
    job_id = _insert_job(app, "running", "another-host:1234", heartbeat_at=stale)
    assert client.get(JOBS + job_id).get_json()["data"]["state"] == "failed"
    fresh = _insert_job(app, "running", "another-host:1234")
    assert client.get(JOBS + fresh).get_json()["data"]["state"] == "running"


def test_after_a_restart_a_queued_job_is_resumed_by_the_new_process(tracking_settings, training_loaded, app, client):
    job_id = _insert_job(app, "queued", dead_process())
    restarted = create_app(tracking_settings)  # what a restart starts: its runner looks for such jobs
    try:
        assert state_of(restarted).resources.jobs.recover() == [job_id]
        job = wait_for_job(restarted.test_client(), job_id)
        assert job["state"] == "done" and job["status_code"] == 201
        assert job["fits_done"] == 90
        with state_of(app).engine.connect() as connection:
            owner = connection.execute(
                select(optimization_jobs.c.owner).where(optimization_jobs.c.job_id == job_id)
            ).scalar()
        assert owner == this_process()
    finally:
        state_of(restarted).dispose()
        state_of(restarted).resources.mlflow.dispose()


def test_a_queued_job_of_a_live_process_is_left_to_it(app, client):
    job_id = _insert_job(app, "queued", f"{socket.gethostname()}:1")  # pid 1 is alive
    assert state_of(app).resources.jobs.recover() == []
    assert client.get(JOBS + job_id).get_json()["data"]["state"] == "queued"
    with state_of(app).engine.begin() as connection:
        connection.execute(update(optimization_jobs).where(optimization_jobs.c.job_id == job_id).values(state="failed"))
