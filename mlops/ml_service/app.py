"""The ML service's HTTP API (port 5001)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from mlops.kernel.config import Settings
from mlops.kernel.web import ApiBlueprint, create_service_app, dataset_engine
from mlops.ml_service.deployment import DeployedModel, PipelineCache, read_deployed
from mlops.ml_service.pipeline import columns_frame, evaluate, predict, records_frame, set_model, train
from mlops.ml_service.schemas import PredictRows, RecordRows, SetModel, SplitRows, UseModel

bp = ApiBlueprint("ml", __name__)


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
    """Build the ML service's app."""
    app = create_service_app("ml", "ML model", settings or Settings.from_env(), [bp])
    app.extensions["ml_service"] = PipelineCache()
    return app
