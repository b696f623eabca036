"""Fixtures of the reliability suites: the figures each suite records (printed at the end of the
run; docs/reliability.md keeps them) and a throwaway PostgreSQL cluster. The library they use is
in tests/support (reliability, stack, clients, postgres)."""

from __future__ import annotations

import json
import os
import pwd
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import ThrowawayPostgres, postgres_bin_dir
from tests.support.processes import free_port
from tests.support.reliability import LONG

FIGURES_KEY = pytest.StashKey[list]()


# --- figures -------------------------------------------------------------------------------------


def pytest_configure(config):
    config.stash[FIGURES_KEY] = []


@pytest.fixture
def record_figures(request):
    """Record a suite's figures (requests sent, failures, recoveries, time to recover, ...)."""

    def record(suite: str, **figures) -> None:
        entry = {"suite": suite, "test": request.node.nodeid, "form": "long" if LONG else "short", **figures}
        request.config.stash[FIGURES_KEY].append(entry)
        path = os.environ.get("MLOPS_RELIABILITY_FIGURES")
        if path:  # one JSON line per suite, for docs/reliability.md
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")

    return record


def pytest_terminal_summary(terminalreporter, config):
    figures = config.stash.get(FIGURES_KEY, [])
    if not figures:
        return
    terminalreporter.section("reliability figures")
    for entry in figures:
        rest = {k: v for k, v in entry.items() if k not in ("suite", "test")}
        terminalreporter.write_line(f"{entry['suite']}: {json.dumps(rest)}")


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A running PostgreSQL cluster that this test may stop and start (never the shared server)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    run_as = None
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        run_as = "postgres"
    root.chmod(0o700)
    cluster = ThrowawayPostgres(bin_dir, root, free_port(), run_as)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
