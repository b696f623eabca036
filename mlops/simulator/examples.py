"""Examples of the simulator service's operations, in the walkthrough's words: the routes declare
them (app.py, examples=), and the OpenAPI document and docs/API.md show them."""

from __future__ import annotations

from mlops.kernel.examples import Example

SCENARIO_TRUTH = {
    "size": 36,
    "rows_from": "training+production",
    "shift": {"alcohol": 1.0, "proline": 1.0},
    "scale": {},
    "noise_sd": 0.0,
    "missing": {"rate": 0.1, "mechanism": "MCAR"},
    "class_weights": None,
    "fouling": False,
    "feature_sd": {"alcohol": 0.8118265380058575, "proline": 314.9074742768491},
    "feature_mean": {},
}

STATUS_EXAMPLES = [
    Example(
        "Status, with the loaded sets and how production was drawn (its ground truth)",
        {
            "name": "simulator",
            "message": "Simulator",
            "sets": {
                "training": {
                    "dataset_id": 1,
                    "rows": 106,
                    "loaded_at": "2026-12-02T05:40:50.612410+00:00",
                    "seed": None,
                    "scenario": None,
                },
                "testing": {
                    "dataset_id": 2,
                    "rows": 36,
                    "loaded_at": "2026-12-02T05:40:50.667868+00:00",
                    "seed": None,
                    "scenario": None,
                },
                "production": {
                    "dataset_id": 4,
                    "rows": 36,
                    "loaded_at": "2026-12-02T05:41:06.415314+00:00",
                    "seed": 7,
                    "scenario": SCENARIO_TRUTH,
                },
            },
        },
    ),
    Example("Status, before any set is loaded", {"name": "simulator", "message": "Simulator", "sets": {}}),
]

LOAD_SET_EXAMPLES = [
    Example("Load the training set", {"message": "Load training set"}, body={"set_name": "training"}),
    Example("Load the fouled production set", {"message": "Load production set"}, body={"set_name": "production"}),
    Example(
        "A seeded production set with known faults: 36 clean rows, two features shifted by 1 sd, 10 % missing",
        {"message": "Load production set"},
        body={
            "set_name": "production",
            "seed": 7,
            "scenario": {"shift": {"alcohol": 1.0, "proline": 1.0}, "missing": {"rate": 0.1}},
        },
    ),
    Example(
        "A clean production set of 360 rows",
        {"message": "Load production set"},
        body={"set_name": "production", "size": 360, "seed": 1, "scenario": {}},
    ),
    Example(
        "A scenario with an unknown feature",
        body={"set_name": "production", "scenario": {"shift": {"alcool": 1.0}}},
        status=400,
    ),
    Example(
        "An unknown set",
        body={"set_name": "validation"},
        status=400,
    ),
]
