"""Whether requests are queued for a gunicorn worker: connections to its listening sockets that no
worker of the service has accepted yet, and whose clients still wait for an answer.

A sync worker takes one request at a time, so a request that waits inside it (the ML service's
model being loaded by a worker that has just booted) also holds every request queued behind it,
the health probe among them. Such a request asks `requests_queued()` and gives way with a 503
when others wait (mlops/ml/pipeline_cache.py). Outside gunicorn, or with a single worker (no
sockets watched), it is never true: the request waits, as it always did.

A listening socket is readable as soon as its queue holds a connection, also one whose client
gave up and closed it (a probe that timed out): that one is no one waiting. So when the socket is
readable, the kernel's table of TCP connections (/proc/net/tcp) tells: a queued connection has no
socket inode yet (0), and it is still ESTABLISHED while its client waits (CLOSE_WAIT once the
client closed). Where that table is missing (not Linux), the readable socket is taken as is.
"""

from __future__ import annotations

import select
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
ESTABLISHED = "01"


class Listener(Protocol):
    def fileno(self) -> int: ...

    def getsockname(self): ...


_listeners: list[Listener] = []


def watch(sockets: Iterable[Listener]) -> None:
    """Watch this worker's listening sockets (gunicorn_config.post_worker_init)."""
    _listeners[:] = list(sockets)


def requests_queued() -> bool:
    """Whether a client waits on a watched socket for a worker to accept its connection."""
    if not _listeners:
        return False
    try:
        readable, _, _ = select.select(_listeners, [], [], 0)
        ports = {listener.getsockname()[1] for listener in readable}
    except (OSError, ValueError):  # a socket closed as the worker stops
        return False
    if not ports:
        return False
    tables = [table for table in TCP_TABLES if table.exists()]
    if not tables:
        return True
    return any(_waiting_on(table, ports) for table in tables)


def _waiting_on(table: Path, ports: set[int]) -> bool:
    """Whether the table lists a connection to one of ports, queued (no inode) and established."""
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return True
    for line in lines:
        # sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        fields = line.split()
        if len(fields) > 9 and fields[3] == ESTABLISHED and fields[9] == "0":
            if int(fields[1].rsplit(":", 1)[1], 16) in ports:
                return True
    return False
