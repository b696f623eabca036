"""The simulator's request models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mlops.kernel.db import SetName

MAX_PRODUCTION_SIZE = 10_000_000


class LoadSet(BaseModel):
    """Which set to load; production may be resampled to `size` rows for scale tests."""

    model_config = ConfigDict(extra="forbid", strict=True)

    set_name: SetName
    size: int | None = Field(
        None, ge=1, le=MAX_PRODUCTION_SIZE, description="production only: resample to this many rows"
    )
