"""The ML model service's HTTP API (port 5001)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from flask import Flask, current_app
from pydantic import BaseModel, ConfigDict, Discriminator, Field, FiniteFloat, RootModel, Tag, WithJsonSchema

from mlops.kernel.catalogue import MODEL_NAMES
from mlops.kernel.config import Settings
from mlops.kernel.db import FEATURE_COLUMNS, FEATURES
from mlops.kernel.web import ApiBlueprint, create_service_app, dataset_engine
from mlops.ml_service.deployment import DeployedModel, PipelineCache, read_deployed
from mlops.ml_service.pipeline import columns_frame, evaluate, predict, records_frame, set_model, train

MAX_PREDICT_ROWS = 100_000

bp = ApiBlueprint("ml_service", __name__)

# JSON integers beyond 64 bits only overflow inside scikit-learn's compiled code.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
HyperparameterScalar = bool | Int64 | float | str | None
HyperparameterValue = HyperparameterScalar | list[HyperparameterScalar]


class SetModel(BaseModel):
    """The model to deploy and its hyperparameters (scikit-learn's names and values)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # A plain string, so that an unknown name gets the walkthrough's own "Model not Found" answer.
    model_name: Annotated[str, WithJsonSchema({"type": "string", "enum": list(MODEL_NAMES)})] = Field(
        examples=["RandomForest"]
    )
    hyperparameters: dict[str, HyperparameterValue] = Field(
        default_factory=dict,
        description="constructor arguments of the scikit-learn estimator; omitted ones keep their defaults",
        examples=[{"n_estimators": 100, "max_depth": 10, "min_samples_split": 2, "min_samples_leaf": 1}],
    )


class UseModel(BaseModel):
    """Train on the training set, or evaluate on the testing or production set."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dataset: Literal["training", "testing", "production"]


FeatureValue = FiniteFloat | None  # None (null) is imputed with the training set's mean
FEATURE_NAMES = [*FEATURES, *(c for c in FEATURE_COLUMNS if c not in FEATURES)]
VALUE_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "null"}]}
# Validated as any {name: number|null} so that pipeline.records_frame can name every wrong, missing
# or repeated feature; the OpenAPI document states the names.
Record = Annotated[
    dict[str, FeatureValue],
    WithJsonSchema(
        {
            "type": "object",
            "description": "the 13 wine features by name; null is imputed with the training mean",
            "propertyNames": {"enum": FEATURE_NAMES},
            "additionalProperties": VALUE_SCHEMA,
            "minProperties": len(FEATURES),
            "maxProperties": len(FEATURES),
        }
    ),
]
EXAMPLE_RECORD = dict(
    zip(FEATURES, [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0], strict=True)
)


class DataframeSplit(BaseModel):
    """Column names and rows of values, as pandas' to_dict(orient="split") writes them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    columns: list[Annotated[str, WithJsonSchema({"type": "string", "enum": FEATURE_NAMES})]] = Field(
        max_length=1000
    )
    data: list[list[FeatureValue]] = Field(min_length=1, max_length=MAX_PREDICT_ROWS)
    index: list[Any] | None = Field(None, description="ignored; rows are answered in the order given")


class SplitRows(BaseModel):
    """MLflow's `dataframe_split` input."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dataframe_split: DataframeSplit


class RecordRows(BaseModel):
    """MLflow's `dataframe_records` input."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dataframe_records: list[Record] = Field(min_length=1, max_length=MAX_PREDICT_ROWS)


ROWS_SHAPES = (
    "a list of {feature: value} records, one such record, "
    '{"dataframe_split": {"columns": [...], "data": [[...]]}} or {"dataframe_records": [...]}'
)


def _rows_shape(value: Any) -> str | None:
    """Tell which of the accepted shapes a predict body has (None: none of them)."""
    if isinstance(value, list):
        return "records"
    if isinstance(value, dict):
        if "dataframe_split" in value:
            return "mlflow_split"
        if "dataframe_records" in value:
            return "mlflow_records"
        return "record"
    return None


