"""read_ahead: the same items in the same order, errors where they happen, and a producer that
stops and is closed when the consumer leaves early. write_behind: every item written in order
before the block ends, the writer's error raised to the caller, and a caller's error that stops it."""

from __future__ import annotations

import threading
import time

import pytest

from mlops.kernel.read_ahead import read_ahead, write_behind


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


def test_write_behind_writes_every_item_in_order_in_its_own_thread_before_the_block_ends():
    written, threads = [], set()

    def write(item):
        threads.add(threading.current_thread().name)
        time.sleep(0.001)  # slower than the caller: the hand-offs wait for room
        written.append(item)

    with write_behind(write, depth=2, name="writer") as hand_over:
        for number in range(30):
            hand_over(number)
    assert written == list(range(30)) and threads == {"writer"}
    assert not any(t.name == "writer" for t in threading.enumerate())


def test_an_error_of_the_writer_is_raised_to_the_caller_and_nothing_after_it_is_written():
    written = []

    def write(item):
        if item == 3:
            raise ValueError("the server refused block 3")
        written.append(item)

    handed = []
    with pytest.raises(ValueError, match="block 3"), write_behind(write, depth=1) as hand_over:
        for number in range(100):
            hand_over(number)
            handed.append(number)
    assert written == [0, 1, 2]
    assert len(handed) < 100  # raised at a hand-off, not only when the block ended


def test_an_error_of_the_last_item_is_raised_when_the_block_ends():
    def write(item):
        raise ValueError(f"refused {item}")

    with pytest.raises(ValueError, match="refused only"), write_behind(write) as hand_over:
        hand_over("only")


def test_a_caller_that_gives_up_drops_what_is_queued_and_waits_for_the_write_in_progress():
    started, finished = threading.Event(), []

    def write(item):
        started.set()
        time.sleep(0.2)
        finished.append(item)

    with pytest.raises(RuntimeError), write_behind(write, depth=5, name="writer") as hand_over:
        for number in range(5):
            hand_over(number)
        started.wait()
        raise RuntimeError("the caller gave up")
    # the item being written when the caller gave up was finished; the queued ones were dropped
    assert finished == [0]
    assert not any(t.name == "writer" for t in threading.enumerate())
