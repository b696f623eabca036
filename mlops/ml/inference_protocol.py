"""The Open Inference Protocol (KServe's V2, as Triton, MLServer and KServe speak it) for the
served model, called `wine`.

One input: an [n, 13] tensor of the features in FEATURES' order (FP64; other numeric datatypes are
converted), or, with the request parameter `content_type: "pd"` (MLServer's pandas codec), one
[n] (or [n, 1]) tensor per feature, named by the feature. Two outputs: `predict` (the classes,
INT64 [n]) and `predict_proba` (FP64 [n, classes], where the model has probabilities). Tensor
data comes as JSON, flat or nested by rows, or as binary (the binary tensor data extension that
tritonclient uses by default: the JSON header's length in `Inference-Header-Content-Length`, the
tensors' little-endian bytes after it). Missing values are null (or NaN, as tritonclient writes them) in JSON and NaN in binary, and
are imputed with the training means as everywhere else.

Errors on these routes have the protocol's shape, `{"error": "<error>: <message>"}`, with our
status codes; the other routes keep `{"error", "message"}`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops.kernel.db import FEATURES
from mlops.kernel.errors import BadRequest, NotFound
from mlops.ml.deployment import DeployedModel
from mlops.ml.fastpath import CompiledPipeline
from mlops.ml.pipeline import Prediction, columns_frame

MODEL_NAME = "wine"
INPUT_NAME = "input-0"
PLATFORM = "sklearn"
PANDAS_CONTENT_TYPE = "pd"
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]
# numpy's little-endian types of the numeric V2 datatypes (the binary extension is little-endian)
NUMERIC_DATATYPES = {
    "FP64": "<f8",
    "FP32": "<f4",
    "FP16": "<f2",
    "INT64": "<i8",
    "INT32": "<i4",
    "INT16": "<i2",
    "INT8": "i1",
    "UINT64": "<u8",
    "UINT32": "<u4",
    "UINT16": "<u2",
    "UINT8": "u1",
}


@dataclass(frozen=True)
class InferBody:
    """An inference request's JSON header and the binary tensor data after it (if any)."""

    header: Any
    binary: bytes = b""


def split_infer_body(raw: bytes, header_length: str | None) -> InferBody:
    """Split a request body into its JSON header and binary tail (400 if the two do not fit)."""
    if header_length is None:
        return InferBody(_json(raw))
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(raw):
        raise BadRequest(
            f"{HEADER_LENGTH} must be the length of the JSON header, between 0 and the body's "
            f"{len(raw)} bytes (got {header_length!r})",
            error="Invalid request",
        )
    return InferBody(_json(raw[:length]), raw[length:])


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"The body is not valid JSON: {error}", error="Malformed JSON") from None
    except RecursionError:
        raise BadRequest("The body's JSON is nested too deeply to be read", error="Malformed JSON") from None


def check_model(model_name: str, version: str | None, served: DeployedModel | None) -> None:
    """A 404 unless the URL names the served model (and, if given, its served version)."""
    if model_name != MODEL_NAME:
        raise NotFound(f"This server serves one model, {MODEL_NAME!r}, not {model_name!r}", error="Unknown model")
    if version is not None and served is not None and version != str(served.version):
        raise NotFound(
            f"Version {version} of {MODEL_NAME!r} is not served; the served version is {served.version}",
            error="Unknown version",
        )


def output_names(compiled: CompiledPipeline) -> list[str]:
    """The outputs this pipeline produces."""
    return ["predict", "predict_proba"] if compiled.has_probabilities else ["predict"]


def model_metadata(model: DeployedModel, compiled: CompiledPipeline) -> dict[str, Any]:
    """The protocol's model metadata of the served model."""
    outputs = [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    if compiled.has_probabilities:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(compiled.classes)]})
    return {
        "name": MODEL_NAME,
        "versions": [str(model.version)],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, len(FEATURES)]}],
        "outputs": outputs,
        "parameters": {
            "model_name": model.model_name,
            "features": ", ".join(FEATURES),
            "classes": ", ".join(str(c) for c in compiled.classes.tolist()),
        },
    }


