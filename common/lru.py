"""A thread-safe LRU cache bounded in bytes, for decoded radiographs and what is made from them.

Pure Python: the web (the viewer's pixels), the scoring and the training input pipeline share it.
One load per key runs at a time, so both hips of a film asking at once decode it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


def default_size(value: Any) -> int:
    """The bytes a value holds: ``nbytes`` of an array, ``len`` of bytes."""
    size = getattr(value, "nbytes", None)
    return int(size) if size is not None else len(value)


class ByteBoundedLRU:
    """Thread-safe LRU of values, bounded in the total of ``size(value)`` bytes. A value larger
    than the bound (or of size 0: nothing to gain, e.g. an array over a memory-mapped file) is
    returned but not kept. ``loads`` counts the loads."""

    def __init__(self, max_bytes: int, *, size: Callable[[Any], int] = default_size) -> None:
        self.max_bytes = int(max_bytes)
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.loads = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The value of ``key``, from the cache or from ``load()``."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            value = load()
            size = self._size(value)
            with self._lock:
                self.loads += 1
                if 0 < size <= self.max_bytes:
                    self._items[key] = value
                    self._bytes += size
                    while self._bytes > self.max_bytes:
                        _, old = self._items.popitem(last=False)
                        self._bytes -= self._size(old)
                self._key_locks.pop(key, None)
        return value
