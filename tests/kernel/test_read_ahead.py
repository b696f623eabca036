"""read_ahead: the same items in the same order, errors where they happen, and a producer that
stops and is closed when the consumer leaves early."""

from __future__ import annotations

import threading

import pytest

from mlops.kernel.read_ahead import read_ahead


def test_the_items_come_in_order_made_in_another_thread():
    threads = set()

    def items():
        for number in range(50):
            threads.add(threading.current_thread().name)
            yield number

    with read_ahead(items(), depth=2, name="producer") as ahead:
        assert list(ahead) == list(range(50))
    assert threads == {"producer"}


def test_an_error_of_the_items_is_raised_to_the_consumer_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("the third block is broken")

    seen = []
    with pytest.raises(ValueError, match="third block"), read_ahead(items()) as ahead:
        for item in ahead:
            seen.append(item)
    assert seen == [1, 2]


def test_leaving_early_stops_the_producer_and_closes_the_items_in_its_thread():
    made, closed_in = [], []

    def items():
        try:
            for number in range(1_000_000):
                made.append(number)
                yield number
        finally:
            closed_in.append(threading.current_thread().name)

    with pytest.raises(RuntimeError), read_ahead(items(), depth=1, name="producer") as ahead:
        for item in ahead:
            if item == 3:
                raise RuntimeError("the consumer gave up")
    # stopped a few items ahead of the consumer, not at the end; closed before the block ended
    assert len(made) <= 3 + 1 + 2 and closed_in == ["producer"]
    assert not any(t.name == "producer" for t in threading.enumerate())


def test_no_items_end_at_once():
    with read_ahead([]) as ahead:
        assert list(ahead) == []
