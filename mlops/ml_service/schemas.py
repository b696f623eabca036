"""The ML service's request models: what each endpoint accepts, and its OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, FiniteFloat, RootModel, Tag, WithJsonSchema

from mlops.kernel.catalogue import MODEL_NAMES, HyperparameterScalar
from mlops.kernel.db import FEATURE_COLUMNS, FEATURES, SetName
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL, WINE_SAMPLE

MAX_PREDICT_ROWS = 100_000

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
