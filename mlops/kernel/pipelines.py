"""The served model's shape, shared by the ML service (which trains and serves it) and tracking
(which retrains, registers and evaluates it): a mean imputer and a standard scaler in front of a
catalogue estimator, stored as skops bytes that load only the catalogue's trusted types.

scikit-learn and skops are imported inside the functions, so importing this costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mlops.kernel.catalogue import TRUSTED_TYPES, build_estimator

log = logging.getLogger(__name__)


class PipelineRefused(Exception):
    """Stored pipeline bytes that cannot be read, or that hold something else than a catalogue pipeline."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def make_pipeline(model_name: str, hyperparameters: Mapping[str, Any]):
    """An unfitted imputer -> scaler -> estimator pipeline (400 on an unknown model or hyperparameter)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="mean")),
            ("scale", StandardScaler()),
            ("model", build_estimator(model_name, dict(hyperparameters))),
        ]
    )


def dump_pipeline(pipeline: Any) -> bytes:
    """Serialize a fitted pipeline with skops (no pickle)."""
    import skops.io

    return skops.io.dumps(pipeline)


def load_pipeline(pipeline_bytes: bytes) -> Any:
    """Load a pipeline stored by dump_pipeline; PipelineRefused for bytes that are not one of ours."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=pipeline_bytes)
    except Exception:  # skops raises whatever its zip/JSON readers raise on damaged bytes
        log.exception("the stored pipeline cannot be read")
        raise PipelineRefused("The stored model cannot be read") from None
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        log.error("refusing to load the stored pipeline: it contains untrusted types %s", unexpected)
        raise PipelineRefused(f"The stored model contains types this service does not trust ({', '.join(unexpected)})")
    pipeline = skops.io.loads(pipeline_bytes, trusted=list(TRUSTED_TYPES))
    # skops also loads every scikit-learn type it deems safe; serve only pipelines made of ours.
    steps = [type(step) for _, step in getattr(pipeline, "steps", [])]
    foreign = [name for name in map(_type_name, steps) if name not in TRUSTED_TYPES]
    if _type_name(type(pipeline)) != "sklearn.pipeline.Pipeline" or not steps or foreign:
        log.error("refusing the stored pipeline: %s with steps %s", type(pipeline), steps)
        raise PipelineRefused(f"The stored model is not a pipeline of the catalogue's types ({', '.join(foreign)})")
    return pipeline


def _type_name(cls: type) -> str:
    """Name a type as skops and TRUSTED_TYPES do (module.qualname)."""
    return f"{cls.__module__}.{cls.__qualname__}"
