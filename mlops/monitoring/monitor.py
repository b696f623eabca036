"""Monitoring runs: read the data, run Evidently once per data version and check, keep the result."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pandas as pd
from sqlalchemy import Connection, Engine

from mlops.kernel.datasets import READ_ATTEMPTS, kept_reloading
from mlops.monitoring import checks
from mlops.monitoring.cache import ResultCache
from mlops.monitoring.data import (
    TRAINING_SET,
    DataVersion,
    MonitoringData,
    SetUsed,
    data_version,
    read_monitoring_data,
    read_training_frame,
    set_version,
)
from mlops.monitoring.verdict import Verdict, decide

Kind = Literal["report", "tests"]
R = TypeVar("R")
# What the verdict compares production with: the testing set (as the report and tests do), or
# training and testing together (four times the rows: more power, see docs/monitoring-quality.md).
VerdictReference = Literal["testing", "training+testing"]
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


def data_notes(sets: tuple[SetUsed, ...], computed_by: str) -> list[str]:
    """Sampled sets, and predictions of testing and production by different models (the last two of sets)."""
    notes = [
        f"The {used.name} set has {used.rows:,} rows; {computed_by} ran on a seeded random sample of "
        f"{used.rows_used:,} of them (MONITORING_MAX_ROWS)"
        for used in sets
        if used.sampled
    ]
    reference_set, current_set = sets[-2:]
    if reference_set.sampled or current_set.sampled:
        notes.append(sample_power(reference_set, current_set))
    if reference_set.model_version != current_set.model_version:
        notes.append(
            "The testing and production predictions come from different model versions "
            f"({reference_set.model_version} and {current_set.model_version}): evaluate "
            'both sets again with POST /root/ml {"dataset": ...} to compare one model'
        )
    return notes


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
        return data_notes((self.reference_set, self.current_set), "Evidently")


@dataclass(frozen=True)
class VerdictKey:
    """What a verdict depends on: the stored data's version, the reference chosen and, when the
    training set is part of it, the training set's version and its predictions' model version."""

    version: DataVersion
    reference: VerdictReference
    training: tuple[int | None, int | None] | None = None


@dataclass(frozen=True)
class VerdictResult:
    """One verdict on one version of the data, and the sets it was computed on."""

    key: VerdictKey
    verdict: Verdict
    reference_set: SetUsed
    current_set: SetUsed
    training_set: SetUsed | None = None

    def notes(self) -> list[str]:
        """What a reader of the verdict should know about the data it was computed on."""
        sets = (self.reference_set, self.current_set)
        return data_notes(sets if self.training_set is None else (self.training_set, *sets), "the verdict")

    def datasets(self) -> dict[str, Any]:
        """The sets compared, as the answers' `datasets` shows them."""
        shown = {"reference": self.reference_set.to_json(), "current": self.current_set.to_json()}
        if self.training_set is not None:
            shown["training"] = self.training_set.to_json()
        return shown


# The two-sample Kolmogorov-Smirnov critical value at p < 0.05: c(alpha) = sqrt(-ln(alpha / 2) / 2).
KS_C_ALPHA_05 = 1.358


def ks_detectable_distance(n: int, m: int) -> float:
    """The smallest KS distance between two samples of n and m rows that a two-sample KS test
    flags at p < 0.05 (large-sample approximation): the smaller set decides it."""
    return KS_C_ALPHA_05 * math.sqrt((n + m) / (n * m))


def sample_power(reference: SetUsed, current: SetUsed) -> str:
    """What sampling means for the drift verdict: the smallest shift a drift test can detect with
    the rows used, against with every row."""
    used = ks_detectable_distance(reference.rows_used, current.rows_used)
    every = ks_detectable_distance(reference.rows, current.rows)
    return (
        f"Power of the drift tests: comparing {reference.rows_used:,} {reference.name} rows with "
        f"{current.rows_used:,} {current.name} rows, a two-sample KS test at p < 0.05 (Evidently's drift "
        f"test of a numerical column when the reference has fewer than 1,000 rows) detects distributions that "
        f"differ by a KS distance of {used:.4f} or more; with every row it would be {every:.4f}. "
        + (
            "The sample costs the verdict no meaningful power: the smaller set decides it."
            if used - every < 0.005
            else "Raise MONITORING_MAX_ROWS to detect smaller shifts."
        )
    )


