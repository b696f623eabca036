"""Training, evaluation and online prediction of the deployed model.

The pipeline is a mean imputer and a standard scaler, both learned on the training set, in
front of the deployed estimator; so production rows with missing values are imputed with the
training set's statistics. scikit-learn is imported inside the functions that need it, to keep
the service's start fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mlops.kernel.datasets import dataset_row, predictions_writer, read_set, read_set_blocks, replace_predictions
from mlops.kernel.db import FEATURE_COLUMNS, FEATURES
from mlops.kernel.errors import BadRequest, Conflict
from mlops.kernel.pipelines import PipelineRefused, dump_pipeline, make_pipeline
from mlops.kernel.pipelines import load_pipeline as load_trusted_pipeline
from mlops.kernel.read_ahead import read_ahead
from mlops.ml.deployment import (
    SET_MODEL_HINT,
    TRAIN_HINT,
    DeployedModel,
    RegisteredPipeline,
    install_registered,
    read_deployed,
    record_batch,
    require_model,
    save_model,
    save_trained,
)
from mlops.ml.fastpath import CHUNK_ROWS, CompiledPipeline, NonFiniteValues
from mlops.ml.pipeline_cache import PipelineCache

# The SQL spelling of a feature (od280__od315_of_diluted_wines) is accepted as well as the API's.
FEATURE_INDEX = pd.Index(FEATURES)
FEATURE_ALIASES = {column: feature for feature, column in zip(FEATURES, FEATURE_COLUMNS, strict=True)}
EXPECTED_FEATURES = (
    f"expected exactly these {len(FEATURES)} features: {', '.join(FEATURES)} "
    "(od280/od315_of_diluted_wines may also be written od280__od315_of_diluted_wines)"
)


@dataclass(frozen=True)
class Score:
    """The accuracy of the deployed model on one set, whose predictions are now stored."""

    set_name: str
    accuracy: float
    model: DeployedModel
    rows: int  # predicted and stored


@dataclass(frozen=True)
class Prediction:
    """Predicted classes for some rows, with class probabilities where the model has them."""

    model: DeployedModel
    classes: list[Any]
    predicted: list[Any]
    probabilities: list[list[float]] | None
    degraded: str | None = None  # why the model that answered may not be the deployed one


def set_model(engine: Engine, cache: PipelineCache, model_name: str, hyperparameters: dict[str, Any]) -> DeployedModel:
    """Check the model and its hyperparameters with scikit-learn, then deploy it untrained."""
    make_pipeline(model_name, hyperparameters)
    model = save_model(engine, model_name, hyperparameters)
    cache.announce_change()
    return model


def train(engine: Engine, cache: PipelineCache) -> Score:
    """Fit the deployed model on the training set; store the pipeline and its training predictions."""
    with engine.connect() as connection:
        model = require_model(read_deployed(connection))
        training = read_set(connection, "training")
    pipeline = make_pipeline(model.model_name, model.hyperparameters)
    try:
        pipeline.fit(training.features, training.target)
    except (ValueError, TypeError, OverflowError, MemoryError) as error:
        # Hyperparameters that scikit-learn accepts one by one but not together, or not on this
        # data, or that ask for more memory than there is (max_leaf_nodes=2**62 allocates up front).
        raise Conflict(
            f"The deployed {model.model_name} model cannot be trained with these hyperparameters: "
            f"{error or type(error).__name__}. Set other ones with {SET_MODEL_HINT}",
            error="Model cannot be trained",
        ) from None
    predicted = pipeline.predict(training.features)
    accuracy = _accuracy(predicted, training.target)
    pipeline_bytes = dump_pipeline(pipeline)
    with _predictions_transaction(
        engine, "training", training.dataset_id, retry=f"train again with {TRAIN_HINT}"
    ) as connection:
        trained = save_trained(connection, model, pipeline_bytes, accuracy, training.dataset_id)
        replace_predictions(connection, training.dataset_id, training.features.index, predicted, trained.version)
        record_batch(connection, "training", training.dataset_id, len(predicted), accuracy, trained)
    cache.put(trained, pipeline, pipeline_bytes)
    cache.announce_change()
    return Score("training", accuracy, trained, len(predicted))


def evaluate(engine: Engine, cache: PipelineCache, set_name: str) -> Score:
    """Predict a loaded set with the trained model, store the predictions and score them.

    The set is read, predicted and its predictions written a block of rows at a time (read on
    one connection, written in one transaction on another), so memory does not grow with the set;
    the next block is read in a thread while this one is predicted, and the last one written in
    another (the predictions are one COPY on PostgreSQL: see bulk.columns_writer).
    """
    retry = f'evaluate again with POST /root/ml {{"dataset": "{set_name}"}}'
    correct = total = 0
    with engine.connect() as reading:
        model, compiled = cache.trained_pipeline(reading)
        row, blocks = read_set_blocks(reading, set_name, CHUNK_ROWS)
        with _predictions_transaction(engine, set_name, row.id, retry=retry) as writing:
            with (
                predictions_writer(writing, row.id, model.version) as write,
                read_ahead(blocks, name="evaluate-read") as blocks_read,
            ):
                for block in blocks_read:
                    try:
                        predicted = compiled.predict_classes(block.features)
                    except NonFiniteValues as error:  # its rows counted from the set's first
                        raise Conflict(
                            f"The {set_name} set cannot be predicted: {error.shifted(total)}", error="Invalid values"
                        ) from None
                    write(block.features.index, predicted)
                    correct += int(np.count_nonzero(np.asarray(predicted) == block.target.to_numpy()))
                    total += len(predicted)
            if total != row.n_samples:  # the set was replaced under the read
                raise _set_reloaded(set_name, retry)
            accuracy = correct / total if total else float("nan")
            record_batch(writing, set_name, row.id, total, accuracy, model)
    return Score(set_name, accuracy, model, total)


def install_champion(engine: Engine, cache: PipelineCache, pushed: RegisteredPipeline) -> tuple[DeployedModel, bool]:
    """Check a pushed registered pipeline (trusted types, the 13 features), then serve it."""
    try:
        pipeline = load_trusted_pipeline(pushed.pipeline_bytes)
    except PipelineRefused as refused:
        raise BadRequest(
            f"{refused.reason}: push a pipeline logged by the tracking service", error="Invalid model"
        ) from None
    if getattr(pipeline, "n_features_in_", None) != len(FEATURES):
        raise BadRequest(
            f"The pushed pipeline is not fitted on the {len(FEATURES)} wine features", error="Invalid model"
        )
    model, changed = install_registered(engine, pushed)
    if changed and pushed.adopts_version is None:
        cache.put(model, pipeline, pushed.pipeline_bytes)
    if changed:  # a new pipeline, or the served one now registered (adopted)
        cache.announce_change()
    return model, changed


def _accuracy(predicted: np.ndarray, target: pd.Series) -> float:
    """Return the share of predictions equal to the targets."""
    return float(np.mean(np.asarray(predicted) == target.to_numpy()))


@contextmanager
def _predictions_transaction(engine: Engine, name: str, dataset_id: int, *, retry: str) -> Iterator[Connection]:
    """One transaction that stores predictions for a version of a set; a reload of the set
    meanwhile is a 409."""
    try:
        with engine.begin() as connection:
            yield connection
            current = dataset_row(connection, name)
            if current is None or current.id != dataset_id:
                raise _set_reloaded(name, retry)
    except IntegrityError:
        # The reload deleted the set's row between our read and our write: the foreign key refused.
        raise _set_reloaded(name, retry) from None


def _set_reloaded(name: str, retry: str) -> Conflict:
    """Build the 409 for a set reloaded while the model worked on it."""
    return Conflict(f"The {name} set was reloaded while the model was working on it: {retry}", error="Set reloaded")


def served_pipeline(engine: Engine, cache: PipelineCache) -> tuple[DeployedModel, CompiledPipeline]:
    """The trained model this process serves, and its pipeline (loaded again only when it changed;
    while the database is down, the one loaded: PipelineCache.serving_pipeline also says why)."""
    model, compiled, _degraded = cache.serving_pipeline(engine)
    return model, compiled


def predict(engine: Engine, cache: PipelineCache, rows: pd.DataFrame) -> Prediction:
    """Predict rows (columns = FEATURES, NaN where missing) with the served model."""
    model, compiled, degraded = cache.serving_pipeline(engine)
    return predict_with(model, compiled, rows, degraded=degraded)


def predict_with(
    model: DeployedModel, compiled: CompiledPipeline, rows: pd.DataFrame, *, degraded: str | None = None
) -> Prediction:
    """Predict rows with this model's pipeline; values that overflow in the pipeline are a 400."""
    try:
        predicted, probabilities = compiled.predict(rows)
    except NonFiniteValues as error:
        raise BadRequest(str(error), error="Invalid values") from None
    except ValueError as error:
        # scikit-learn's own refusals, for pipelines of other shapes than fastpath compiles
        raise BadRequest(f"These rows cannot be predicted: {error}", error="Invalid values") from None
    return Prediction(
        model=model,
        classes=compiled.classes.tolist(),
        predicted=predicted.tolist(),
        probabilities=probabilities.tolist() if probabilities is not None else None,
        degraded=degraded,
    )


