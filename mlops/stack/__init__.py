"""The local stack behind `mlops up | down | status`: every service a gunicorn process leading its
own process group, started together, watched by a supervisor that restarts what dies, and
stopped as one.

plan (what to start) · ports · processes (start, probe, stop) · state (the state file) ·
signals (stop requests without locks) · supervisor (start, wait, restart) · logs · commands.

Besides the kernel's settings, only the standard library is imported here, so the `mlops`
command stays quick to start.
"""

from mlops.stack.errors import StackError
from mlops.stack.plan import DEFAULT_MLFLOW_UI_PORT, MLFLOW_UI, client_url
from mlops.stack.processes import health

__all__ = ["DEFAULT_MLFLOW_UI_PORT", "MLFLOW_UI", "StackError", "client_url", "health"]