def request_frame(request, binary: bytes) -> pd.DataFrame:
    """The rows an inference request carries, as a frame of FEATURES (NaN where missing)."""
    content_type = request.parameters.content_type if request.parameters else None
    if content_type == PANDAS_CONTENT_TYPE:
        return _columns_frame(request.inputs, binary)
    if content_type not in (None, "np"):
        raise BadRequest(
            f'parameters.content_type must be "np" (one [n, {len(FEATURES)}] tensor, the default) or '
            f'"{PANDAS_CONTENT_TYPE}" (one tensor per feature), not {content_type!r}',
            error="Invalid request",
        )
    if len(request.inputs) != 1:
        raise BadRequest(
            f"Send one input tensor of shape [n, {len(FEATURES)}] (the features in this order: "
            f'{", ".join(FEATURES)}), or one tensor per feature with parameters.content_type "pd"; '
            f"got {len(request.inputs)} inputs",
            error="Invalid request",
        )
    tensor = request.inputs[0]
    if len(tensor.shape) != 2 or tensor.shape[1] != len(FEATURES):
        raise BadRequest(
            f"input {tensor.name!r}: the shape must be [n, {len(FEATURES)}] (n rows of the features "
            f"{', '.join(FEATURES)}), got {tensor.shape}",
            error="Invalid request",
        )
    values = _tensor_values(tensor, _binary_parts(request.inputs, binary)[0])
    return pd.DataFrame(values.reshape(tensor.shape), columns=list(FEATURES), copy=False)


def _columns_frame(inputs, binary: bytes) -> pd.DataFrame:
    """The pandas content type: one [n] or [n, 1] tensor per feature, named by the feature."""
    columns = []
    for tensor, part in zip(inputs, _binary_parts(inputs, binary), strict=True):
        if not (len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1)):
            raise BadRequest(
                f'input {tensor.name!r}: with content_type "pd" each input is one column, of shape [n] '
                f"or [n, 1]; got {tensor.shape}",
                error="Invalid request",
            )
        columns.append(_tensor_values(tensor, part))
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        raise BadRequest(
            "the columns have different lengths: "
            + ", ".join(f"{t.name} {len(c)}" for t, c in zip(inputs, columns, strict=True)),
            error="Invalid request",
        )
    # columns_frame names every missing, unknown or repeated feature
    return columns_frame([t.name for t in inputs], np.column_stack(columns))


