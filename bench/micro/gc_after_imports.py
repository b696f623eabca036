"""A full garbage collection after MLflow's and Evidently's first import, before and after gc.freeze()
(docs/performance.md, "Figures behind the code"). Run: .venv/bin/python bench/micro/gc_after_imports.py"""

import gc
import time

import evidently.legacy.report  # noqa: F401
import mlflow.sklearn  # noqa: F401

print(f"objects tracked: {len(gc.get_objects()):,}")
for label in ("before gc.freeze", "again", "after gc.freeze"):
    if label == "after gc.freeze":
        gc.freeze()
    started = time.perf_counter()
    gc.collect()
    print(f"gc.collect() {label}: {time.perf_counter() - started:.3f} s")
