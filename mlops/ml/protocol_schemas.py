"""The Open Inference Protocol's (V2) models on the ML service: the inference request it accepts
(POST /v2/models/wine/infer) and the protocol's own answers, for its OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from mlops.kernel.db import FEATURES
from mlops.kernel.walkthrough import WINE_SAMPLE
from mlops.kernel.web.parsing import WholeNumber
from mlops.ml.schemas import FEATURE_NAMES, MAX_PREDICT_ROWS

V2Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
]  # fmt: skip  # the protocol's datatypes in two rows, not fourteen lines
# Flat, or nested by rows; null is a missing value (imputed), and so is NaN, which JSON lacks but
# tritonclient writes for numpy's missing values (rapidjson's NaN literal). Infinities are refused.
TensorValue = Annotated[float, Field(allow_inf_nan=True)] | None
TensorData = list[TensorValue] | list[list[TensorValue]]


class TensorParameters(BaseModel):
    """An input tensor's parameters: the protocol allows any; these two mean something here."""

    model_config = ConfigDict(extra="allow", strict=True)

    content_type: str | None = None
    binary_data_size: Annotated[int, Field(ge=0), WholeNumber] | None = Field(
        None, description="binary tensor data extension: the tensor's bytes follow the JSON header"
    )


class RequestInput(BaseModel):
    """One input tensor."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=256, examples=["input-0"])
    shape: list[Annotated[int, Field(ge=0, le=MAX_PREDICT_ROWS), WholeNumber]] = Field(
        min_length=1, max_length=4, examples=[[1, 13]]
    )
    datatype: V2Datatype = Field(examples=["FP64"])
    parameters: TensorParameters | None = None
    data: TensorData | None = Field(None, max_length=MAX_PREDICT_ROWS * len(FEATURES))


class OutputParameters(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    binary_data: bool | None = Field(None, description="binary tensor data extension: answer this output as bytes")


class RequestOutput(BaseModel):
    """An output wanted in the answer: `predict` or `predict_proba`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=256, examples=["predict_proba"])
    parameters: OutputParameters | None = None


class InferenceParameters(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    content_type: str | None = Field(
        None, description='"pd": one [n] tensor per feature, named by the feature (MLServer\'s pandas codec)'
    )
    binary_data_output: bool = Field(False, description="answer every output as bytes (binary tensor data extension)")


class InferenceRequest(BaseModel):
    """An inference request of the Open Inference Protocol (V2)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [1, len(FEATURES)],
                            "datatype": "FP64",
                            "data": list(WINE_SAMPLE.values()),
                        }
                    ],
                    "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
                }
            ]
        },
    )

    id: str | None = Field(None, max_length=256, description="echoed in the answer")
    parameters: InferenceParameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=4 * len(FEATURE_NAMES))
    outputs: list[RequestOutput] | None = Field(None, max_length=8)
    # the binary tensor data that followed the JSON header (binary tensor data extension)
    _binary: bytes = PrivateAttr(b"")


# --- answers ---------------------------------------------------------------------------------------


class ProtocolError(BaseModel):
    """The protocol's error body: one string."""

    error: str


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool
    degraded: str | None = Field(None, description="why it answers without the database, when it does")


class ModelReady(ServerReady):
    name: str


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class OutputTensor(TensorMetadata):
    data: list[float] | None = Field(None, description="absent when the tensor is sent as binary data")
    parameters: dict[str, Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[OutputTensor]
