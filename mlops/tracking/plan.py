"""What an optimization request asks, checked before anything is logged: the models and their
grids, the scorer, the number of fits against MLOPS_GRID_MAX_FITS, and cv and scoring against the
training set. A problem is a 400 that names it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.kernel.catalogue import MODEL_NAMES, SCIKIT_LEARN_MODULES, UNKNOWN_MODEL_MESSAGE, build_estimator
from mlops.kernel.config import Settings
from mlops.kernel.errors import BadRequest
from mlops.kernel.imports import import_heavy
from mlops.tracking.schemas import OptimizationRequest

if TYPE_CHECKING:  # pandas (behind LoadedSet) is imported when a request needs it, not at start-up
    from mlops.kernel.datasets import LoadedSet

# MLflow refuses longer param values; a grid's candidate list is logged as one.
MAX_PARAM_TEXT = 6000


@dataclass(frozen=True)
class ModelSearch:
    """One model's grid, checked."""

    model_name: str
    grid: dict[str, list[Any]]

    @property
    def candidates(self) -> int:
        return math.prod(len(values) for values in self.grid.values())


def plan_searches(request: OptimizationRequest, settings: Settings) -> list[ModelSearch]:
    """Check the models, grids, scoring and size of the request (no data needed); 400 on a problem."""
    # through the import lock: the warm-up may be importing scikit-learn (with MLflow) right now,
    # and a second thread importing it at once can meet it half-done (ImportError, a 500). Every
    # part the request goes on to import (check_against_data, the search, a re-training's imputer):
    # taken the lock first, the warm-up would otherwise import the rest beside them.
    import_heavy(*SCIKIT_LEARN_MODULES)
    from sklearn.metrics import get_scorer_names

    if len(set(request.models)) != len(request.models):
        raise BadRequest("`models` lists a model more than once", error="Invalid request")
    for name in request.hyperparameters:
        if name not in MODEL_NAMES:
            raise BadRequest(f"hyperparameters.{name}: {UNKNOWN_MODEL_MESSAGE}", error="Model not Found")
        if name not in request.models:
            raise BadRequest(
                f"hyperparameters are given for {name}, which is not in `models` {request.models}",
                error="Invalid request",
            )
    if request.scoring not in get_scorer_names():
        raise BadRequest(
            f"Unknown scoring {request.scoring!r}; use one of scikit-learn's scorers, e.g. accuracy, "
            "f1_weighted, precision_weighted, recall_weighted, balanced_accuracy, roc_auc_ovr",
            error="Invalid scoring",
        )
    searches = [ModelSearch(name, request.hyperparameters.get(name, {})) for name in request.models]
    fits = fit_count(request)
    if fits > settings.grid_max_fits:
        detail = ", ".join(f"{s.model_name} {s.candidates} candidates" for s in searches)
        raise BadRequest(
            f"The grid needs {fits} fits ({detail}, x {request.cv} folds), more than the limit of "
            f"{settings.grid_max_fits} (MLOPS_GRID_MAX_FITS): search fewer values or folds",
            error="Grid too large",
        )
    for search in searches:
        check_grid(search)
    return searches


def check_grid(search: ModelSearch) -> None:
    """Ask scikit-learn whether every hyperparameter and every candidate value is valid."""
    for key, values in search.grid.items():
        if not values:
            raise BadRequest(
                f"hyperparameters.{search.model_name}.{key}: give at least one value", error="Invalid request"
            )
        if len(str(values)) > MAX_PARAM_TEXT:
            raise BadRequest(
                f"hyperparameters.{search.model_name}.{key}: too many values to log "
                f"(over {MAX_PARAM_TEXT} characters as text)",
                error="Grid too large",
            )
        for value in values:
            build_estimator(search.model_name, {key: value})


def check_against_data(request: OptimizationRequest, training: LoadedSet) -> None:
    """Check that the training features are finite and that cv and scoring suit the training set;
    400 naming the problem."""
    import numpy as np
    from sklearn.dummy import DummyClassifier
    from sklearn.metrics import get_scorer

    if not np.isfinite(training.features.to_numpy(dtype=float)).all():
        raise BadRequest(
            "The training set has missing or infinite feature values: reload it (POST /root/simulator "
            '{"set_name": "training"})',
            error="Invalid training set",
        )
    counts = training.target.value_counts()
    if request.cv > counts.min():
        raise BadRequest(
            f"cv={request.cv} is more folds than the smallest class of the training set has samples "
            f"({counts.min()} of class {counts.idxmin()}): use at most {counts.min()}",
            error="Invalid cv",
        )
    # A scorer made for another kind of problem (e.g. binary f1 on three classes) fails on any model.
    try:
        baseline = DummyClassifier(strategy="prior").fit(training.features, training.target)
        get_scorer(request.scoring)(baseline, training.features, training.target)
    except (ValueError, TypeError, AttributeError) as error:
        raise BadRequest(
            f"scoring {request.scoring!r} cannot score this {counts.size}-class problem: {error}",
            error="Invalid scoring",
        ) from None


def fit_count(request: OptimizationRequest) -> int:
    """How many fits the request's grid searches make (candidates x folds, every model)."""
    return sum(
        ModelSearch(name, request.hyperparameters.get(name, {})).candidates * request.cv for name in request.models
    )
