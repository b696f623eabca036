"""Online prediction without scikit-learn's per-call overhead, refusing what scikit-learn refuses.

For the few rows of an online request, `Pipeline.predict` spends most of its time outside the
arithmetic: every step validates its input again, the forest dispatches its 100 trees through
joblib, and asking for class probabilities too walks every tree a second time. `compile_pipeline`
turns a fitted imputer -> scaler -> model pipeline into plain numpy for the models whose
arithmetic is simple (random forest, logistic regression) and computes the probabilities once,
taking the class as their argmax exactly as those models' own `predict` does. Other models (SVC,
whose `predict` is not the argmax of its Platt probabilities) get the imputed and scaled rows
and keep their own methods. Results equal the pipeline's; tests/ml/test_fastpath.py
checks it.

Values that are finite on input can overflow on the way: a feature of 1e308 divided by a
scale below one is infinite, beyond float32 it is infinite to the trees, and huge scaled values
overflow a linear model's scores. scikit-learn's own input checks refuse the first two (for the
last it answers NaN probabilities); here every step's result is checked and a non-finite one
raises NonFiniteValues naming the features and rows, which the service answers as a 400.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

Scores = Callable[[np.ndarray], np.ndarray]
# Batch evaluation predicts this many rows at a time: the copies each step makes (float64, float32,
# per-tree scores) then take a few MB instead of hundreds for a set of a million rows.
CHUNK_ROWS = 65_536
# From this many rows on, batch evaluation predicts on every core (threads): below, starting them
# costs more than it saves.
PARALLEL_MIN_ROWS = 8_192
SHOWN_ROWS = 5  # rows named in an error, at most
# Up to this many (row, tree) pairs a forest walks all its trees at once (see _forest_probabilities).
WALK_ALL_TREES_AT_MOST = 2_000


class NonFiniteValues(ValueError):
    """Rows whose values become infinite or NaN at a step of the pipeline."""

    def __init__(self, step: str, features: Sequence[str], rows: Sequence[int]):
        self.step, self.features, self.rows = step, list(features), list(rows)
        shown = ", ".join(str(row) for row in self.rows[:SHOWN_ROWS]) + (", ..." if len(self.rows) > SHOWN_ROWS else "")
        one = len(self.features) == 1
        super().__init__(
            f"{', '.join(self.features)} {'is' if one else 'are'} too large to predict with: "
            f"{'it overflows' if one else 'they overflow'} {step} (row{'' if len(self.rows) == 1 else 's'} {shown})"
        )

    def shifted(self, offset: int) -> NonFiniteValues:
        """The same refusal for rows counted from `offset` rows earlier (a part's rows, named by their
        place in the whole)."""
        return NonFiniteValues(self.step, self.features, [offset + row for row in self.rows])


def require_finite(X: np.ndarray, features: Sequence[str], step: str, blame: np.ndarray | None = None) -> None:
    """Raise NonFiniteValues unless every value of X is finite.

    Without `blame`, X's columns are the features, and those with a non-finite value are named;
    with it (rows x features, how much each feature weighs in each row's result, for a step whose
    columns are not the features), the heaviest features of the offending rows are.
    """
    finite = np.isfinite(X)
    if finite.all():
        return
    bad_rows = np.flatnonzero(~finite.all(axis=1))
    if blame is None:
        columns = np.flatnonzero(~finite[bad_rows].all(axis=0))
    else:
        peak = np.abs(blame[bad_rows]).max(axis=0)
        columns = np.flatnonzero(np.isinf(peak)) if np.isinf(peak).any() else np.flatnonzero(peak >= peak.max() / 2)
    raise NonFiniteValues(step, [features[i] for i in columns], bad_rows.tolist())


@dataclass(frozen=True)
class CompiledPipeline:
    """A fitted pipeline's prediction, as numpy operations where we know the steps' arithmetic."""

    pipeline: object
    classes: np.ndarray
    model: object | None = None  # the last step, given imputed and scaled rows; None: the whole pipeline
    fill: np.ndarray | None = None  # the imputer's column means
    mean: np.ndarray | None = None  # the scaler's
    scale: np.ndarray | None = None
    probabilities: Scores | None = None  # of the scaled rows; None: the model's own methods
    dtype: type = np.float64  # the precision the model computes in (the trees': float32)
    weights: np.ndarray | None = None  # per feature, its largest weight in the scores (to name culprits)

    @property
    def has_probabilities(self) -> bool:
        """Whether predictions come with class probabilities (an SVC without probability=True has none)."""
        return self.probabilities is not None or hasattr(self.model or self.pipeline, "predict_proba")

    def predict(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Predicted classes of rows (NaN where missing), and class probabilities if the model has them."""
        if self.model is None:
            return _model_predict(self.pipeline, rows)
        X = self._scaled(rows)
        if self.probabilities is None:
            return _model_predict(self.model, X)
        if self.dtype is not np.float64:
            with np.errstate(over="ignore"):
                X = np.ascontiguousarray(X, dtype=self.dtype)
            require_finite(X, rows.columns, f"in {np.dtype(self.dtype).name}, the precision of the model")
        probabilities = self.probabilities(X)
        if not np.isfinite(probabilities).all():
            weights = self.weights if self.weights is not None else 1.0
            with np.errstate(over="ignore"):
                blame = np.abs(X) * weights
            require_finite(probabilities, rows.columns, "in the model's scores", blame=blame)
        return self.classes.take(np.argmax(probabilities, axis=1)), probabilities

    def predict_classes(self, rows: pd.DataFrame) -> np.ndarray:
        """Predicted classes of any number of rows, computed at most CHUNK_ROWS rows at a time.

        From PARALLEL_MIN_ROWS rows on, the parts go to one thread per core: the trees' walk
        and numpy's arithmetic release the GIL, and each row is computed as it would be alone
        (the same trees summed in the same order), so the classes are the same.
        """
        threads = (os.cpu_count() or 1) if len(rows) >= PARALLEL_MIN_ROWS else 1
        part_rows = min(CHUNK_ROWS, -(-len(rows) // threads))
        starts = range(0, max(len(rows), 1), part_rows)

        def predict_part(start: int) -> np.ndarray:
            part = rows.iloc[start : start + part_rows]
            try:
                if self.model is None:
                    return self.pipeline.predict(part)
                if self.probabilities is None:
                    return self.model.predict(self._scaled(part))
                return self.predict(part)[0]
            except NonFiniteValues as error:  # name the rows by their place in all the rows
                raise error.shifted(start) from None

        if threads == 1:
            return np.concatenate([predict_part(start) for start in starts])
        with ThreadPoolExecutor(threads, thread_name_prefix="predict") as pool:
            return np.concatenate(list(pool.map(predict_part, starts)))

    def _scaled(self, rows: pd.DataFrame) -> np.ndarray:
        """Rows imputed and scaled as the pipeline's first two steps do, every value checked finite."""
        X = rows.to_numpy(dtype=np.float64, copy=True)  # a copy: the steps below work in place
        missing = np.isnan(X)
        if missing.any():
            X[missing] = np.broadcast_to(self.fill, X.shape)[missing]
        require_finite(X, rows.columns, "in the input")
        with np.errstate(over="ignore", invalid="ignore"):
            X -= self.mean
            X /= self.scale
        require_finite(X, rows.columns, "after scaling")
        return X


def _model_predict(model, X) -> tuple[np.ndarray, np.ndarray | None]:
    predicted = model.predict(X)
    # An SVC without probability=True has no predict_proba.
    probabilities = model.predict_proba(X) if hasattr(model, "predict_proba") else None
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
    steps = {"model": model, "fill": imputer.statistics_, "mean": scaler.mean_, "scale": scaler.scale_}
    if type(model) is RandomForestClassifier and model.n_outputs_ == 1:
        # Trees split on float32 thresholds, so they are given float32 rows, as scikit-learn does.
        steps |= {"probabilities": _forest_probabilities(model), "dtype": np.float32}
    elif type(model) is LogisticRegression and len(model.classes_) > 2:
        steps |= {"probabilities": _logistic_probabilities(model), "weights": np.abs(model.coef_).max(axis=0)}
    return CompiledPipeline(pipeline, classes=np.asarray(model.classes_), **steps)


def _forest_probabilities(forest) -> Scores:
    """The forest's predict_proba: the mean of its trees' leaf class fractions.

    A few rows walk all the trees at once: every tree's nodes side by side in flat arrays, one
    numpy step per level, a leaf pointing to itself so that finished walks stay put. Many rows
    go tree by tree through scikit-learn's own compiled walk, cheaper per row. Both compare the
    float32 rows with the float64 thresholds and sum the trees in order, as scikit-learn does,
    so they give the same bits.
    """
    trees = [tree.tree_ for tree in forest.estimators_]
    n_classes = forest.n_classes_
    starts = np.cumsum([0] + [tree.node_count for tree in trees[:-1]])
    leaf = np.concatenate([tree.children_left == -1 for tree in trees])  # scikit-learn's TREE_LEAF
    itself = np.arange(leaf.size)
    left = np.where(
        leaf, itself, np.concatenate([tree.children_left + s for tree, s in zip(trees, starts, strict=True)])
    )
    right = np.where(
        leaf, itself, np.concatenate([tree.children_right + s for tree, s in zip(trees, starts, strict=True)])
    )
    feature = np.where(leaf, 0, np.concatenate([tree.feature for tree in trees]))
    threshold = np.concatenate([tree.threshold for tree in trees])
    value = np.concatenate([tree.value[:, 0, :n_classes] for tree in trees])
    depth = max(tree.max_depth for tree in trees)

    def all_trees_at_once(X32: np.ndarray) -> np.ndarray:
        X = X32.astype(np.float64)
        node = np.broadcast_to(starts, (X.shape[0], len(trees)))
        for _ in range(depth):
            go_left = np.take_along_axis(X, feature[node], axis=1) <= threshold[node]
            node = np.where(go_left, left[node], right[node])
        # a reduction over the middle axis adds tree after tree, like the loop below
        return np.add.reduce(value[node], axis=1)

    def tree_by_tree(X32: np.ndarray) -> np.ndarray:
        total = np.zeros((X32.shape[0], n_classes), dtype=np.float64)
        for tree in trees:
            total += tree.predict(X32)[:, :n_classes]
        return total

    def probabilities(X32: np.ndarray) -> np.ndarray:
        few = X32.shape[0] * len(trees) <= WALK_ALL_TREES_AT_MOST
        total = all_trees_at_once(X32) if few else tree_by_tree(X32)
        total /= len(trees)
        return total

    return probabilities


def _logistic_probabilities(model) -> Scores:
    """The multi-class logistic regression's predict_proba (one-vs-rest or multinomial)."""
    coef, intercept = model.coef_.T, model.intercept_
    one_vs_rest = getattr(model, "one_vs_rest_", False)

    def probabilities(X: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            scores = X @ coef + intercept
            overflowed = ~np.isfinite(scores).all(axis=1)
            if one_vs_rest:
                # each class's sigmoid, normalised to sum to one (as liblinear's one-vs-rest did)
                scores = 1.0 / (1.0 + np.exp(-scores))
            else:
                scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            probabilities = scores / scores.sum(axis=1, keepdims=True)
        if overflowed.any():
            # a sigmoid of an infinite score still looks like a probability: mark the row for refusal
            probabilities[overflowed] = np.nan
        return probabilities

    return probabilities
