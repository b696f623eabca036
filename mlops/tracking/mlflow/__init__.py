"""Everything the tracking service keeps in MLflow, behind plain functions.

This package is the only importer of mlflow, and it does so inside functions: `import mlflow`
costs seconds, and the service must start (and answer /health) without paying for it. An MLflow
upgrade touches this package only. Callers get plain records (ExperimentRecord, RunRecord) and
the kernel's errors (404, 409, 503), never MLflow's entities or exceptions.

MLflow is reached through MlflowClient objects bound to one backend store; nothing here sets
MLflow's process-wide tracking URI, so several apps (tests) and threads can use different
backends side by side.

- store: the backend store's lifecycle (open, ping, errors, runs left by dead processes)
- reads: experiments and runs as records
- tables: MLflow's tables read with plain SQL, without importing MLflow (the experiment list)
- writes: experiments, runs, params, metrics and models logged
- naming: run names, tags and the prefixes of params and metrics
- registry: the served model's registered versions, its `champion` alias and the alias's history
"""

from mlops.tracking.mlflow.reads import ExperimentRecord, RunRecord
from mlops.tracking.mlflow.store import MlflowBackend
from mlops.tracking.mlflow.tables import ExperimentCount

__all__ = ["ExperimentCount", "ExperimentRecord", "MlflowBackend", "RunRecord"]
