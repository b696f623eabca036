"""The databases the tests run on."""

from __future__ import annotations

import os

# The database the tests connect to in order to create (and drop) their own throw-away databases.
POSTGRES_ADMIN_URL = os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")
