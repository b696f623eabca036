"""gunicorn settings every service runs with (`--config python:mlops.kernel.gunicorn_config`)."""

from __future__ import annotations

import ctypes
import functools
import gc
import importlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from gunicorn import util

from mlops.kernel import accept_queue

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
    if server.cfg.workers > 1:
        import_app_module(server)


def import_app_module(server) -> None:
    """Import the app's module in the arbiter, before it forks several workers.

    Each worker then starts with the libraries imported (pages shared copy-on-write) instead of
    importing them again: at a stack's start the ML service's workers otherwise spend a CPU-second
    each on the same imports while the other services wait for the cores (docs/performance.md,
    P5), and a worker that replaces a dead one answers sooner. What the imports built is frozen out
    of the collector, so no worker's collection writes to those pages. The app itself is still made
    in each worker (its connections, caches and metrics), and after the metrics directory is set.
    """
    importlib.import_module(app_module_name(server.app))
    gc.freeze()


def app_module_name(application) -> str:
    """The module of the app gunicorn serves ("mlops.ml.app" for "mlops.ml.app:create_app()")."""
    return application.app_uri.split(":", 1)[0]


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
    """Make the requests gunicorn refuses itself answer JSON errors, like everything else, let a
    worker close an answered connection without waiting for the client, let requests see whether
    others queue for the workers (accept_queue.py; with several workers), and start the app
    module's warm_up(app), if it has one (the ML service loads its served model there as the
    worker boots).

    A request line over gunicorn's limit, oversized headers or an unparsable request never reach
    Flask; gunicorn writes an HTML page through util.write_error, its only hook for that page.
    gunicorn closes connections through util.close_graceful, its only hook for that.
    """
    util.write_error = write_json_error
    util.close_graceful = close_unless_unread(util.close_graceful)
    if worker.cfg.workers > 1:
        # a queue then means every worker is busy; with one worker, a request that gave way would
        # answer 503 for the sake of any other single request (another service's periodic read)
        accept_queue.watch(worker.sockets)
    warm_up = getattr(sys.modules.get(app_module_name(worker.app)), "warm_up", None)
    if warm_up is not None:
        warm_up(worker.wsgi)  # starts the app's warm-up beside the requests; never waits for it


def close_unless_unread(lingering_close):
    """gunicorn's lingering close, kept for the connections where it matters.

    After each answer, gunicorn half-closes the connection and reads until the client closes its
    side (up to 2 s), so that unread request data left in the kernel cannot make close() send a
    reset that would cut the answer short (RFC 9112, 9.6). A sync worker (the ML service's) is
    held all that time: it cannot take the next request until the client has read the answer and
    closed, a client round trip per request, which under CPU contention is a scheduling delay
    (docs/performance.md, P2). When nothing sent by the client is left unread, close() sends a
    plain FIN, so the connection is closed at once; otherwise gunicorn lingers as before.
    """

    def close(sock, *args, **kwargs):
        try:
            sock.setblocking(False)
            unread = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            unread = b""  # nothing sent that we did not read
        except OSError:
            unread = b""  # reset or gone: nothing to protect
        if unread:
            lingering_close(sock, *args, **kwargs)
            return
        util.close(sock)

    return close


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
