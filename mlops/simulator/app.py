"""The simulator's HTTP API (port 5004)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from mlops.kernel.config import Settings
from mlops.kernel.errors import BadRequest
from mlops.kernel.web.factory import create_service_app
from mlops.kernel.web.operations import Answer, ApiBlueprint
from mlops.kernel.web.state import dataset_engine, service_state
from mlops.simulator.examples import LOAD_SET_EXAMPLES, STATUS_EXAMPLES
from mlops.simulator.metrics import record_load
from mlops.simulator.scenarios import DEFAULT_SIZE, draw_scenario, ground_truth
from mlops.simulator.schemas import MAX_SCENARIO_SIZE, LoadSet, SetLoaded, SimulatorStatus
from mlops.simulator.splits import SEED, load_split, resampled_production
from mlops.simulator.store import loaded_sets, replace_set, replace_set_blocks

bp = ApiBlueprint("simulator", __name__)


@bp.operation(
    "/root/simulator",
    "GET",
    responses={200: Answer("The component and the loaded sets", SimulatorStatus)},
    examples=STATUS_EXAMPLES,
)
def status():
    """Name the component, and list the loaded sets with the seed and scenario each was drawn with (ground truth)."""
    return {"name": "simulator", "message": "Simulator", "sets": loaded_sets(dataset_engine())}


@bp.operation(
    "/root/simulator",
    "POST",
    body=LoadSet,
    responses={200: Answer("Set loaded", SetLoaded), 400: "Unknown set or bad size"},
    examples=LOAD_SET_EXAMPLES,
)
def load(body: LoadSet):
    """Load (or reload, replacing it) the training, testing or production set into the dataset DB."""
    for field in ("size", "seed", "scenario"):
        if getattr(body, field) is not None and body.set_name != "production":
            raise BadRequest(f"`{field}` can only be given for the production set", error="Invalid request")
    seed = SEED if body.seed is None else body.seed
    recorded = seed if body.seed is not None or body.scenario is not None else None
    if body.scenario is None and body.size is not None:
        # made and written a block at a time: memory does not grow with the size
        size = body.size

        def blocks():
            return ((block.features, block.target) for block in resampled_production(size, seed))

        replace_set_blocks(dataset_engine(), body.set_name, size, blocks, seed=recorded)
        record_load(service_state().metrics, body.set_name, size)
        return {"message": f"Load {body.set_name} set"}
    truth: dict[str, Any] | None = None
    if body.scenario is None:
        split = load_split(body.set_name, body.size, seed)
    else:
        size = DEFAULT_SIZE if body.size is None else body.size
        if size > MAX_SCENARIO_SIZE:
            raise BadRequest(
                f"size: a scenario draws at most {MAX_SCENARIO_SIZE:,} rows (got {size:,})", error="Invalid request"
            )
        split = draw_scenario(body.scenario.faults(), size, seed)
        truth = ground_truth(body.scenario.faults(), size)
    replace_set(dataset_engine(), body.set_name, split.features, split.target, seed=recorded, scenario=truth)
    record_load(service_state().metrics, body.set_name, len(split.features))
    return {"message": f"Load {body.set_name} set"}


def create_app(settings: Settings | None = None) -> Flask:
    """Build the simulator's app."""
    return create_service_app("simulator", "Simulator", settings or Settings.from_env(), [bp])
