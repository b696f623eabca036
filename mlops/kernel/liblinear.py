"""LogisticRegression that keeps liblinear's one-vs-rest behaviour on multi-class data.

scikit-learn 1.8 stopped fitting `solver="liblinear"` on three or more classes (liblinear is a
binary solver; older versions silently trained one classifier per class). The walkthrough asks
for exactly that on the three wine classes, so this subclass does what older versions did.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression


class LogisticRegression(SklearnLogisticRegression):
    """scikit-learn's LogisticRegression; solver="liblinear" on more than two classes is fitted
    one-vs-rest (one binary model per class), as scikit-learn did before 1.8."""

    def fit(self, X, y, sample_weight=None):
        classes = np.unique(y)
        if self.solver != "liblinear" or len(classes) <= 2:
            self.one_vs_rest_ = False
            return super().fit(X, y, sample_weight=sample_weight)
        # Validate like fit() would, then train one binary liblinear model per class.
        self._validate_params()
        binary_models = [
            clone(SklearnLogisticRegression(**self.get_params())).fit(
                X, (np.asarray(y) == label).astype(int), sample_weight=sample_weight
            )
            for label in classes
        ]
        self.classes_ = classes
        self.coef_ = np.vstack([m.coef_ for m in binary_models])
        self.intercept_ = np.concatenate([m.intercept_ for m in binary_models])
        self.n_iter_ = np.concatenate([np.atleast_1d(m.n_iter_) for m in binary_models])
        self.n_features_in_ = binary_models[0].n_features_in_
        if hasattr(binary_models[0], "feature_names_in_"):
            self.feature_names_in_ = binary_models[0].feature_names_in_
        self.one_vs_rest_ = True
        return self

    def predict_proba(self, X):
        if not getattr(self, "one_vs_rest_", False):
            return super().predict_proba(X)
        # One-vs-rest probabilities: each class's sigmoid, normalised to sum to one.
        scores = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return scores / scores.sum(axis=1, keepdims=True)
