"""The simulator's request models."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from mlops.kernel.db import FEATURES, SetName
from mlops.kernel.web.parsing import WholeNumber
from mlops.simulator.scenarios import DEFAULT_POOL, DEFAULT_SIZE, N_CLASSES, Faults, Mechanism, MissingValues, Pool
from mlops.simulator.splits import SEED

MAX_PRODUCTION_SIZE = 10_000_000
# A scenario's draw holds a few arrays of size x 13 floats at once: bounded well below the memory of a service.
MAX_SCENARIO_SIZE = 1_000_000
# Bounds that keep every drawn value finite (the largest feature, proline, is ~1,700 with sd ~315).
MAX_SD_UNITS = 1_000.0


def by_feature(low: float) -> dict[str, Any]:
    """What _known_features checks, stated in the schema: known feature names, values from low to
    MAX_SD_UNITS."""
    return {
        "propertyNames": {"enum": list(FEATURES)},
        "additionalProperties": {"type": "number", "minimum": low, "maximum": MAX_SD_UNITS},
    }


class MissingScenario(BaseModel):
    """Values to blank in every feature: a share, completely at random or depending on another feature."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rate: float = Field(ge=0, le=1, allow_inf_nan=False, description="share of each feature's values to blank")
    mechanism: Mechanism = Field(
        "MCAR",
        description="MCAR: every value equally likely; MAR: more likely the higher the next feature's value in the row",
    )


class Scenario(BaseModel):
    """Faults applied to a seeded clean draw of production rows (`{}`: a clean draw)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    shift: dict[str, float] = Field(
        default_factory=dict,
        description="feature -> mean shift in units of the feature's sd in the wine data",
        json_schema_extra=by_feature(-MAX_SD_UNITS),
    )
    scale: dict[str, float] = Field(
        default_factory=dict,
        description="feature -> factor on each value's deviation from the feature's mean (>= 0)",
        json_schema_extra=by_feature(0.0),
    )
    noise_sd: float = Field(
        0.0, ge=0, le=MAX_SD_UNITS, allow_inf_nan=False, description="Gaussian noise on every feature, in sd units"
    )
    missing: MissingScenario | None = None
    class_weights: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        None,
        min_length=N_CLASSES,
        max_length=N_CLASSES,
        description="relative class priors of the draw, classes 0, 1, 2 (at least one > 0)",
        # the schema states the validator's rules too: no weight < 0, not all 0
        json_schema_extra={"contains": {"exclusiveMinimum": 0}},
    )
    fouling: bool = Field(False, description="add the walkthrough's own fouling (noise, shift, ~3 % missing values)")
    rows_from: Pool = Field(
        DEFAULT_POOL,
        description="the real rows clean draws come from: training+production (independent of the testing "
        "reference) or production (independent of a training+testing reference)",
    )

    @field_validator("shift", "scale")
    @classmethod
    def _known_features(cls, value: dict[str, float], info) -> dict[str, float]:
        """Name unknown features, and refuse infinite values and negative factors."""
        unknown = [name for name in value if name not in FEATURES]
        if unknown:
            raise PydanticCustomError(
                "unknown_feature",
                f"unknown features {', '.join(map(repr, unknown))}; the features are {', '.join(FEATURES)}",
            )
        low = 0.0 if info.field_name == "scale" else -MAX_SD_UNITS
        bad = {
            name: number
            for name, number in value.items()
            if not math.isfinite(number) or not low <= number <= MAX_SD_UNITS
        }
        if bad:
            given = ", ".join(f"{name!r} is {number!r}" for name, number in bad.items())
            need = f"a number from {low:g} to {MAX_SD_UNITS:g}"
            raise PydanticCustomError("bad_value", f"each value must be {need} ({given})")
        return value

    @field_validator("class_weights")
    @classmethod
    def _usable_weights(cls, value: list[float] | None) -> list[float] | None:
        """Refuse weights that sum to 0 (each is a finite number >= 0 by its type)."""
        if value is None:
            return value
        if sum(value) <= 0:
            raise PydanticCustomError(
                "bad_weights", f"the weights sum to 0: give at least one class a weight > 0 (got {value})"
            )
        return value

    def faults(self) -> Faults:
        """The validated faults, for the simulator's draw."""
        return Faults(
            shift=dict(self.shift),
            scale=dict(self.scale),
            noise_sd=self.noise_sd,
            missing=None if self.missing is None else MissingValues(self.missing.rate, self.missing.mechanism),
            class_weights=None if self.class_weights is None else tuple(self.class_weights),
            fouling=self.fouling,
            rows_from=self.rows_from,
        )


# What load() checks across fields, stated in the schema too: size, seed and scenario are for the
# production set only, and a scenario draws at most MAX_SCENARIO_SIZE rows.
PRODUCTION_ONLY = {
    "if": {"properties": {"set_name": {"const": "production"}}, "required": ["set_name"]},
    "then": {
        "if": {"properties": {"scenario": {"type": "object"}}, "required": ["scenario"]},
        "then": {
            "properties": {"size": {"anyOf": [{"type": "integer", "maximum": MAX_SCENARIO_SIZE}, {"type": "null"}]}}
        },
    },
    "else": {"properties": {"size": {"type": "null"}, "seed": {"type": "null"}, "scenario": {"type": "null"}}},
}


class LoadSet(BaseModel):
    """Which set to load; production may be resampled to `size` rows, seeded, or drawn with a fault scenario."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=PRODUCTION_ONLY)

    set_name: SetName
    size: Annotated[int, Field(ge=1, le=MAX_PRODUCTION_SIZE), WholeNumber] | None = Field(
        None,
        description=f"production only: resample to this many rows (with `scenario`: draw this many, default {DEFAULT_SIZE})",
    )
    seed: Annotated[int, Field(ge=0, le=2**32 - 1), WholeNumber] | None = Field(
        None, description=f"production only: seed of the draw and the faults (default {SEED})"
    )
    scenario: Scenario | None = Field(
        None,
        description="production only: draw clean rows from the reference's population, then apply these faults "
        "(without it, production is the walkthrough's fouled split)",
    )


# --- answers ---------------------------------------------------------------------------------------


class LoadedSet(BaseModel):
    """One loaded set: its version, size, load time, and the seed and scenario it was drawn with."""

    dataset_id: int
    rows: int
    loaded_at: str = Field(description="ISO 8601")
    seed: int | None
    scenario: dict[str, Any] | None = Field(description="the faults drawn and their ground truth, or null")


class SimulatorStatus(BaseModel):
    """The component, and the sets loaded now."""

    name: Literal["simulator"]
    message: str
    sets: dict[SetName, LoadedSet]


class SetLoaded(BaseModel):
    """The walkthrough's answer to a load: "Load <set_name> set"."""

    message: str = Field(examples=["Load training set"])
