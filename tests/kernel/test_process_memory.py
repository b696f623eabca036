"""What each service process does about memory: heavy imports frozen out of the collector, and
free memory handed back after long requests."""

from __future__ import annotations

import gc
import os
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


def test_an_arbiter_of_several_workers_imports_the_app_module_before_forking_them(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from types import SimpleNamespace
        from mlops.kernel import gunicorn_config

        def arbiter(workers):
            return SimpleNamespace(cfg=SimpleNamespace(workers=workers), proc_name="test",
                                   app=SimpleNamespace(app_uri="mlops.ml.app:create_app()"))

        gunicorn_config.on_starting(arbiter(1))
        assert "mlops.ml.app" not in sys.modules  # one worker imports it itself
        gunicorn_config.on_starting(arbiter(3))
        assert "mlops.ml.app" in sys.modules and "pandas" in sys.modules
        # prometheus_client was imported after the metrics directory was set: multiprocess mode
        import prometheus_client.values
        assert prometheus_client.values.ValueClass is not prometheus_client.values.MutexValue
        """
    )
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path)
