"""joblib's dask backend with one task per fit (imports distributed: only when a scheduler is set).

joblib runs each batch of calls on a worker under its dask backend, so an estimator's own joblib
calls inside a fit (a RandomForest's trees) become cluster tasks of their own: hundreds of tiny
tasks per fit. Here every joblib call inside a task runs sequentially instead.
"""

from __future__ import annotations

from joblib import parallel_config
from joblib._dask import Batch, DaskDistributedBackend

from mlops.tracking.cluster import CountsFits


class SequentialBatch(Batch):
    """A batch of fits run on a worker with every joblib call inside them sequential (joblib's own
    Batch runs them under the dask backend, which sends each tree of a forest to the cluster)."""

    def __call__(self, tasks=None):
        with parallel_config(backend="sequential"):
            return [func(*args, **kwargs) for func, args, kwargs in tasks]


class OneTaskPerFitBackend(CountsFits, DaskDistributedBackend):
    """joblib's dask backend whose tasks run their own joblib calls sequentially, counting the fits done.

    At most one task per fit, and fewer: every task costs the scheduler, the network and a worker
    a fixed overhead that fits of a few milliseconds do not hide, so the search hands the fits
    over in batches of `batch_size` (cluster.fits_backend chooses it; joblib's own choice starts
    at one fit a task and splits the end of a search into one-fit tasks again).
    """

    def __init__(self, *args, batch_size: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self._effective_batch_size = batch_size

    async def _to_func_args(self, func):
        _, tasks = await super()._to_func_args(func)
        return SequentialBatch(tasks), tasks

    def __reduce__(self):
        return (OneTaskPerFitBackend, ())
