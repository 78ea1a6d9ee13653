"""The in-cluster stack: one module per component group, in bring-up order."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from function import codec, naming
from function.composed import Composed
from function.context import ClusterContext
from function.stack import (
    gpu,
    gpumetrics,
    mesh,
    monitors,
    networking,
    observability,
    policies,
    serving,
    storage,
)

# Bring-up order; the gates on each resource enforce it, this only keeps the
# output readable.
GROUPS = (networking, mesh, policies, storage, gpu, serving, observability, gpumetrics)


class StackMemo:
    """Each cluster's stack by ``ClusterContext.memo_key``, bounded in entries and bytes.

    The stack reads nothing but its context, and an unchanged cluster has the
    same context on every call, so it is built and encoded once: the items come
    back with their bodies' serialised Structs (``Composed.encoded``), which the
    response takes as they are. Callers never change the items or their bodies
    (``readiness.latched`` copies). The budget counts the encoded bytes, about
    what the bodies hold. Thread-safe.
    """

    def __init__(self, entries: int, max_bytes: int) -> None:
        """Keep at most ``entries`` stacks whose encoded bodies hold ``max_bytes`` together."""
        self.entries = entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[Any, ...], tuple[tuple[Composed, ...], int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many stacks are kept."""
        return len(self._items)

    def get(self, key: tuple[Any, ...]) -> tuple[Composed, ...] | None:
        """The stack kept for ``key``, if any."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: tuple[Any, ...], items: tuple[Composed, ...]) -> None:
        """Keep ``items`` unless they alone exceed a quarter of the budget; evict the oldest."""
        cost = sum(len(item.encoded) for item in items)
        if self.entries <= 0 or cost > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (items, cost)
            self.bytes += cost
            while len(self._items) > self.entries or self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped


# The largest claim has 16 clusters, a stack about 200 KB encoded.
STACK_MEMO_ENTRIES = 64
STACK_MEMO_BYTES = 16 << 20
_STACKS = StackMemo(STACK_MEMO_ENTRIES, STACK_MEMO_BYTES)


def build(ctx: ClusterContext) -> list[Composed]:
    """Every in-cluster Release and Object of one cluster (encoded; see ``StackMemo``)."""
    key = ctx.memo_key()
    items = _STACKS.get(key)
    if items is None:
        items = tuple(replace(item, encoded=codec.struct_bytes(item.body)) for item in _build(ctx))
        _STACKS.put(key, items)
    return list(items)


def _build(ctx: ClusterContext) -> list[Composed]:
    out: list[Composed] = []
    for group in GROUPS:
        out.extend(group.build(ctx))
    releases = [
        item.body["metadata"]["annotations"][naming.EXTERNAL_NAME]
        for item in out
        if item.body.get("kind") == "Release"
    ]
    out.extend(monitors.build(ctx, releases))
    return out
