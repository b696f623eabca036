"""Online prediction without scikit-learn's per-call overhead.

For the few rows of an online request, `Pipeline.predict` spends most of its time outside the
arithmetic: every step validates its input again, the forest dispatches its 100 trees through
joblib, and asking for class probabilities too walks every tree a second time. `compile_pipeline`
turns a fitted imputer -> scaler -> model pipeline into plain numpy for the models whose
arithmetic is simple (random forest, logistic regression) and computes the probabilities once,
taking the class as their argmax exactly as those models' own `predict` does. Other models (SVC,
whose `predict` is not the argmax of its Platt probabilities) keep scikit-learn's own methods.
Results equal the pipeline's; tests/ml_service/test_fastpath.py checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Scores = Callable[[np.ndarray], np.ndarray]
# Batch evaluation predicts this many rows at a time: the copies each step makes (float64, float32,
# per-tree scores) then take a few MB instead of hundreds for a set of a million rows.
CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class CompiledPipeline:
    """A fitted pipeline's prediction, as numpy operations where we know the steps' arithmetic."""

    pipeline: object
    classes: np.ndarray
    fill: np.ndarray | None = None  # the imputer's column means
    mean: np.ndarray | None = None  # the scaler's
    scale: np.ndarray | None = None
    probabilities: Scores | None = None  # of the scaled rows; None: use the pipeline itself

    def predict(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Predicted classes of rows (NaN where missing), and class probabilities if the model has them."""
        if self.probabilities is None:
            return _pipeline_predict(self.pipeline, rows)
        X = rows.to_numpy(dtype=np.float64, copy=True)  # a copy: the steps below work in place
        missing = np.isnan(X)
        if missing.any():
            X[missing] = np.broadcast_to(self.fill, X.shape)[missing]
        X -= self.mean
        X /= self.scale
        probabilities = self.probabilities(X)
        return self.classes.take(np.argmax(probabilities, axis=1)), probabilities

    def predict_classes(self, rows: pd.DataFrame) -> np.ndarray:
        """Predicted classes of any number of rows, computed CHUNK_ROWS rows at a time."""
        starts = range(0, max(len(rows), 1), CHUNK_ROWS)
        if self.probabilities is None:
            return np.concatenate([self.pipeline.predict(rows.iloc[start : start + CHUNK_ROWS]) for start in starts])
        return np.concatenate([self.predict(rows.iloc[start : start + CHUNK_ROWS])[0] for start in starts])


def _pipeline_predict(pipeline, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    predicted = pipeline.predict(rows)
    # An SVC without probability=True has no predict_proba.
    probabilities = pipeline.predict_proba(rows) if hasattr(pipeline, "predict_proba") else None
    return predicted, probabilities


def compile_pipeline(pipeline) -> CompiledPipeline:
    """Compile a fitted imputer -> scaler -> model pipeline; unknown shapes keep scikit-learn's path."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    from mlops.kernel.liblinear import LogisticRegression

    plain = CompiledPipeline(pipeline, classes=np.asarray(pipeline.classes_))
    steps = [step for _, step in pipeline.steps]
    if len(steps) != 3:
        return plain
    imputer, scaler, model = steps
    if not (
        type(imputer) is SimpleImputer
        and imputer.strategy == "mean"
        and not np.isnan(imputer.statistics_).any()
        and type(scaler) is StandardScaler
        and scaler.with_mean
        and scaler.with_std
    ):
        return plain
    if type(model) is RandomForestClassifier and model.n_outputs_ == 1:
        scores = _forest_probabilities(model)
    elif type(model) is LogisticRegression and len(model.classes_) > 2:
        scores = _logistic_probabilities(model)
    else:
        return plain
    return CompiledPipeline(
        pipeline,
        classes=np.asarray(model.classes_),
        fill=imputer.statistics_,
        mean=scaler.mean_,
        scale=scaler.scale_,
        probabilities=scores,
    )


def _forest_probabilities(forest) -> Scores:
    """The forest's predict_proba: the mean of its trees' leaf class fractions."""
    trees = [tree.tree_ for tree in forest.estimators_]
    n_classes = forest.n_classes_

    def probabilities(X: np.ndarray) -> np.ndarray:
        # Trees split on float32 thresholds, so they are given float32 rows, as scikit-learn does.
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        if not np.isfinite(X32).all():
            # the same refusal scikit-learn's own input check gives
            raise ValueError("Input contains infinity or a value too large for dtype('float32').")
        total = np.zeros((X.shape[0], n_classes), dtype=np.float64)
        for tree in trees:
            total += tree.predict(X32)[:, :n_classes]
        total /= len(trees)
        return total

    return probabilities


def _logistic_probabilities(model) -> Scores:
    """The multi-class logistic regression's predict_proba (one-vs-rest or multinomial)."""
    coef, intercept = model.coef_.T, model.intercept_
    one_vs_rest = getattr(model, "one_vs_rest_", False)

    def probabilities(X: np.ndarray) -> np.ndarray:
        scores = X @ coef + intercept
        if one_vs_rest:
            # each class's sigmoid, normalised to sum to one (as liblinear's one-vs-rest did)
            scores = 1.0 / (1.0 + np.exp(-scores))
        else:
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)

    return probabilities
