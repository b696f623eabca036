"""Producing the next block of a bulk job while the current one is consumed.

A set of millions of rows goes through three workers that can run at once: the Python code that
makes (or decodes) a block, the Python code that consumes it, and the database server's own
process that stores (or sends) the rows. Done in turn, each waits for the others; with the next
block made in a thread while the current one is written, the two cores both work. numpy and the
database driver release the GIL during their long calls, which is what lets the thread run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
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
