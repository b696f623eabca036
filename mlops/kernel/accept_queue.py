"""Whether requests are queued for a gunicorn worker: its listening sockets have connections that
no worker of the service has accepted yet.

A sync worker takes one request at a time, so a request that waits inside it (the ML service's
model being loaded by a worker that has just booted) also holds every request queued behind it,
the health probe among them. Such a request asks `requests_queued()` and gives way with a 503
when others wait (mlops/ml/pipeline_cache.py). Outside gunicorn (no sockets watched) it is never
true: the request waits, as it always did.
"""

from __future__ import annotations

import select
from collections.abc import Iterable
from typing import Protocol


class Listener(Protocol):
    def fileno(self) -> int: ...


_listeners: list[Listener] = []


def watch(sockets: Iterable[Listener]) -> None:
    """Watch this worker's listening sockets (gunicorn_config.post_worker_init)."""
    _listeners[:] = list(sockets)


def requests_queued() -> bool:
    """Whether a connection waits on a watched socket for a worker to accept it."""
    if not _listeners:
        return False
    try:
        readable, _, _ = select.select(_listeners, [], [], 0)
    except (OSError, ValueError):  # a socket closed as the worker stops
        return False
    return bool(readable)
