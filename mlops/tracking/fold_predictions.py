"""The cross-validated predictions a grid search already made, kept so that the best candidate's
are not computed a second time by cross_val_predict."""

from __future__ import annotations

import hashlib
import threading
from typing import Any


class FoldPredictions:
    """A scorer for GridSearchCV that scores as the named scorer does and keeps each candidate's
    predictions on each test fold (the threading backend shares them with this process).

    A scorer is given a fold's rows but not their positions, so a fold is recognised by the bytes
    of its rows; `of` puts the predictions back in place from the folds the search used.
    """

    def __init__(self, scorer, grid_keys: list[str]):
        self.scorer = scorer
        self.grid_keys = sorted(grid_keys)
        self.predictions: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def _candidate(self, params: dict[str, Any]) -> tuple:
        return tuple((key, repr(params[key])) for key in self.grid_keys)

    def __call__(self, estimator, X, y, **kwargs):
        predicted = estimator.predict(X)
        with self._lock:
            self.predictions[(self._candidate(estimator.get_params(deep=False)), _fingerprint(X))] = predicted
        return self.scorer(estimator, X, y, **kwargs)

    def of(self, params: dict[str, Any], X, folds: list[tuple]):
        """The candidate's predictions on every row of X, from its predictions on the test side of
        each fold; None if a fold is missing or two folds cannot be told apart."""
        import numpy as np

        candidate = self._candidate(params)
        fingerprints = [_fingerprint(X[test]) for _, test in folds]
        if len(set(fingerprints)) != len(folds) or any((candidate, f) not in self.predictions for f in fingerprints):
            return None
        tested = np.concatenate([test for _, test in folds])
        if not np.array_equal(np.sort(tested), np.arange(len(X))):
            return None
        combined = np.empty(len(X), dtype=self.predictions[(candidate, fingerprints[0])].dtype)
        for (_, test), fingerprint in zip(folds, fingerprints, strict=True):
            combined[test] = self.predictions[(candidate, fingerprint)]
        return combined


def _fingerprint(rows) -> bytes:
    """A digest of a block of rows (numpy): the same for the same values in the same order."""
    return hashlib.blake2b(rows.tobytes(), digest_size=16).digest()
