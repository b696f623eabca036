"""The last pipeline the ML service served, kept in a file next to its data, so that a worker
(re)started while the dataset DB is down still has a model to answer with (degraded).

A worker writes the file when it loads, trains or installs a pipeline, unless the file already
holds that one; it reads it only when the database does not answer and it has no pipeline of
its own. The file is one JSON header line, then the pipeline's bytes as the database stores
them (skops, loaded through the same trusted types). The header carries the format version, the
deployed model's spec (its version and training time identify the pipeline), the SHA-256 and
length of the bytes, and a digest of the dataset DB's URL: a file that is truncated, altered,
of another format or from another database is not used. It is written to a temporary file and
renamed over the old one, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlops.ml.deployment import DeployedModel

log = logging.getLogger(__name__)

FORMAT = 1
FILE_NAME = "ml-served-pipeline.bin"
DATETIME_FIELDS = ("set_at", "trained_at")


def database_digest(url: str) -> str:
    """Name a dataset DB without writing its URL (and password) into the file."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class KeptPipeline:
    """Where the served pipeline is kept, and which dataset DB it must come from."""

    path: Path
    database: str

    @classmethod
    def under(cls, data_dir: Path, dataset_db_url: str) -> KeptPipeline:
        return cls(data_dir / FILE_NAME, database_digest(dataset_db_url))

    def keep(self, model: DeployedModel, pipeline_bytes: bytes) -> None:
        """Keep this model's pipeline, unless the file holds it already; a failure is logged, not raised
        (the answer that loaded the model must not fail for its copy)."""
        if self._holds(model):
            return
        header = {
            "format": FORMAT,
            "database": self.database,
            "model": _fields(model),
            "sha256": hashlib.sha256(pipeline_bytes).hexdigest(),
            "size": len(pipeline_bytes),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(descriptor, "wb") as out:
                    out.write(json.dumps(header).encode() + b"\n")
                    out.write(pipeline_bytes)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            log.warning("could not keep the served pipeline in %s: %s", self.path, error)
            return
        log.info("kept the %s pipeline, version %s, in %s", model.model_name, model.version, self.path)

    def read(self) -> tuple[DeployedModel, bytes] | None:
        """The kept model and its pipeline's bytes, or None (with the reason logged) if there is no
        usable file: missing, unreadable, corrupted, of another format or from another database."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("could not read the kept pipeline %s: %s", self.path, error)
            return None
        head, _, pipeline_bytes = raw.partition(b"\n")
        try:
            header = json.loads(head)
            problem = self._problem(header, pipeline_bytes)
            model = _model(header["model"]) if problem is None else None
        except (ValueError, KeyError, TypeError) as error:
            problem, model = f"unreadable header ({error})", None
        if problem is not None or model is None:
            log.warning("not using the kept pipeline %s: %s", self.path, problem)
            return None
        return model, pipeline_bytes

    def _problem(self, header: dict[str, Any], pipeline_bytes: bytes) -> str | None:
        """Why this file cannot be used, or None."""
        if header.get("format") != FORMAT:
            return f"format {header.get('format')!r}, not {FORMAT}"
        if header.get("database") != self.database:
            return "kept for another dataset database"
        if (
            header.get("size") != len(pipeline_bytes)
            or header.get("sha256") != hashlib.sha256(pipeline_bytes).hexdigest()
        ):
            return "its pipeline's bytes do not match their checksum (truncated or altered)"
        return None

    def _holds(self, model: DeployedModel) -> bool:
        """Whether the file there keeps this model for this database (its header says so)."""
        try:
            with self.path.open("rb") as kept:
                header = json.loads(kept.readline())
            return (
                header["format"] == FORMAT and header["database"] == self.database and _model(header["model"]) == model
            )
        except (OSError, ValueError, KeyError, TypeError):
            return False


def _fields(model: DeployedModel) -> dict[str, Any]:
    fields = asdict(model)
    for name in DATETIME_FIELDS:
        if fields[name] is not None:
            fields[name] = fields[name].isoformat()
    return fields


def _model(fields: dict[str, Any]) -> DeployedModel:
    values = dict(fields)
    for name in DATETIME_FIELDS:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    return DeployedModel(**values)
