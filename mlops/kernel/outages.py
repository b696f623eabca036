"""A dependency outage (the dataset database, the MLflow store) logged once when it starts, with
its cause, then as a count every REPORT_EVERY seconds, and once when it ends, instead of a line
(or a traceback) per failed request."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

REPORT_EVERY = 10.0  # seconds between two "still unavailable" lines
DATASET_DB = "dataset database"
MLFLOW_STORE = "MLflow store"

log = logging.getLogger("mlops.outages")


@dataclass
class Outage:
    """Whether one dependency is down in this process, since when, and how often it failed."""

    dependency: str
    every: float = REPORT_EVERY
    since: float | None = None
    failures: int = 0  # since it went down
    _reported: int = 0  # failures already counted in a log line
    _last_report: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> None:
        """Count a failure; log the first one with its cause, then a count now and then."""
        now = time.monotonic()
        with self._lock:
            first = self.since is None
            if first:  # this failure is told in the first line
                self.since, self.failures, self._reported, self._last_report = now, 0, 1, now
            self.failures += 1
            due = not first and now - self._last_report >= self.every
            if due:
                fresh, self._reported, self._last_report = self.failures - self._reported, self.failures, now
            down_for = now - self.since
        if first:
            log.warning(
                "%s unavailable: %s. Requests that need it answer 503 until it is back", self.dependency, cause(error)
            )
        elif due:
            log.warning(
                "%s still unavailable after %.0f s: %d more failed requests or checks", self.dependency, down_for, fresh
            )

    def recovered(self) -> None:
        """It answered again: log how long it was down (nothing if it was not)."""
        if self.since is None:  # the usual case, without taking the lock
            return
        with self._lock:
            if self.since is None:
                return
            down_for, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        log.warning(
            "%s available again after %.1f s (%d failed requests or checks meanwhile)",
            self.dependency,
            down_for,
            failures,
        )


_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()


def outage(dependency: str) -> Outage:
    """This process's record of the dependency's outages."""
    with _outages_lock:
        return _outages.setdefault(dependency, Outage(dependency))


def cause(error: BaseException) -> str:
    """The first line of what the driver said (without SQLAlchemy's SQL and background link)."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    first = text[0] if text else "(no message)"
    return f"{type(original).__name__}: {first[:300]}"


def is_outage(error: BaseException) -> bool:
    """Whether an exception (or what it wraps) says a database does not answer."""
    from sqlalchemy import exc

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)):
            return True
        error = error.__cause__ or error.__context__
    return False


class QuietOutages(logging.Filter):
    """Drop a library's own log records (and their tracebacks) about a database that does not
    answer: the outage is logged once, by Outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[1] is not None and is_outage(record.exc_info[1]))
