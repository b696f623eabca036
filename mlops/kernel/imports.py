"""Heavy libraries (MLflow, Evidently, scikit-learn), imported on first use: safely, and once."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import threading

_lock = threading.Lock()


def import_heavy(*modules: str) -> None:
    """Import these modules, one thread at a time, and spare the garbage collector what they built.

    MLflow and Evidently import themselves in circles: two threads importing one for the first
    time at once can meet it half-done (ImportError), or deadlock and leave it half-imported for
    the life of the process. So every call takes one lock; once imported, a call is cheap.

    Such an import leaves hundreds of thousands of objects that live as long as the process, and
    every full collection would walk them all again (docs/performance.md, P3). After a first
    import they are frozen into the permanent generation (gc.freeze), which no collection walks.
    No gc.collect before freezing: an import leaves little garbage, and the collection would walk
    everything once more.
    """
    with _lock:
        fresh = [name for name in modules if name not in sys.modules]
        for name in modules:
            importlib.import_module(name)
        if fresh:
            gc.freeze()


def behind_other_work(niceness: int = 10) -> None:
    """Lower the calling thread's CPU priority by `niceness` (Linux: each thread has its own nice
    value; the process's other threads keep theirs), for work that should yield the cores, such as
    a warm-up while other processes start on the same machine. Nothing where that is not allowed."""
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(os.getpriority(os.PRIO_PROCESS, thread) + niceness, 19))
