"""Monitoring runs: read the data, run Evidently once per data version and check, keep the result."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Engine

from mlops.kernel.datasets import READ_ATTEMPTS, kept_reloading
from mlops.monitoring import checks
from mlops.monitoring.cache import ResultCache
from mlops.monitoring.data import DataVersion, MonitoringData, SetUsed, data_version, read_monitoring_data

Kind = Literal["report", "tests"]
# Each result holds an Evidently run (which keeps the frames it ran on) and its HTML page: a few MB.
RESULT_ENTRIES = 8
# The frames last read: the report and each test suite on one version of the data read it once.
FRAME_ENTRIES = 1


@dataclass(frozen=True)
class CheckKey:
    """What a result depends on: the stored data's version, the kind of check and the test presets."""

    version: DataVersion
    kind: Kind
    presets: tuple[str, ...] = ()


@dataclass
class CheckResult:
    """One Evidently run on one version of the data; its HTML page is made once, when first asked for."""

    key: CheckKey
    reference_set: SetUsed
    current_set: SetUsed
    run: checks.EvidentlyRun
    _html: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def json(self) -> dict[str, Any]:
        """Evidently's JSON of the run."""
        return self.run.json

    def html(self) -> str:
        """The run as a self-contained HTML page."""
        with self._lock:
            if self._html is None:
                self._html = self.run.html()
            return self._html

    def notes(self) -> list[str]:
        """What a reader of the result should know about the data it was computed on."""
        notes = [
            f"The {used.name} set has {used.rows} rows; Evidently ran on a seeded random sample of "
            f"{used.rows_used} of them (MONITORING_MAX_ROWS)"
            for used in (self.reference_set, self.current_set)
            if used.sampled
        ]
        if self.reference_set.model_version != self.current_set.model_version:
            notes.append(
                "The testing and production predictions come from different model versions "
                f"({self.reference_set.model_version} and {self.current_set.model_version}): evaluate "
                'both sets again with POST /root/ml {"dataset": ...} to compare one model'
            )
        return notes


@dataclass
class MonitoringCache:
    """What one app keeps between requests: Evidently results by check, and the frames last read."""

    results: ResultCache[CheckResult] = field(default_factory=lambda: ResultCache(RESULT_ENTRIES))
    frames: ResultCache[MonitoringData] = field(default_factory=lambda: ResultCache(FRAME_ENTRIES))


class _DataChanged(Exception):
    """The sets changed between reading their version and reading them."""


def run_check(
    engine: Engine, cache: MonitoringCache, max_rows: int, kind: Kind, presets: tuple[str, ...] = ()
) -> tuple[CheckResult, bool]:
    """The result of a report or test suite on the stored data, and whether it came from the cache."""
    for _attempt in range(READ_ATTEMPTS):
        with engine.connect() as connection:
            key = CheckKey(data_version(connection), kind, presets)
        try:
            return cache.results.get_or_compute(key, lambda key=key: _compute(engine, cache, key, max_rows))
        except _DataChanged:
            continue
    raise kept_reloading("The testing or production set (or its predictions)")


def _compute(engine: Engine, cache: MonitoringCache, key: CheckKey, max_rows: int) -> CheckResult:
    data, _cached = cache.frames.get_or_compute((key.version, max_rows), lambda: _read(engine, key.version, max_rows))
    if key.kind == "report":
        run = checks.run_report(data.reference, data.current)
    else:
        run = checks.run_test_suite(data.reference, data.current, key.presets)
    return CheckResult(key, data.reference_set, data.current_set, run)


def _read(engine: Engine, version: DataVersion, max_rows: int) -> MonitoringData:
    data = read_monitoring_data(engine, max_rows)
    if data.version != version:
        raise _DataChanged
    return data
