"""Examples of requests and answers. Each route declares its own (`bp.operation(..., examples=...)`,
the data kept in its service's examples.py): its OpenAPI document shows them, and so does the API
reference (docs/API.md, written by tools/apidoc.py), checked against the request models, an
error's answer being what the service itself answers.

Also the few facts of the example run that two services' examples show (its ids, the champion
the ML service serves), defined once here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Where an answer is cut short for the docs.
ABRIDGED = "…"


@dataclass(frozen=True)
class Given:
    """A request sent first to bring the services to the state an error example needs."""

    service: str
    method: str
    path: str
    body: Any = None


@dataclass(frozen=True)
class Example:
    """One request to an operation and its answer.

    A success's answer is a real run's (abridged where it says so). An error's answer is left
    out: the docs show what the service answers to the request, on fresh services brought to
    the example's state by the `given` requests (sent in order, after the examples without any).
    """

    title: str
    response: Any = None
    body: Any = None
    query: str = ""
    status: int = 200
    # the path with its parameters filled in, for a path that has some (`{job_id}`)
    path: str = ""
    given: tuple[Given, ...] = ()


# The example run's ids and the champion the ML service serves, as a real run showed them.
RETRAIN_RUN = "015cf55562d04437ae22392bda4aed33"
LR_PARAMS = {"C": 0.1, "solver": "liblinear"}
SERVED_CHAMPION = {
    "model_name": "LogisticRegression",
    "hyperparameters": LR_PARAMS,
    "version": 3,
    "set_at": "2026-12-02T05:59:16+00:00",
    "trained_at": "2026-12-02T05:59:16+00:00",
    "training_accuracy": 0.9859154929577465,
    "registered_model": "wine",
    "registered_version": "2",
    "run_id": RETRAIN_RUN,
    "training_dataset_id": 1,
}