class PredictRows(RootModel):
    """Rows of the 13 wine features to predict, in any of the shapes MLflow's scoring server takes."""

    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [[EXAMPLE_RECORD]]})

    root: Annotated[
        Union[
            Annotated[list[Record], Field(min_length=1, max_length=MAX_PREDICT_ROWS), Tag("records")],
            Annotated[Record, Tag("record")],
            Annotated[SplitRows, Tag("mlflow_split")],
            Annotated[RecordRows, Tag("mlflow_records")],
        ],
        Discriminator(_rows_shape, custom_error_type="rows_shape", custom_error_message="Send " + ROWS_SHAPES),
    ]


def pipeline_cache() -> PipelineCache:
    """Return this app's cache of the trained pipeline."""
    return current_app.extensions["ml_service"]


def describe_model(model: DeployedModel | None) -> dict[str, Any] | None:
    """Shape the deployed model as GET /root/ml shows it."""
    if model is None:
        return None
    return {
        "model_name": model.model_name,
        "hyperparameters": model.hyperparameters,
        "version": model.version,
        "set_at": model.set_at.isoformat(timespec="seconds"),
        "trained_at": model.trained_at.isoformat(timespec="seconds") if model.trained_at else None,
        "training_accuracy": model.training_accuracy,
    }


@bp.operation("/root/ml", "GET", responses={200: "The component, and the deployed model (null if none)"})
def status():
    """Name the component and say which model is deployed and when it was trained."""
    with dataset_engine().connect() as connection:
        model = read_deployed(connection)
    return {"name": "ml_model", "message": "ML model", "model": describe_model(model)}


@bp.operation(
    "/root/ml/set_model",
    "POST",
    body=SetModel,
    responses={200: "Model deployed (untrained)", 400: "Unknown model or invalid hyperparameter"},
)
def deploy(body: SetModel):
    """Deploy a model with its hyperparameters, replacing the current one; it must be trained next."""
    set_model(dataset_engine(), body.model_name, body.hyperparameters)
    return {"message": "Model successfully uploaded"}


@bp.operation(
    "/root/ml",
    "POST",
    body=UseModel,
    responses={200: "Score on the set", 409: "No model set, model not trained or set not loaded"},
)
def use(body: UseModel):
    """Train the deployed model on the training set, or evaluate it on testing/production; store the predictions."""
    if body.dataset == "training":
        score = train(dataset_engine(), pipeline_cache())
    else:
        score = evaluate(dataset_engine(), pipeline_cache(), body.dataset)
    return {"message": f"Score on {score.set_name} set: {score.accuracy * 100:.2f}%"}


@bp.operation(
    "/root/ml/predict",
    "POST",
    body=PredictRows,
    responses={
        200: "Predicted classes (and probabilities)",
        400: "Wrong features or values, or too many rows",
        409: "No trained model",
        413: "Body over MLOPS_MAX_BODY_BYTES",
    },
)
def predict_rows(body: PredictRows):
    """Predict the class of one or many rows of features with the trained model."""
    rows = body.root
    if isinstance(rows, SplitRows):
        frame = columns_frame(rows.dataframe_split.columns, rows.dataframe_split.data)
    else:
        records = rows.dataframe_records if isinstance(rows, RecordRows) else rows
        frame = records_frame([records] if isinstance(records, dict) else records)
    prediction = predict(dataset_engine(), pipeline_cache(), frame)
    answer: dict[str, Any] = {"predictions": prediction.predicted}
    if prediction.probabilities is not None:
        answer["probabilities"] = prediction.probabilities
    answer["classes"] = prediction.classes
    answer["model"] = {"model_name": prediction.model.model_name, "version": prediction.model.version}
    return answer


def create_app(settings: Settings | None = None) -> Flask:
    """Build the ML model service's app."""
    app = create_service_app("ml", "ML model", settings or Settings.from_env(), [bp])
    app.extensions["ml_service"] = PipelineCache()
    return app
