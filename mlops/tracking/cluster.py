"""Where the grid search's fits run: threads of this process, or a Dask cluster.

Without MLOPS_DASK_SCHEDULER the fits run on joblib's threading backend, as they always did. With
it (`tcp://host:8786`) they run on that cluster through joblib's dask backend, one task per fit:
the backend would otherwise send an estimator's own joblib calls (a RandomForest's trees) to the
cluster as tasks of their own, hundreds of tiny tasks per fit (docs/scaling.md), so inside a task
every joblib call runs sequentially.

A scheduler that cannot be reached, that has no worker, or that goes away during a search is a
503 naming it (ClusterUnavailable); the caller ends its runs FAILED.

distributed (about a second to import) is imported only when a scheduler is set
(mlops.tracking.dask_backend).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from joblib._parallel_backends import ThreadingBackend

from mlops.kernel.errors import Unavailable

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

# How long to wait for the scheduler to answer, and for at least one worker to join it.
CONNECT_TIMEOUT_S = 5
WORKERS_TIMEOUT_S = 10
WATCH_EVERY_S = 1.0
# How many batches of a search's fits each worker thread of a cluster is given (two: a worker
# that finishes early takes a batch of a slower one)...
BATCHES_PER_THREAD = 2
# ... of at most this many fits: the search's progress is counted a batch at a time, and a worker
# that is lost takes only its batches' fits with it.
MAX_BATCH_FITS = 64


class ClusterUnavailable(Unavailable):
    """The Dask scheduler (or every worker) cannot be reached, or went away during the search."""

    error = "Dask cluster unavailable"


@contextlib.contextmanager
def connected(scheduler_address: str) -> Iterator[Client | None]:
    """A client of the cluster at scheduler_address (None if it is empty: search on local threads)
    for the block inside; a loss of the cluster meanwhile is a ClusterUnavailable naming it."""
    if not scheduler_address:
        yield None
        return
    client = connect(scheduler_address)
    watchdog = _Watchdog(client)
    try:
        yield client
    except ClusterUnavailable:
        raise
    except Exception as error:
        if not (watchdog.fired or _is_cluster_loss(error, client)):
            raise
        raise lost(scheduler_address, watchdog.reason or error) from error
    finally:
        watchdog.stop()
        _close(client)
    if watchdog.fired:  # the search ended anyway, but with its client closed under it
        raise lost(scheduler_address, watchdog.reason)


class _Watchdog:
    """Closes the client when the cluster has had no worker for WORKERS_TIMEOUT_S: tasks would
    otherwise wait for one forever. (A lost scheduler closes the client by itself.)"""

    def __init__(self, client: Client):
        self.client = client
        self.fired = False
        self.reason: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="dask-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        without_workers_since = None
        while not self._stop.wait(WATCH_EVERY_S):
            try:
                workers = len(self.client.scheduler_info().get("workers", {}))
            except Exception:  # the scheduler itself is gone: the client reports that
                return
            if workers:
                without_workers_since = None
                continue
            without_workers_since = without_workers_since or time.monotonic()
            if time.monotonic() - without_workers_since >= WORKERS_TIMEOUT_S:
                self.reason = TimeoutError(f"no Dask worker for {WORKERS_TIMEOUT_S} s")
                self.fired = True
                _close(self.client)
                return

    def stop(self) -> None:
        self._stop.set()


def connect(scheduler_address: str):
    """A distributed Client of the scheduler, or a ClusterUnavailable naming it."""
    from distributed import Client

    try:
        return Client(scheduler_address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise unreachable(scheduler_address, error) from error


def unreachable(scheduler_address: str, error: BaseException) -> ClusterUnavailable:
    log.warning("Dask scheduler %s unreachable: %s", scheduler_address, error)
    return ClusterUnavailable(
        f"The Dask scheduler at {scheduler_address} (MLOPS_DASK_SCHEDULER) cannot be reached "
        f"({_reason(error)}): start it, or unset MLOPS_DASK_SCHEDULER to search on this machine"
    )


def lost(scheduler_address: str, error: BaseException) -> ClusterUnavailable:
    log.warning("Dask cluster %s lost during a search: %s", scheduler_address, error)
    return ClusterUnavailable(
        f"The Dask cluster at {scheduler_address} (MLOPS_DASK_SCHEDULER) went away or has no "
        f"worker ({_reason(error)}): the search stopped; retry once the scheduler and its workers run"
    )


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _is_cluster_loss(error: BaseException, client) -> bool:
    """Whether error comes from the cluster (connection, scheduler, workers), not from a fit."""
    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    if isinstance(error, (CommClosedError, KilledWorker, OSError, TimeoutError)):
        return True
    if type(error).__name__ in ("CancelledError", "FutureCancelledError"):
        return True
    return client.status not in ("running", "connecting")


def _close(client) -> None:
    try:
        client.close(timeout=2)
    except Exception as error:  # a scheduler that died cannot be told goodbye
        log.debug("closing the Dask client: %s", error)


class CountsFits:
    """Calls on_done(n) in this process each time a batch of n calls (fits) is done."""

    on_done: Callable[[int], None] | None = None

    def submit(self, func, callback=None):
        if self.on_done is None:
            return super().submit(func, callback)
        calls, on_done = len(func), self.on_done

        def done(result):
            on_done(calls)
            if callback is not None:
                callback(result)

        return super().submit(func, done)


class LocalThreadsBackend(CountsFits, ThreadingBackend):
    """joblib's threading backend, counting the fits done."""


def fits_backend(
    client: Client | None,
    on_done: Callable[[int], None] | None = None,
    *,
    fits: int = 0,
    data: tuple[Any, ...] = (),
) -> Any:
    """The joblib backend for a search's fits: local threads without a client, else the cluster;
    on_done(n) is called as fits complete.

    On the cluster, a search of `fits` fits is handed over (all at once: see
    optimize.search_model) in batches that give each worker thread BATCHES_PER_THREAD of them,
    of at most MAX_BATCH_FITS fits: a small search is then a round trip or two, not one per fit.
    `data` (the training arrays) is sent to every worker once, up front: joblib would send it to
    one worker, whose copy then draws every task of the search to that worker."""
    if client is None:
        backend = LocalThreadsBackend()
    else:
        from mlops.tracking.dask_backend import OneTaskPerFitBackend

        threads = sum(client.nthreads().values()) or 1
        backend = OneTaskPerFitBackend(
            client=client,
            wait_for_workers_timeout=WORKERS_TIMEOUT_S,
            scatter=list(data),
            batch_size=max(1, min(MAX_BATCH_FITS, fits // (threads * BATCHES_PER_THREAD))),
        )
    backend.on_done = on_done
    return backend