def records_frame(records: Sequence[Mapping[str, float | None]]) -> pd.DataFrame:
    """Rows given as {feature: value} records, as a frame of FEATURES (None -> NaN)."""
    rows = [_feature_order(list(record), where=f"record {i}") for i, record in enumerate(records)]
    values = [[record[name] for name in order] for record, order in zip(records, rows, strict=True)]
    return features_frame(values)


def columns_frame(columns: Sequence[str], data: Sequence[Sequence[float | None]]) -> pd.DataFrame:
    """Rows given as MLflow's dataframe_split (column names + rows of values), as a frame of FEATURES."""
    order = _feature_order(list(columns), where="columns")
    for i, row in enumerate(data):
        if len(row) != len(columns):
            raise BadRequest(
                f"row {i} has {len(row)} values but there are {len(columns)} columns; {EXPECTED_FEATURES}",
                error="Invalid features",
            )
    position = {name: i for i, name in enumerate(columns)}
    values = [[row[position[name]] for name in order] for row in data]
    return features_frame(values)


def features_frame(values: Sequence[Sequence[float | None]] | np.ndarray) -> pd.DataFrame:
    """Rows of values in FEATURES' order as a frame (None -> NaN)."""
    # numpy first: pandas builds a frame from one array faster than from nested lists
    # (docs/performance.md, "Figures behind the code")
    return pd.DataFrame(np.array(values, dtype=np.float64), columns=FEATURE_INDEX, copy=False)


def _feature_order(names: list[str], *, where: str) -> list[str]:
    """The given names in FEATURES' order, or a 400 naming what is missing, unknown or repeated."""
    canonical = [FEATURE_ALIASES.get(name, name) for name in names]
    problems = []
    missing = [f for f in FEATURES if f not in canonical]
    unknown = [name for name, c in zip(names, canonical, strict=True) if c not in FEATURES]
    repeated = sorted({c for c in canonical if c in FEATURES and canonical.count(c) > 1})
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unknown:
        problems.append("unknown " + ", ".join(unknown))
    if repeated:
        problems.append("given twice " + ", ".join(repeated))
    if problems:
        raise BadRequest(f"{where}: {'; '.join(problems)}; {EXPECTED_FEATURES}", error="Invalid features")
    given = dict(zip(canonical, names, strict=True))
    return [given[f] for f in FEATURES]
