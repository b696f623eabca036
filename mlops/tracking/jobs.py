"""Optimizations that run in the background ("wait": false): one row per job in the dataset DB.

A job is queued by the process that accepted it and run there, one at a time per process, on a
thread of its own. Its row says how far it got (fits done of fits total), and once it ends the
answer the blocking request would have given (status and body). While it runs, its process
writes a heartbeat; a job whose process is gone (a restart, a crash) is never left "running":

- a queued job of a process that is gone is taken over and run by the next process that starts
  (`recover`), or by any process asked about it;
- a running job of a process that is gone, or whose heartbeat is older than STALE_AFTER, is ended
  FAILED: its MLflow runs were ended FAILED too (the MLflow store's end_orphaned_runs), and it is not run
  again behind the user's back, since its experiment already holds those runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, insert, select, update

from mlops.kernel.db import optimization_jobs as jobs
from mlops.kernel.errors import ApiError, NotFound

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
HEARTBEAT_EVERY = timedelta(seconds=5)
# A running job not heard of for this long is taken for dead, wherever its process was.
STALE_AFTER = timedelta(seconds=60)
# Progress is written at most this often (each write is a transaction).
PROGRESS_EVERY_S = 0.5

# run(request body, on_fits_done) -> (status, answer body), as the blocking request answers
Runner = Callable[[dict[str, Any], Callable[[int], None]], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class Job:
    """A job as GET /root/tracking/jobs/<job_id> shows it."""

    job_id: str
    state: JobState
    fits_done: int
    fits_total: int
    elapsed_seconds: float
    submitted_at: datetime
    status_code: int | None
    answer: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state,
            "fits_done": self.fits_done,
            "fits_total": self.fits_total,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "submitted_at": self.submitted_at.strftime("%Y-%m-%d %H:%M:%S"),
            "status_code": self.status_code,
            "answer": self.answer,
        }


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_gone(owner: str) -> bool:
    """Whether owner ("<host>:<pid>") is a process of this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class JobRunner:
    """Queues, runs and reports the jobs of one process (one at a time, in order)."""

    engine_of: Callable[[], Engine]
    run: Runner
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="optimization-job")
    )
    _running: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _heartbeat: threading.Thread | None = None

    def submit(self, request: dict[str, Any], fits_total: int) -> Job:
        """Queue an optimization request (already checked) and return its job."""
        now = _now()
        job_id = uuid.uuid4().hex
        with self.engine_of().begin() as connection:
            connection.execute(
                insert(jobs).values(
                    job_id=job_id,
                    state=QUEUED,
                    request=request,
                    fits_done=0,
                    fits_total=fits_total,
                    owner=this_process(),
                    heartbeat_at=now,
                    submitted_at=now,
                )
            )
        self._executor.submit(self._execute, job_id)
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """The job, after ending it FAILED if its process is gone; 404 if there is none."""
        row = self._row(job_id)
        if row is None:
            raise NotFound(f"No optimization job {job_id}", error="Job not found")
        if row.state in (QUEUED, RUNNING) and self._abandoned(row):
            if row.state == QUEUED:
                self._take_over(row)
            else:
                self._fail_abandoned(row)
            row = self._row(job_id)
        return _job(row)

    def recover(self) -> list[str]:
        """Take over the queued jobs of processes that are gone and end their running jobs FAILED
        (call at start); return the ids of the jobs taken over."""
        with self.engine_of().connect() as connection:
            rows = connection.execute(select(jobs).where(jobs.c.state.in_((QUEUED, RUNNING)))).all()
        taken = []
        for row in rows:
            if not self._abandoned(row):
                continue
            if row.state == QUEUED:
                if self._take_over(row):
                    taken.append(row.job_id)
            else:
                self._fail_abandoned(row)
        if taken:
            log.info("resumed %d queued optimization job(s) of a stopped process: %s", len(taken), ", ".join(taken))
        return taken

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- inside -------------------------------------------------------------------------------

    def _row(self, job_id: str):
        with self.engine_of().connect() as connection:
            return connection.execute(select(jobs).where(jobs.c.job_id == job_id)).first()

    def _abandoned(self, row) -> bool:
        if row.owner == this_process():
            return False
        if _process_gone(row.owner):
            return True
        return row.state == RUNNING and _now() - _aware(row.heartbeat_at) > STALE_AFTER

    def _take_over(self, row) -> bool:
        """Make a queued job of a process that is gone this process's, and queue it here."""
        with self.engine_of().begin() as connection:
            claimed = connection.execute(
                update(jobs)
                .where(jobs.c.job_id == row.job_id, jobs.c.state == QUEUED, jobs.c.owner == row.owner)
                .values(owner=this_process(), heartbeat_at=_now())
            ).rowcount
        if claimed:
            self._executor.submit(self._execute, row.job_id)
        return bool(claimed)

    def _fail_abandoned(self, row) -> None:
        message = (
            "The tracking service process running this optimization stopped before it finished; "
            "its runs were ended FAILED. Send the optimization again."
        )
        self._finish(
            row.job_id,
            FAILED,
            503,
            {"error": "Job interrupted", "message": message},
            only_if={"state": RUNNING, "owner": row.owner},
        )
        log.warning("optimization job %s of stopped process %s ended FAILED", row.job_id, row.owner)

    def _execute(self, job_id: str) -> None:
        with self.engine_of().begin() as connection:
            started = connection.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id, jobs.c.state == QUEUED, jobs.c.owner == this_process())
                .values(state=RUNNING, started_at=_now(), heartbeat_at=_now())
            ).rowcount
            request = connection.execute(select(jobs.c.request).where(jobs.c.job_id == job_id)).scalar()
        if not started:
            return
        with self._lock:
            self._running.add(job_id)
        self._ensure_heartbeat()
        progress = _Progress(self, job_id)
        try:
            status, answer = self.run(request, progress.add)
        except ApiError as error:
            status, answer = error.status, error.to_json()
        except Exception as error:
            log.exception("optimization job %s failed", job_id)
            status = 500
            answer = {"error": "Internal Server Error", "message": f"The optimization failed: {type(error).__name__}"}
        finally:
            with self._lock:
                self._running.discard(job_id)
        progress.flush()
        self._finish(job_id, DONE if status < 400 else FAILED, status, answer)

    def _finish(self, job_id: str, state: str, status: int, answer: dict, only_if: dict | None = None) -> None:
        condition = [jobs.c.job_id == job_id]
        for column, value in (only_if or {}).items():
            condition.append(jobs.c[column] == value)
        with self.engine_of().begin() as connection:
            connection.execute(
                update(jobs)
                .where(*condition)
                .values(state=state, status_code=status, answer=answer, finished_at=_now())
            )

    def _progress(self, job_id: str, fits_done: int) -> None:
        with self.engine_of().begin() as connection:
            connection.execute(
                update(jobs).where(jobs.c.job_id == job_id).values(fits_done=fits_done, heartbeat_at=_now())
            )

    def _ensure_heartbeat(self) -> None:
        with self._lock:
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._heartbeat = threading.Thread(target=self._beat, name="optimization-job-heartbeat", daemon=True)
                self._heartbeat.start()

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_EVERY.total_seconds())
            with self._lock:
                running = list(self._running)
            if not running:
                continue
            try:
                with self.engine_of().begin() as connection:
                    connection.execute(update(jobs).where(jobs.c.job_id.in_(running)).values(heartbeat_at=_now()))
            except Exception as error:  # the database may be back at the next beat
                log.warning("optimization job heartbeat failed: %s", error)


