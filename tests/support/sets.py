"""The simulator's sets, loaded straight into a test's dataset database."""

from __future__ import annotations

from mlops.kernel.db import SET_NAMES
from mlops.simulator.splits import load_split
from mlops.simulator.store import replace_set


def load_sets(engine, *names: str, production_size: int | None = None) -> None:
    """Load the named sets (all three when none is named) as POST /root/simulator does."""
    for name in names or SET_NAMES:
        split = load_split(name, production_size if name == "production" else None)
        replace_set(engine, name, split.features, split.target)
