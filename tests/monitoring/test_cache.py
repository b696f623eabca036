"""The monitoring result cache: bounded, least recently used out, one computation per key at a time."""

from __future__ import annotations

import threading

import pytest

from mlops.monitoring.cache import ResultCache


def test_keeps_at_most_max_entries_dropping_the_least_recently_used():
    cache = ResultCache[str](max_entries=2)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # "a" is now the most recently used
    cache.put("c", "C")
    assert len(cache) == 2
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("A", "C")


def test_get_or_compute_computes_once_and_then_answers_from_the_cache():
    cache = ResultCache[str](max_entries=4)
    calls = []
    assert cache.get_or_compute("k", lambda: calls.append(1) or "value") == ("value", False)
    assert cache.get_or_compute("k", lambda: calls.append(1) or "other") == ("value", True)
    assert calls == [1]


def test_a_failed_computation_is_not_cached():
    cache = ResultCache[str](max_entries=4)

    def fail():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", fail)
    assert cache.get("k") is None
    assert cache.get_or_compute("k", lambda: "value") == ("value", False)


def test_concurrent_requests_for_one_key_share_one_computation_and_other_keys_do_not_wait():
    cache = ResultCache[str](max_entries=4)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append("slow")
        started.set()
        assert release.wait(30)
        return "slow result"

    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", cache.get_or_compute("k", slow)))
    second = threading.Thread(target=lambda: results.setdefault("second", cache.get_or_compute("k", slow)))
    first.start()
    assert started.wait(30)
    second.start()
    # while "k" is being computed, another key is computed and a cached key answered without waiting
    assert cache.get_or_compute("other", lambda: "fast") == ("fast", False)
    assert cache.get_or_compute("other", lambda: "again") == ("fast", True)
    assert second.is_alive() and first.is_alive()
    release.set()
    first.join(30)
    second.join(30)
    assert calls == ["slow"]
    assert results == {"first": ("slow result", False), "second": ("slow result", True)}


def test_keep_only_drops_the_entries_not_wanted():
    cache = ResultCache[str](max_entries=4)
    for key in ("old-report", "old-tests", "new-report"):
        cache.put(key, key.upper())
    cache.keep_only(lambda key: key.startswith("new"))
    assert cache.keys() == ["new-report"]
    assert cache.get("old-report") is None and cache.get("new-report") == "NEW-REPORT"
