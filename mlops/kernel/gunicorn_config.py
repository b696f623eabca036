"""gunicorn settings every service runs with (`--config python:mlops.kernel.gunicorn_config`)."""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from gunicorn import util

METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# A request that took this long has probably handled a big set (loaded, evaluated or reported).
TRIM_AFTER_SECONDS = 0.2


def on_starting(server) -> None:
    """Give the workers one empty directory for their Prometheus metrics, before any is forked.

    prometheus_client chooses its multiprocess mode when it is first imported, from
    PROMETHEUS_MULTIPROC_DIR; the master never imports it before this point, and the workers
    inherit the variable. A directory named by the environment is emptied (values left by a
    previous run would be added to this one's); without one, a temporary directory is made and
    removed on exit.
    """
    directory = os.environ.get(METRICS_DIRECTORY)
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix=f"{server.proc_name}-metrics-"))
        os.environ[METRICS_DIRECTORY] = str(path)
        server.mlops_temporary_metrics = path


def child_exit(server, worker) -> None:
    """Drop the live gauges of a worker that exited (its counters and histograms stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, os.environ[METRICS_DIRECTORY])


def on_exit(server) -> None:
    """Remove the metrics directory made by on_starting."""
    made = getattr(server, "mlops_temporary_metrics", None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)


def post_worker_init(worker) -> None:
    """Make the requests gunicorn refuses itself answer JSON errors, like everything else.

    A request line over gunicorn's limit, oversized headers or an unparsable request never reach
    Flask; gunicorn writes an HTML page through util.write_error, its only hook for that page.
    """
    util.write_error = write_json_error


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Write a complete HTTP response carrying {"error", "message"} and close (as gunicorn does)."""
    body = json.dumps({"error": reason, "message": mesg}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def pre_request(worker, req) -> None:
    req.mlops_started = time.monotonic()


def post_request(worker, req, environ, resp) -> None:
    """After a long request, hand the memory it freed back to the system.

    glibc keeps freed memory in the process for reuse, so a service that once handled a million
    rows would hold hundreds of MB more for the rest of its life. malloc_trim returns the free
    pages, after the response is sent and only after requests that took far longer than the call
    (docs/performance.md, P4).
    """
    started = getattr(req, "mlops_started", None)
    if started is not None and time.monotonic() - started >= TRIM_AFTER_SECONDS:
        trim = _malloc_trim()
        if trim is not None:
            trim(0)


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
