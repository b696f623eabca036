"""Stop requests from signals, taken without any lock.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread holds a lock (inside `threading.Event.wait`, for one). A handler that takes a lock, as
`Event.set()` does, can then wait forever for itself. So the handler here only counts, and the
wake-up comes from the interpreter writing the signal number to a pipe (`signal.set_wakeup_fd`),
which the main loop waits on with `select`.
"""

from __future__ import annotations

import os
import select
import signal
from dataclasses import dataclass, field

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# `mlops up --only SERVICE` sends this to a running stack's supervisor: "read your requests".
REQUEST_SIGNAL = signal.SIGUSR1
# A child exited: wake the supervisor at once to restart it (the handler only makes the wake-up
# pipe be written; subprocess reaps the child as before).
CHILD_SIGNAL = signal.SIGCHLD


@dataclass
class StopRequest:
    """Counts stop signals (a second one while stopping means "kill now") and request signals.

    Other threads only read the counters; only the handler writes them.
    """

    stops: int = 0
    requests: int = 0
    _read_fd: int = -1
    _write_fd: int = -1
    _previous: dict[int, object] = field(default_factory=dict)

    @property
    def stop(self) -> bool:
        return self.stops > 0

    @property
    def force(self) -> bool:
        return self.stops > 1

    def handle(self, signum: int, _frame: object) -> None:
        """The signal handler: count, nothing else (the wake-up pipe has already been written)."""
        if signum == REQUEST_SIGNAL:
            self.requests += 1
        elif signum != CHILD_SIGNAL:
            self.stops += 1

    def wait(self, timeout: float) -> bool:
        """Sleep until a signal arrives or timeout passes; return whether a stop was asked for."""
        if not self.stop and self._read_fd >= 0:
            try:
                ready, _, _ = select.select([self._read_fd], [], [], timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select itself
                ready = []
            if ready:
                try:
                    os.read(self._read_fd, 512)
                except BlockingIOError:
                    pass
        return self.stop

    def install(self) -> StopRequest:
        """Take over the stop signals (and the request signal) in this, the main, thread."""
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in (*STOP_SIGNALS, REQUEST_SIGNAL, CHILD_SIGNAL):
            self._previous[signum] = signal.signal(signum, self.handle)
        return self

    def uninstall(self) -> None:
        """Give the signals back (tests run several stacks in one process)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        signal.set_wakeup_fd(-1)
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1


def stop_on_signals() -> StopRequest:
    """Turn Ctrl-C, SIGTERM and SIGHUP into a stop request instead of an abrupt exit."""
    return StopRequest().install()
