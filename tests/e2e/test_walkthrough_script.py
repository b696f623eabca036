"""scripts/walkthrough.sh, the walkthrough with curl, against a live stack on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "walkthrough.sh"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_script(urls: dict[str, str], **environment: str) -> subprocess.CompletedProcess:
    base_urls = {f"{service.upper()}_URL": url for service, url in urls.items()}
    return subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **base_urls, **environment},
    )


def test_walkthrough_script_passes_every_step(live_stack):
    result = run_script(live_stack.urls)
    assert result.returncode == 0, f"{result.stdout[-20000:]}\n{result.stderr}\n{live_stack.logs()}"
    assert "The walkthrough passed: 34 requests" in result.stdout
    assert "<== 201" in result.stdout  # the optimization's answer is printed


def test_walkthrough_script_stops_at_the_first_answer_that_is_not_2xx(live_stack):
    # TRACKING_URL mistakenly points at the monitoring service: its /health answers, but the
    # optimization (step 8) finds no such resource there.
    urls = {**live_stack.urls, "tracking": live_stack.urls["monitoring"]}
    result = run_script(urls)
    assert result.returncode == 1
    assert "[08] Optimization" in result.stdout
    assert "[09]" not in result.stdout
    assert "FAILED at step 8: expected a 2xx answer, got 404" in result.stderr


def test_walkthrough_script_says_which_service_it_cannot_reach(live_stack):
    from tests.support.processes import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    result = run_script({**live_stack.urls, "simulator": nowhere})
    assert result.returncode == 1
    assert f"FAILED at step 1: could not reach {nowhere}/health" in result.stderr