@dataclass
class MonitoringCache:
    """What one app keeps between requests: Evidently results by check, verdicts, and the frames last read."""

    results: ResultCache[CheckResult] = field(default_factory=lambda: ResultCache(RESULT_ENTRIES))
    verdicts: ResultCache[VerdictResult] = field(default_factory=lambda: ResultCache(RESULT_ENTRIES))
    frames: ResultCache[MonitoringData] = field(default_factory=lambda: ResultCache(FRAME_ENTRIES))

    def keep_only(self, version: DataVersion) -> None:
        """Drop what was computed on other versions of the data. Once a set is reloaded or evaluated
        again, results of its older versions are no longer asked for (a model deployed again, the
        rare exception, costs one run), and each holds an Evidently run and the frames it ran on
        until it would have been pushed out: tens of MB per report of a sampled big set."""
        self.results.keep_only(lambda key: key.version == version)
        self.verdicts.keep_only(lambda key: key.version == version)
        self.frames.keep_only(lambda key: key[0] == version)


class _DataChanged(Exception):
    """The sets changed between reading their version and reading them."""


def run_check(
    engine: Engine, cache: MonitoringCache, max_rows: int, kind: Kind, presets: tuple[str, ...] = ()
) -> tuple[CheckResult, bool]:
    """The result of a report or test suite on the stored data, and whether it came from the cache."""
    return _on_stored_data(
        engine,
        lambda connection: CheckKey(data_version(connection), kind, presets),
        cache,
        cache.results,
        lambda key: _compute(engine, cache, key, max_rows),
        "The testing or production set (or its predictions)",
    )


def run_verdict(
    engine: Engine, cache: MonitoringCache, max_rows: int, reference: VerdictReference = "testing"
) -> tuple[VerdictResult, bool]:
    """The re-training verdict on the stored data, and whether it came from the cache."""

    def key_of(connection: Connection) -> VerdictKey:
        training = set_version(connection, TRAINING_SET) if reference == "training+testing" else None
        return VerdictKey(data_version(connection), reference, training)

    return _on_stored_data(
        engine,
        key_of,
        cache,
        cache.verdicts,
        lambda key: _compute_verdict(engine, cache, key, max_rows),
        "The training, testing or production set (or its predictions)",
    )


def _on_stored_data(
    engine: Engine,
    key_of: Callable[[Connection], CheckKey | VerdictKey],
    cache: MonitoringCache,
    results: ResultCache[R],
    compute: Callable[[Any], R],
    what: str,
) -> tuple[R, bool]:
    """The result for the stored data's current versions (key_of reads them), computed once per key;
    read again when the sets change while being read. A result computed on a new version of the
    data drops the cache's results of older ones."""
    for _attempt in range(READ_ATTEMPTS):
        with engine.connect() as connection:
            key = key_of(connection)
        try:
            result, cached = results.get_or_compute(key, lambda key=key: compute(key))
        except _DataChanged:
            continue
        if not cached:
            cache.keep_only(key.version)
        return result, cached
    raise kept_reloading(what)


def _compute_verdict(engine: Engine, cache: MonitoringCache, key: VerdictKey, max_rows: int) -> VerdictResult:
    data, _cached = cache.frames.get_or_compute((key.version, max_rows), lambda: _read(engine, key.version, max_rows))
    if key.training is None:
        verdict = decide(data.reference, data.current, data.reference)
        return VerdictResult(key, verdict, data.reference_set, data.current_set)
    training, training_used, version = read_training_frame(engine, max_rows)
    if version != key.training:
        raise _DataChanged
    reference = pd.concat([training, data.reference], ignore_index=True)
    verdict = decide(reference, data.current, data.reference)
    return VerdictResult(key, verdict, data.reference_set, data.current_set, training_used)


def _compute(engine: Engine, cache: MonitoringCache, key: CheckKey, max_rows: int) -> CheckResult:
    data, _cached = cache.frames.get_or_compute((key.version, max_rows), lambda: _read(engine, key.version, max_rows))
    if key.kind == "report":
        run = checks.run_report(data.reference, data.current)
    else:
        run = checks.run_test_suite(data.reference, data.current, key.presets)
    return CheckResult(key, data.reference_set, data.current_set, run)


def _read(engine: Engine, version: DataVersion, max_rows: int) -> MonitoringData:
    data = read_monitoring_data(engine, max_rows, expected=version)
    if data.version != version:
        raise _DataChanged
    return data
