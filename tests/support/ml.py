"""Helpers of the ML service's tests: the sets loaded, requests sent, what the service stored."""

from __future__ import annotations

from sqlalchemy import select

from mlops.kernel.db import deployed_model, predictions
from mlops.kernel.walkthrough import RANDOM_FOREST_MODEL

WALKTHROUGH_FOREST = RANDOM_FOREST_MODEL["hyperparameters"]


def set_model(client, model_name="RandomForest", hyperparameters=None):
    """POST /root/ml/set_model and return the response."""
    hyperparameters = WALKTHROUGH_FOREST if hyperparameters is None else hyperparameters
    return client.post("/root/ml/set_model", json={"model_name": model_name, "hyperparameters": hyperparameters})


def use(client, dataset):
    """POST /root/ml {"dataset": dataset} and return the response."""
    return client.post("/root/ml", json={"dataset": dataset})


def stored_state(engine) -> dict[str, list]:
    """Everything the ML service writes: the deployed model row and all predictions."""
    with engine.connect() as connection:
        return {
            "deployed_model": [
                tuple(r) for r in connection.execute(select(deployed_model).order_by(deployed_model.c.id))
            ],
            "predictions": [
                tuple(r)
                for r in connection.execute(
                    select(predictions).order_by(predictions.c.dataset_id, predictions.c.sample_index)
                )
            ],
        }
