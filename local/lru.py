"""A dict bounded by entry count with least-recently-used eviction, for caches that callers fill (the local API
Gateway's authorizer cache), so a client sending ever new credentials cannot grow the stack's memory."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(OrderedDict, Generic[K, V]):
    """``OrderedDict`` holding at most ``max_entries`` items: ``get`` and ``[]`` mark an entry as recently used, a
    write beyond the bound drops the least recently used one. Not thread-safe (one event loop uses it). Raises
    ``ValueError`` for ``max_entries < 1``."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        super().__init__()
        self.max_entries = max_entries

    def __getitem__(self, key: K) -> V:
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def get(self, key: K, default: V | None = None) -> V | None:
        if key in self:
            return self[key]
        return default

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.max_entries:
            self.popitem(last=False)