class _Progress:
    """Counts a job's fits as they complete; writes the count at most every PROGRESS_EVERY_S."""

    def __init__(self, runner: JobRunner, job_id: str):
        self.runner, self.job_id = runner, job_id
        self.done = 0
        self.written = 0
        self.written_at = 0.0
        self.lock = threading.Lock()

    def add(self, fits: int) -> None:
        with self.lock:
            self.done += fits
            if time.monotonic() - self.written_at < PROGRESS_EVERY_S:
                return
            self.written_at = time.monotonic()
            done = self.done
        self._write(done)

    def flush(self) -> None:
        with self.lock:
            done = self.done
        if done != self.written:
            self._write(done)

    def _write(self, done: int) -> None:
        try:
            self.runner._progress(self.job_id, done)
            self.written = max(self.written, done)
        except Exception as error:  # progress is a courtesy: the job goes on
            log.warning("could not record the progress of job %s: %s", self.job_id, error)


def _job(row) -> Job:
    finished = _aware(row.finished_at) if row.finished_at else _now()
    return Job(
        job_id=row.job_id,
        state=row.state,
        fits_done=min(row.fits_done, row.fits_total),
        fits_total=row.fits_total,
        elapsed_seconds=max(0.0, (finished - _aware(row.submitted_at)).total_seconds()),
        submitted_at=_aware(row.submitted_at),
        status_code=row.status_code,
        answer=row.answer,
    )
