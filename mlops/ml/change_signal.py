"""A cheap way for the processes of one host to tell each other that the deployed model changed.

Every process that serves from the same dataset database maps the same 8-byte file, kept beside
the service's data. Whoever changes the deployed_model row writes new random bytes there after
its commit; a process compares the bytes with those it saw when it last read the row, and reads
the row again only when they differ (or when its last read is older than VERSION_CHECK_SECONDS,
pipeline_cache.py). Reading the bytes is a memory read, not a query and not a system call.

Random bytes rather than a counter: two processes changing the model at once cannot write the
same value that a reader already saw, and no lock is needed. A read that sees half-written bytes
sees a change that is not there yet, and only reads the row once too often.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SIZE = 8


@dataclass
class ChangeSignal:
    """The shared bytes of one dataset database on this host. Without the file (`mapped` None),
    the bytes live in this process only: its own changes are still seen at once, other
    processes' only through the periodic check."""

    mapped: mmap.mmap | None = None
    local: bytes = b""

    @classmethod
    def beside(cls, data_dir: Path, database_url: str) -> ChangeSignal:
        """The signal of this database, in a file under data_dir named by a digest of its URL."""
        digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
        path = data_dir / f"deployed-model-{digest}.signal"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                if os.fstat(descriptor).st_size < SIZE:
                    os.ftruncate(descriptor, SIZE)
                mapped = mmap.mmap(descriptor, SIZE)
            finally:
                os.close(descriptor)
        except (OSError, ValueError) as error:
            log.warning(
                "no shared change signal at %s (%s): each worker reads the deployed model at least every "
                "few tenths of a second instead",
                path,
                error,
            )
            return cls()
        return cls(mapped)

    def read(self) -> bytes:
        """The current bytes."""
        return self.mapped[:SIZE] if self.mapped is not None else self.local

    def announce(self) -> None:
        """Tell every process that the deployed model changed (call after the change is committed)."""
        if self.mapped is not None:
            self.mapped[:SIZE] = os.urandom(SIZE)
        else:
            self.local = os.urandom(SIZE)
