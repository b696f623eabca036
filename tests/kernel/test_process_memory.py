"""What each service process does about memory: heavy imports frozen out of the collector, and
free memory handed back after long requests."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from types import SimpleNamespace

from mlops.kernel import gunicorn_config


def test_a_first_heavy_import_freezes_what_it_built_and_a_second_call_does_not():
    script = textwrap.dedent(
        """
        import gc, sys
        from mlops.kernel.imports import import_heavy
        assert gc.get_freeze_count() == 0
        import_heavy("json", "sklearn.svm")
        frozen = gc.get_freeze_count()
        assert frozen > 10_000, frozen  # scikit-learn's and scipy's objects
        assert "sklearn.svm" in sys.modules
        import_heavy("sklearn.svm")  # already imported: nothing new to freeze
        assert gc.get_freeze_count() == frozen
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)  # a fresh interpreter: nothing imported yet


def test_memory_is_trimmed_after_a_long_request_only(monkeypatch):
    trims = []
    monkeypatch.setattr(gunicorn_config, "_malloc_trim", lambda: trims.append)
    quick, slow = SimpleNamespace(), SimpleNamespace()
    gunicorn_config.pre_request(None, quick)
    gunicorn_config.post_request(None, quick, {}, None)
    assert trims == []
    gunicorn_config.pre_request(None, slow)
    slow.mlops_started -= gunicorn_config.TRIM_AFTER_SECONDS
    gunicorn_config.post_request(None, slow, {}, None)
    assert trims == [0]
    gunicorn_config.post_request(None, SimpleNamespace(), {}, None)  # no pre_request: nothing to do
    assert trims == [0]


def test_malloc_trim_is_found_on_glibc():
    assert gunicorn_config._malloc_trim() is not None or sys.platform != "linux"
    assert gc.isenabled()  # nothing here turned the collector off
