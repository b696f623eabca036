"""What the ML service counts for Prometheus (GET /metrics; docs/metrics.md), under MLServer's
names and labels where it has them (model_infer_request_*, labelled by model and version), so a
dashboard made for a serving peer reads ours too.

An inference request is one of the predict routes (POST /root/ml/predict, /invocations, the
Open Inference Protocol's infer) past the validation of its body, as MLServer counts the
requests that reach its model: a success is answered with predictions, a failure raised (bad
values, no trained model, the database down with no model loaded). The version is the one that
answered, or, for a failure, the one this worker has loaded ("None" if none).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mlops.kernel.metrics import Metric, ServiceMetrics
from mlops.ml.deployment import DeployedModel
from mlops.ml.inference_protocol import MODEL_NAME
from mlops.ml.pipeline import Prediction
from mlops.ml.pipeline_cache import PipelineCache

MODEL_LABELS = ("model", "version")
INFER_SUCCESS = Metric(
    "counter", "model_infer_request_success", "Inference requests answered, by model and version", MODEL_LABELS
)
INFER_FAILURE = Metric(
    "counter", "model_infer_request_failure", "Inference requests that failed, by model and version", MODEL_LABELS
)
INFER_DURATION = Metric(
    "summary",
    "model_infer_request_duration",
    "Seconds to answer an inference request (rows read, predicted and shaped), by model and version",
    MODEL_LABELS,
)
INFER_DEGRADED = Metric(
    "counter",
    "model_infer_request_degraded",
    "Inference requests answered degraded (the dataset DB down: the loaded model answered), by model and version",
    MODEL_LABELS,
)
PREDICTED_ROWS = Metric(
    "counter",
    "model_predicted_rows",
    "Rows predicted, by model, version and source: online (the predict routes) or the set trained or evaluated",
    (*MODEL_LABELS, "source"),
)
MODEL_LOADED = Metric(
    "gauge",
    "model_loaded",
    "Workers that have this model version loaded to predict with (each worker 1 or 0, summed over the live ones)",
    MODEL_LABELS,
    gauge_mode="livesum",
)
ONLINE = "online"


def version_label(model: DeployedModel | None) -> str:
    """The version label of a model: its deployed version, "None" without one (as MLServer writes it)."""
    return "None" if model is None else str(model.version)


@dataclass
class Inference:
    """One inference request being counted: the route hands it the prediction it answers with."""

    prediction: Prediction | None = None

    def answered(self, prediction: Prediction) -> Prediction:
        self.prediction = prediction
        return prediction


@contextmanager
def counted_inference(metrics: ServiceMetrics, cache: PipelineCache) -> Iterator[Inference]:
    """Count and time the inference request in the block (a failure under the version `cache` holds)."""
    inference = Inference()
    started = time.perf_counter()
    try:
        yield inference
    except Exception:
        labels = (MODEL_NAME, version_label(cache.model))
        metrics.get(INFER_FAILURE).labels(*labels).inc()
        metrics.get(INFER_DURATION).labels(*labels).observe(time.perf_counter() - started)
        raise
    prediction = inference.prediction
    labels = (MODEL_NAME, version_label(prediction.model if prediction is not None else cache.model))
    metrics.get(INFER_SUCCESS).labels(*labels).inc()
    metrics.get(INFER_DURATION).labels(*labels).observe(time.perf_counter() - started)
    if prediction is not None:
        metrics.get(PREDICTED_ROWS).labels(*labels, ONLINE).inc(len(prediction.predicted))
        if prediction.degraded is not None:
            metrics.get(INFER_DEGRADED).labels(*labels).inc()


def record_set_predicted(metrics: ServiceMetrics, model: DeployedModel, set_name: str, rows: int) -> None:
    """Count the rows of a set the model predicted (and stored) when trained or evaluated."""
    metrics.get(PREDICTED_ROWS).labels(MODEL_NAME, version_label(model), set_name).inc(rows)


def loaded_model_gauge(metrics: ServiceMetrics) -> Callable[[DeployedModel | None, DeployedModel], None]:
    """What PipelineCache tells when this worker starts serving a pipeline: model_loaded moves to its version."""
    gauge = metrics.get(MODEL_LOADED)

    def loaded(previous: DeployedModel | None, current: DeployedModel) -> None:
        if previous is not None and previous.version != current.version:
            gauge.labels(MODEL_NAME, version_label(previous)).set(0)
        gauge.labels(MODEL_NAME, version_label(current)).set(1)

    return loaded
