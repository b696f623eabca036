"""Producing the next block of a bulk job while the current one is consumed, and writing the last
one while the next is made.

A set of millions of rows goes through workers that can run at once: the Python code that makes
(or decodes) a block, the Python code that consumes it, and the database server's own processes
that store (or send) the rows. Done in turn, each waits for the others; with the next block made
in a thread (`read_ahead`) and the last one sent in another (`write_behind`), the two cores both
work. numpy and the database driver release the GIL during their long calls, which is what lets
the threads run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

# How long a producer waits for room in the queue before it looks again whether to stop.
POLL_SECONDS = 0.1


class _Finished:
    """What the producer puts last: the iteration's end, or the exception that ended it."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


@contextmanager
def read_ahead(items: Iterable[T], depth: int = 1, *, name: str = "read-ahead") -> Iterator[Iterator[T]]:
    """Iterate `items` in a thread of its own, at most `depth` items ahead of the consumer.

    Yields an iterator over the same items in the same order; an exception raised by `items`
    is raised to the consumer at that point. Leaving the block early (an exception of the
    consumer's) stops the producer and closes `items` in its own thread before the block ends,
    so whatever `items` reads from (a database cursor) is released before the caller goes on.
    Memory held: `depth` items besides the one in hand and the one being made.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not offer(item):
                    return
            offer(_Finished())
        except BaseException as error:  # handed to the consumer, raised there
            offer(_Finished(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def consume() -> Iterator[T]:
        while True:
            item = handoff.get()
            if isinstance(item, _Finished):
                if item.error is not None:
                    raise item.error
                return
            yield item

    producer = threading.Thread(target=produce, name=name, daemon=True)
    producer.start()
    try:
        yield consume()
    finally:
        stop.set()
        producer.join()


_END = object()  # what write_behind's caller puts last


@contextmanager
def write_behind(
    write: Callable[[T], object], depth: int = 2, *, name: str = "write-behind"
) -> Iterator[Callable[[T], None]]:
    """Yield a function that hands an item over to `write`, called in a thread of its own, in order,
    at most `depth` items behind the caller (the memory held: `depth` items and the one written).

    An exception raised by write is raised to the caller at its next hand-off, or when the block
    ends; nothing handed over after it is written. The block ends once every item handed over is
    written, so whatever write writes to (a COPY) can be finished after it; leaving it on an
    exception of the caller's drops the items not yet written and waits only for the one being
    written.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []

    def run() -> None:
        while (item := handoff.get()) is not _END:
            try:
                write(item)
            except BaseException as error:  # handed to the caller, raised there
                failed.append(error)
                return

    writer = threading.Thread(target=run, name=name, daemon=True)

    def offer(item: object) -> None:
        while writer.is_alive():
            try:
                handoff.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def hand_over(item: T) -> None:
        if failed:
            raise failed[0]
        offer(item)
        if failed:
            raise failed[0]

    writer.start()
    try:
        yield hand_over
    except BaseException:
        while True:  # what is still queued is not written
            try:
                handoff.get_nowait()
            except queue.Empty:
                break
        offer(_END)
        writer.join()
        raise
    offer(_END)
    writer.join()
    if failed:
        raise failed[0]
