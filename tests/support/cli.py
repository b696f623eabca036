"""The `mlops` command as tests run it, and a stack it started."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops.kernel.config import ENVIRONMENT_VARIABLES

MLOPS = [sys.executable, "-m", "mlops.cli"]


@dataclass(frozen=True)
class LiveStack:
    """Four services running as `mlops up --detach` started them."""

    backend: str
    data_dir: Path
    urls: dict[str, str]

    def logs(self, tail: int = 3000) -> str:
        """The end of each service's log, to explain a failure."""
        parts = []
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            parts.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)


def clean_environment() -> dict[str, str]:
    """This process's environment without any setting the services read: only the flags count."""
    return {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES.values()}
