"""The simulator's HTTP API (port 5004)."""

from __future__ import annotations

from flask import Flask

from mlops.kernel.config import Settings
from mlops.kernel.errors import BadRequest
from mlops.kernel.web import ApiBlueprint, create_service_app, dataset_engine
from mlops.simulator.schemas import LoadSet
from mlops.simulator.splits import load_split
from mlops.simulator.store import replace_set

bp = ApiBlueprint("simulator", __name__)


@bp.operation("/root/simulator", "GET")
def status():
    """Name the component."""
    return {"name": "simulator", "message": "Simulator"}


@bp.operation("/root/simulator", "POST", body=LoadSet, responses={200: "Set loaded", 400: "Unknown set or bad size"})
def load(body: LoadSet):
    """Load (or reload, replacing it) the training, testing or production set into the dataset DB."""
    if body.size is not None and body.set_name != "production":
        raise BadRequest("`size` can only be given for the production set", error="Invalid request")
    split = load_split(body.set_name, body.size)
    replace_set(dataset_engine(), body.set_name, split.features, split.target)
    return {"message": f"Load {body.set_name} set"}


def create_app(settings: Settings | None = None) -> Flask:
    """Build the simulator's app."""
    return create_service_app("simulator", "Simulator", settings or Settings.from_env(), [bp])
