"""The ML service's request models: what each endpoint accepts, and its OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    FiniteFloat,
    RootModel,
    Tag,
    WithJsonSchema,
)

from mlops.kernel.catalogue import MODEL_NAMES, HyperparameterScalar, Int64, ModelName
from mlops.kernel.db import FEATURE_COLUMNS, FEATURES, SetName
from mlops.kernel.text import Name
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL, WINE_SAMPLE
from mlops.kernel.web.parsing import WholeNumber

MAX_PREDICT_ROWS = 100_000

HyperparameterValue = HyperparameterScalar | list[HyperparameterScalar]


class SetModel(BaseModel):
    """The model to deploy and its hyperparameters (scikit-learn's names and values)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # A plain string, so that an unknown name gets the walkthrough's own "Model not Found" answer.
    model_name: Annotated[str, WithJsonSchema({"type": "string", "enum": list(MODEL_NAMES)})] = Field(
        examples=["RandomForest"]
    )
    hyperparameters: dict[Name, HyperparameterValue] = Field(
        default_factory=dict,
        description="constructor arguments of the scikit-learn estimator; omitted ones keep their defaults",
        examples=[RANDOM_FOREST_MODEL["hyperparameters"]],
    )


class UseModel(BaseModel):
    """Train on the training set, or evaluate on the testing or production set."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dataset: SetName


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


class DataframeSplit(BaseModel):
    """Column names and rows of values, as pandas' to_dict(orient="split") writes them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    columns: list[Annotated[str, WithJsonSchema({"type": "string", "enum": FEATURE_NAMES})]] = Field(max_length=1000)
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

    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [[WINE_SAMPLE]]})

    root: Annotated[
        Annotated[list[Record], Field(min_length=1, max_length=MAX_PREDICT_ROWS), Tag("records")]
        | Annotated[Record, Tag("record")]
        | Annotated[SplitRows, Tag("mlflow_split")]
        | Annotated[RecordRows, Tag("mlflow_records")],
        Discriminator(_rows_shape, custom_error_type="rows_shape", custom_error_message="Send " + ROWS_SHAPES),
    ]


# --- MLflow's scoring server: POST /invocations ---------------------------------------------------

NO_PARAMS = Field(None, max_length=0, description="MLflow's inference params; this model takes none")


class InvocationSplit(SplitRows):
    """MLflow's `dataframe_split` input."""

    params: dict[str, Any] | None = NO_PARAMS


class InvocationRecords(RecordRows):
    """MLflow's `dataframe_records` input."""

    params: dict[str, Any] | None = NO_PARAMS


def _tensor_shape(value: Any) -> str | None:
    """Tell how `instances` / `inputs` hold the rows: records, rows of values, or columns."""
    if isinstance(value, dict):
        return "columns"
    if isinstance(value, list) and value:
        return "records" if isinstance(value[0], dict) else "rows"
    return None


TENSOR_SHAPES = (
    "a list of {feature: value} records, a list of rows of the 13 values in this order: "
    + ", ".join(FEATURES)
    + ", or {feature: [values]} columns"
)
Row = Annotated[list[FeatureValue], Field(min_length=len(FEATURES), max_length=len(FEATURES))]
Column = Annotated[list[FeatureValue], Field(min_length=1, max_length=MAX_PREDICT_ROWS)]
TensorInput = Annotated[
    Annotated[list[Record], Field(min_length=1, max_length=MAX_PREDICT_ROWS), Tag("records")]
    | Annotated[list[Row], Field(min_length=1, max_length=MAX_PREDICT_ROWS), Tag("rows")]
    | Annotated[
        dict[Annotated[str, WithJsonSchema({"type": "string", "enum": FEATURE_NAMES})], Column],
        Field(min_length=1, max_length=len(FEATURE_NAMES)),
        Tag("columns"),
    ],
    Discriminator(_tensor_shape, custom_error_type="rows_shape", custom_error_message="Send " + TENSOR_SHAPES),
]


