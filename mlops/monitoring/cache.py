"""A small bounded cache of computed results that computes each missing key once at a time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass
class ResultCache(Generic[V]):
    """The `max_entries` most recently used results, by key.

    Requests for a key that is being computed wait for that computation instead of starting
    their own; requests for other keys (and cache hits) never wait for it.
    """

    max_entries: int
    _entries: OrderedDict[Hashable, V] = field(default_factory=OrderedDict)
    _computing: dict[Hashable, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Hashable) -> V | None:
        """The cached result for key (now the most recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Keep value under key, dropping the least recently used entries beyond max_entries."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def keep_only(self, wanted: Callable[[Hashable], bool]) -> None:
        """Drop every entry whose key is not wanted."""
        with self._lock:
            for key in [key for key in self._entries if not wanted(key)]:
                del self._entries[key]

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> tuple[V, bool]:
        """The result for key and whether it came from the cache; compute() it (once) when missing."""
        value = self.get(key)
        if value is not None:
            return value, True
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            value = self.get(key)
            if value is not None:
                return value, True
            try:
                value = compute()
                self.put(key, value)
            finally:
                with self._lock:
                    self._computing.pop(key, None)
        return value, False

    def keys(self) -> list[Hashable]:
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