def _binary_parts(inputs, binary: bytes) -> list[bytes | None]:
    """Each input's slice of the binary tail (None for inputs given as JSON data)."""
    parts: list[bytes | None] = []
    offset = 0
    for tensor in inputs:
        size = tensor.parameters.binary_data_size if tensor.parameters else None
        if size is None:
            parts.append(None)
            continue
        parts.append(binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise BadRequest(
            f"the inputs' binary_data_size add up to {offset} bytes but {len(binary)} follow the JSON header",
            error="Invalid request",
        )
    return parts


def _tensor_values(tensor, binary: bytes | None) -> np.ndarray:
    """A tensor's elements as a flat float64 array, checked against its shape and datatype."""
    dtype = NUMERIC_DATATYPES.get(tensor.datatype)
    if dtype is None:
        raise BadRequest(
            f"input {tensor.name!r}: datatype {tensor.datatype} is not numeric; send FP64 "
            f"(or another of {', '.join(NUMERIC_DATATYPES)})",
            error="Invalid request",
        )
    count = math.prod(tensor.shape)
    if binary is not None:
        if tensor.data is not None:
            raise BadRequest(
                f"input {tensor.name!r}: give either data or binary_data_size, not both", error="Invalid request"
            )
        width = np.dtype(dtype).itemsize
        if len(binary) != count * width:
            raise BadRequest(
                f"input {tensor.name!r}: shape {tensor.shape} of {tensor.datatype} takes {count * width} bytes, "
                f"binary_data_size says {len(binary)}",
                error="Invalid request",
            )
        values = np.frombuffer(binary, dtype=dtype).astype(np.float64)
        if np.isinf(values).any():
            raise BadRequest(
                f"input {tensor.name!r}: values must be finite (NaN is a missing value)", error="Invalid values"
            )
        return values
    if tensor.data is None:
        raise BadRequest(f"input {tensor.name!r}: data is required (or binary_data_size)", error="Invalid request")
    # data is flat or nested by rows; the request model admits only numbers and null
    flat = (
        tensor.data
        if not tensor.data or not isinstance(tensor.data[0], list)
        else [x for row in tensor.data for x in row]
    )
    if len(tensor.shape) == 2 and tensor.data and isinstance(tensor.data[0], list):
        if any(len(row) != tensor.shape[1] for row in tensor.data):
            raise BadRequest(
                f"input {tensor.name!r}: every row of data must have {tensor.shape[1]} values, as the shape says",
                error="Invalid request",
            )
    if len(flat) != count:
        raise BadRequest(
            f"input {tensor.name!r}: shape {tensor.shape} has {count} elements but data has {len(flat)}",
            error="Invalid request",
        )
    values = np.array(flat, dtype=np.float64)  # null -> NaN
    if np.isinf(values).any():
        raise BadRequest(
            f"input {tensor.name!r}: values must be finite (null or NaN is a missing value)", error="Invalid values"
        )
    if tensor.datatype.startswith(("INT", "UINT")) and not np.all(np.isnan(values) | (values == np.round(values))):
        raise BadRequest(
            f"input {tensor.name!r}: {tensor.datatype} data must be whole numbers", error="Invalid request"
        )
    return values


def _as_binary(output, everything_binary: bool) -> bool:
    """Whether this requested output is answered as bytes."""
    wanted = output.parameters.binary_data if output.parameters else None
    return everything_binary if wanted is None else wanted


@dataclass(frozen=True)
class InferAnswer:
    """An inference response: its JSON header, and binary tensor data after it if requested."""

    header: dict[str, Any]
    binary: bytes = b""

    def body(self) -> tuple[bytes, dict[str, str]]:
        """The response body and its headers."""
        head = json.dumps(self.header, separators=(",", ":")).encode()
        if not self.binary:
            return head, {"Content-Type": "application/json"}
        return head + self.binary, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


def infer_answer(request, prediction: Prediction, compiled: CompiledPipeline) -> InferAnswer:
    """Shape a prediction as the protocol's inference response, with the outputs requested."""
    available = output_names(compiled)
    everything_binary = request.parameters.binary_data_output if request.parameters else False
    if request.outputs is None:
        wanted = [(name, everything_binary) for name in available]
    else:
        unknown = [o.name for o in request.outputs if o.name not in available]
        if unknown:
            raise BadRequest(
                f"unknown output(s) {', '.join(unknown)}; this model has {', '.join(available)}",
                error="Invalid request",
            )
        wanted = [(o.name, _as_binary(o, everything_binary)) for o in request.outputs]
    n = len(prediction.predicted)
    tensors = {
        "predict": ("INT64", [n], np.asarray(prediction.predicted, dtype=np.int64)),
        "predict_proba": ("FP64", [n, len(prediction.classes)], np.asarray(prediction.probabilities, dtype=np.float64)),
    }
    outputs, binary = [], []
    for name, as_binary in wanted:
        datatype, shape, values = tensors[name]
        output: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
        if as_binary:
            raw = values.astype(NUMERIC_DATATYPES[datatype]).tobytes()
            output["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        else:
            output["data"] = values.ravel().tolist()
        outputs.append(output)
    header: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": str(prediction.model.version)}
    if request.id is not None:
        header["id"] = request.id
    if prediction.degraded is not None:
        # the protocol's response parameters carry what /root/ml/predict says in "degraded"
        header["parameters"] = {"degraded": prediction.degraded}
    header["outputs"] = outputs
    return InferAnswer(header, b"".join(binary))