class InvocationInstances(BaseModel):
    """TensorFlow Serving's row format, as MLflow takes it: `instances`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instances: TensorInput
    params: dict[str, Any] | None = NO_PARAMS


class InvocationInputs(BaseModel):
    """TensorFlow Serving's columnar format, as MLflow takes it: `inputs`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    inputs: TensorInput
    params: dict[str, Any] | None = NO_PARAMS


INVOCATION_KEYS = {
    "dataframe_split": "split",
    "dataframe_records": "records",
    "instances": "instances",
    "inputs": "inputs",
}


def _invocation_shape(value: Any) -> str | None:
    """Tell which of MLflow's input formats an /invocations body uses (by its one data key)."""
    if isinstance(value, dict):
        keys = [INVOCATION_KEYS[key] for key in value if key in INVOCATION_KEYS]
        return keys[0] if len(keys) == 1 else None
    return None


class InvocationRows(RootModel):
    """Rows to predict, in one of the input formats of MLflow's scoring server (`mlflow models serve`)."""

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [{"dataframe_split": {"columns": list(FEATURES), "data": [list(WINE_SAMPLE.values())]}}]
        },
    )

    root: Annotated[
        Annotated[InvocationSplit, Tag("split")]
        | Annotated[InvocationRecords, Tag("records")]
        | Annotated[InvocationInstances, Tag("instances")]
        | Annotated[InvocationInputs, Tag("inputs")],
        Discriminator(
            _invocation_shape,
            custom_error_type="invocation_shape",
            custom_error_message="Send exactly one of dataframe_split, dataframe_records, instances or inputs",
        ),
    ]


# A pushed pipeline may be far larger than a request's usual limit (a forest of deep trees).
MAX_MODEL_BYTES = 64_000_000


class InstallModel(BaseModel):
    """A registered model version's trained pipeline (skops, base64), pushed by the tracking
    service to be served: the champion."""

    model_config = ConfigDict(extra="forbid", strict=True)

    registered_model: Name = Field(examples=["wine"])
    registered_version: str = Field(pattern=r"^[1-9][0-9]{0,17}$", examples=["3"])
    run_id: str | None = Field(None, max_length=64, description="the MLflow run the version was logged in")
    model_name: ModelName
    hyperparameters: dict[Name, HyperparameterValue] = Field(default_factory=dict)
    training_dataset_id: Annotated[Int64, WholeNumber] | None = Field(
        None, description="the training set version it was fitted on"
    )
    training_accuracy: FiniteFloat | None = None
    pipeline: str = Field(min_length=1, description="the fitted pipeline, skops bytes in base64")
    adopts_version: Annotated[Int64, WholeNumber] | None = Field(
        None, description="this service's own trained version that the registered version is (adoption)"
    )


# --- answers ---------------------------------------------------------------------------------------


class Message(BaseModel):
    """The walkthrough's answers: one sentence (e.g. "Score on testing set: 94.44%")."""

    message: str


class ModelView(BaseModel):
    """The deployed model as GET /root/ml shows it; the registry fields are set for a pushed champion."""

    model_name: str
    hyperparameters: dict[str, Any]
    version: int
    set_at: str = Field(description="ISO 8601")
    trained_at: str | None
    training_accuracy: float | None
    registered_model: str | None
    registered_version: str | None
    run_id: str | None
    training_dataset_id: int | None


class MlStatus(BaseModel):
    name: Literal["ml_model"]
    message: str
    model: ModelView | None


class ModelInstalled(Message):
    model: ModelView


class ServedModel(BaseModel):
    """The served model and its trained pipeline, for the tracking service to register."""

    model: ModelView
    format: Literal["skops"]
    pipeline: str = Field(description="the pipeline's skops bytes, base64")


class PredictingModel(BaseModel):
    model_name: str
    version: int
    registered_version: str | None


class Predictions(BaseModel):
    """One predicted class per row; probabilities per class where the model gives them."""

    predictions: list[int]
    probabilities: list[list[float]] | None = Field(None, description="absent for a model without them")
    classes: list[int]
    model: PredictingModel
    degraded: str | None = Field(
        None, description="present when the dataset DB was down: why the loaded model answered"
    )


class InvocationPredictions(BaseModel):
    """MLflow's scoring server's answer."""

    predictions: list[int]
