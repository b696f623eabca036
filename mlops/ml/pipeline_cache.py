"""The trained pipeline each process keeps loaded from the deployed_model row (deployment.py).

A process reloads its pipeline only when the version it sees differs from the one it has loaded,
and swaps it in under a lock, so every answer comes from exactly one version (hot swap: no
restart, no failed request).

Prediction does not read the row at every request. A process reads it again when the host's
change signal (change_signal.py) moved since its last read, so a model deployed, trained,
installed or rolled back through any worker of this host is served from the very next request
of every worker; and at least every VERSION_CHECK_SECONDS, which bounds how long a change made
another way (another host's ML service on the same database, a hand-edited row) or the start of a
database outage goes unseen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from mlops.kernel.db import DATABASE_DOWN
from mlops.kernel.errors import Conflict, Unavailable
from mlops.kernel.outages import DATASET_DB, outage
from mlops.kernel.pipelines import PipelineRefused
from mlops.kernel.pipelines import load_pipeline as load_trusted_pipeline
from mlops.ml.change_signal import ChangeSignal
from mlops.ml.deployment import (
    SET_MODEL_HINT,
    DeployedModel,
    read_deployed,
    read_served_pipeline,
    require_trained,
)
from mlops.ml.fastpath import CompiledPipeline, compile_pipeline
from mlops.ml.kept_pipeline import KeptPipeline

log = logging.getLogger(__name__)


def load_pipeline(pipeline_bytes: bytes) -> Any:
    """Load a pipeline stored by dump_pipeline, or a 409 saying to set and train a model again."""
    try:
        return load_trusted_pipeline(pipeline_bytes)
    except PipelineRefused as refused:
        raise _unusable(refused.reason) from None


def _unusable(reason: str) -> Conflict:
    """Build the 409 for a stored pipeline that cannot be served."""
    return Conflict(f"{reason}: set a model with {SET_MODEL_HINT} and train it again", error="Stored model unusable")


# While the database does not answer, prediction serves the pipeline it has and asks the database
# again after this many seconds (not at every request).
RECHECK_SECONDS = 1.0
# Prediction reads the deployed model's row at least this often, even when no change was announced.
VERSION_CHECK_SECONDS = 0.25
# How often a request waiting for the worker's warm-up looks whether others queue behind it, and
# how long it waits before it gives way to them: answered at once, the clients would send again at
# once, and answering them would take the CPU the load needs.
WARM_UP_POLL_SECONDS = 0.05
GIVE_WAY_AFTER_SECONDS = 0.5
STILL_LOADING = (
    "This worker is still loading the served model (it has just started) and other requests are waiting: "
    "retry in a moment"
)


@dataclass(frozen=True)
class Fresh:
    """What the last read of the row found, and until when prediction may trust it unread."""

    model: DeployedModel
    compiled: CompiledPipeline
    signal: bytes  # the change signal's bytes just before that read
    until: float  # time.monotonic()


@dataclass
class PipelineCache:
    """The trained pipeline this process last loaded or trained, keyed on the deployed version,
    compiled for fast prediction (see fastpath.py).

    The key also holds the training time, so a database recreated under a running service
    (versions counting from 1 again) is never mistaken for the one the pipeline came from.
    `degraded` says why prediction serves it without the database's word that it is still the
    deployed one (None while the database answers). `kept` is the file where the last pipeline
    served is kept for a process that starts while the database is down (kept_pipeline.py).
    """

    kept: KeptPipeline | None = None
    key: tuple[int, datetime | None] | None = None
    compiled: CompiledPipeline | None = None
    model: DeployedModel | None = None
    degraded: str | None = None
    signal: ChangeSignal = field(default_factory=ChangeSignal)
    _fresh: Fresh | None = None  # one attribute, replaced whole: a reader never sees half of it
    # told of every pipeline this process starts serving (the previous model, the new one): metrics
    on_loaded: Callable[[DeployedModel | None, DeployedModel], None] | None = None
    loaded_from: str = "the database"  # where the pipeline loaded came from, as the degraded answers say
    # whether requests queue behind this one for the process (accept_queue.requests_queued under gunicorn)
    requests_queued: Callable[[], bool] = lambda: False
    _recheck_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _warming: threading.Thread | None = None  # the warm-up loading the model as the process boots

    def put(self, model: DeployedModel, pipeline: Any, pipeline_bytes: bytes) -> None:
        """Remember pipeline (stored as pipeline_bytes) as the one trained for model.

        It was just stored in the database, so the database answers again: an outage this process
        noted is over, and the answers stop saying they are degraded.
        """
        compiled = compile_pipeline(pipeline)
        with self._lock:
            self._serve(model, compiled, "the database")
            self.degraded = None
            self._fresh = None
            self._keep(model, pipeline_bytes)

    def announce_change(self) -> None:
        """Say that this process committed a change of the deployed model: every process (this
        one too) reads the row again at its next prediction."""
        self._fresh = None
        self.signal.announce()

    def warm_up(self, load: Callable[[], object]) -> threading.Thread:
        """Run load (which loads the served model through this cache) in a thread of its own, as
        the process boots, so that no request has to load it.

        Until it ends, a request that needs the model waits for it rather than loading it too,
        and gives way with a 503 when others queue behind it (see _await_warm_up).
        """

        def run() -> None:
            try:
                load()
            except Exception:  # the requests meet the same problem and answer it
                log.exception("loading the served model as the process started failed")

        thread = threading.Thread(target=run, name="warm-up", daemon=True)
        self._warming = thread
        thread.start()
        return thread

    def _await_warm_up(self) -> None:
        """Wait for the warm-up, if one runs and nothing is loaded yet (not in the warm-up itself).

        A sync worker takes one request at a time: a request waiting here holds all those queued
        for the worker, the health probe among them, for as long as the load takes (seconds: the
        first load imports scikit-learn). So while others queue, it answers 503 instead, after
        GIVE_WAY_AFTER_SECONDS.
        """
        warming = self._warming
        if warming is None or warming is threading.current_thread() or self.compiled is not None:
            return
        give_way_at = time.monotonic() + GIVE_WAY_AFTER_SECONDS
        queued_before = False
        while warming.is_alive():
            queued = self.requests_queued()
            # twice in a row: no free worker took it meanwhile
            if queued and queued_before and time.monotonic() >= give_way_at:
                raise Unavailable(STILL_LOADING, error="Model loading")
            queued_before = queued
            warming.join(WARM_UP_POLL_SECONDS)
        self._warming = None

    def trained_pipeline(self, connection: Connection) -> tuple[DeployedModel, CompiledPipeline]:
        """The deployed model and its trained pipeline, loaded from the DB only if the version moved."""
        self._await_warm_up()
        model = require_trained(read_deployed(connection))
        with self._lock:
            if self.key == _cache_key(model):
                self.model = model  # the same pipeline, perhaps registered meanwhile (adopted by tracking)
                return model, self.compiled
            # Spec and bytes in one SELECT, so they belong together even if the version moved again.
            model, pipeline_bytes = read_served_pipeline(connection)
            compiled = compile_pipeline(load_pipeline(pipeline_bytes))
            self._serve(model, compiled, "the database")
            log.info("loaded the %s pipeline, version %s", model.model_name, model.version)
            self._keep(model, pipeline_bytes)
            return model, compiled

    def _serve(self, model: DeployedModel, compiled: CompiledPipeline, loaded_from: str) -> None:
        """Predict with this pipeline from now on (the caller holds the lock)."""
        previous = self.model
        self.key, self.compiled, self.model, self.loaded_from = _cache_key(model), compiled, model, loaded_from
        if self.on_loaded is not None:
            self.on_loaded(previous, model)

    def _keep(self, model: DeployedModel, pipeline_bytes: bytes) -> None:
        if self.kept is not None:
            self.kept.keep(model, pipeline_bytes)

    def _load_kept(self) -> bool:
        """Load the kept pipeline (the database being down and nothing loaded); whether there was one."""
        kept = self.kept.read() if self.kept is not None else None
        if kept is None:
            return False
        model, pipeline_bytes = kept
        try:
            compiled = compile_pipeline(load_pipeline(pipeline_bytes))
        except Conflict as unusable:
            log.warning("not using the kept pipeline %s: %s", self.kept.path, unusable.message)
            return False
        with self._lock:
            if self.compiled is None:
                self._serve(model, compiled, f"the copy kept in {self.kept.path}")
        log.info(
            "loaded the kept %s pipeline, version %s (the dataset database is down)", model.model_name, model.version
        )
        return True

    def serving_pipeline(self, engine: Engine) -> tuple[DeployedModel, CompiledPipeline, str | None]:
        """The model to predict with: the deployed one (loaded if its version moved) or, while
        the database does not answer, the one this process has loaded, with why (else None).

        A process that has loaded nothing yet (started during the outage) loads the pipeline kept
        in its file; without one either, an outage is the 503 it always was.
        """
        fresh = self._fresh
        if fresh is not None and time.monotonic() < fresh.until and self.signal.read() == fresh.signal:
            return fresh.model, fresh.compiled, None
        self._await_warm_up()
        loaded = self.model, self.compiled
        degraded = self.degraded
        if degraded is not None and loaded[1] is not None and time.monotonic() < self._recheck_at:
            return *loaded, degraded
        signal = self.signal.read()  # before the read: a change committed after it moves the signal again
        try:
            with engine.connect() as connection:
                serving = self.trained_pipeline(connection)
        except DATABASE_DOWN as error:
            if loaded[1] is None:
                if not self._load_kept():
                    raise
                loaded = self.model, self.compiled
            outage(DATASET_DB).failed(error)
            self._recheck_at = time.monotonic() + RECHECK_SECONDS
            self.degraded = degraded = (
                f"The dataset database is unavailable: answered by the {loaded[0].model_name} model this "
                f"process has loaded (version {loaded[0].version}, from {self.loaded_from}); a model deployed "
                "meanwhile is served once the database is back"
            )
            return *loaded, degraded
        self.degraded = None
        self._fresh = Fresh(*serving, signal, time.monotonic() + VERSION_CHECK_SECONDS)
        return *serving, None


def _cache_key(model: DeployedModel) -> tuple[int, datetime | None]:
    """Identify the trained pipeline of a deployed model."""
    return model.version, model.trained_at
