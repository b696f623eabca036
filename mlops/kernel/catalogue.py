"""The models the suite knows, by the names its API uses, and how to check their
hyperparameters by asking scikit-learn itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from mlops.kernel.errors import BadRequest
from mlops.kernel.text import Name

MODEL_NAMES = ("RandomForest", "SVC", "LogisticRegression")
ModelName = Literal[MODEL_NAMES]
RANDOM_STATE = 42
UNKNOWN_MODEL_MESSAGE = "Please Specify 'RandomForest', 'SVC' or 'LogisticRegression'"

# Types a stored pipeline may contain, named for skops so that nothing else is ever loaded.
TRUSTED_TYPES = (
    "sklearn.pipeline.Pipeline",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.svm._classes.SVC",
    "sklearn.linear_model._logistic.LogisticRegression",
    "mlops.kernel.liblinear.LogisticRegression",
    "numpy.dtype",
)


# JSON integers beyond 64 bits only overflow inside scikit-learn's compiled code.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
# One hyperparameter value as a request gives it (a grid lists several); it is stored, so a string
# may hold no control character.
HyperparameterScalar = bool | Int64 | float | Name | None

# The scikit-learn modules that building, searching and training these models import (a search's
# and a re-training's besides the models' own), for import_heavy to import them together: two
# threads importing parts of scikit-learn at once can meet a module half-done (ImportError).
SCIKIT_LEARN_MODULES = (
    "sklearn.base",
    "sklearn.dummy",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.svm",
    "mlops.kernel.liblinear",
)

# Set by the service, never by a request: a client's n_jobs of 100,000 would start as many threads.
SERVICE_CONTROLLED = frozenset({"n_jobs", "verbose"})


def _estimator_classes() -> dict[str, type]:
    # Imported here so that services which never build a model do not pay for scikit-learn.
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.svm import SVC

    from mlops.kernel.liblinear import LogisticRegression

    return {
        "RandomForest": RandomForestClassifier,
        "SVC": SVC,
        "LogisticRegression": LogisticRegression,
    }


def check_model_name(model_name: str) -> None:
    """Raise the walkthrough's "Model not Found" 400 for a name the suite does not know."""
    if model_name not in MODEL_NAMES:
        raise BadRequest(UNKNOWN_MODEL_MESSAGE, error="Model not Found")


def build_estimator(model_name: str, hyperparameters: dict[str, Any] | None = None):
    """A fresh, unfitted estimator for model_name with hyperparameters checked by scikit-learn.

    Unknown hyperparameters and invalid values are a 400 naming them. random_state defaults to 42
    where the estimator has one, so results are reproducible.
    """
    check_model_name(model_name)
    cls = _estimator_classes()[model_name]
    estimator = cls()
    valid = estimator.get_params(deep=False)
    hyperparameters = dict(hyperparameters or {})
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise BadRequest(
            f"Unknown hyperparameter(s) for {model_name}: {', '.join(unknown)}. Valid: {', '.join(sorted(valid))}",
            error="Invalid hyperparameter",
        )
    controlled = sorted(set(hyperparameters) & SERVICE_CONTROLLED)
    if controlled:
        raise BadRequest(
            f"{', '.join(controlled)} cannot be set per request: the service decides how it runs "
            "(MLOPS_N_JOBS for the tracking service's grid search)",
            error="Invalid hyperparameter",
        )
    if "random_state" in valid:
        hyperparameters.setdefault("random_state", RANDOM_STATE)
    estimator.set_params(**hyperparameters)
    check_hyperparameters(estimator)
    return estimator


def check_hyperparameters(estimator) -> None:
    """Let scikit-learn validate the estimator's parameter values; a bad one is a 400 naming it."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        # scikit-learn's own constraint check, the one fit() runs first.
        estimator._validate_params()
    except InvalidParameterError as error:
        raise BadRequest(str(error), error="Invalid hyperparameter") from None
