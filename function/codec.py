"""Protobuf Struct <-> plain Python, fast enough for the steady-state reconcile.

The SDK's helpers go through ``json_format``, which walks every value in
Python; a large platform's observed state is hundreds of resources. Here:

- ``observed_summary`` reads only what the plan uses from an observed resource
  (kind, name, conditions, ``status.atProvider``), not the whole body, and only
  in the shape the plan expects: a field of the wrong type reads as absent, so
  a malformed observed resource is simply not ready;
- ``struct_bytes`` turns a body into the serialised Struct once per distinct
  body (LRU bounded in entries and bytes), so re-emitting an unchanged resource
  costs one C parse.

Numbers: a Struct holds only doubles. Whole numbers read as ``int``; ``-0.0``
stays a float so it passes through unchanged; NaN and infinities, which JSON
and Kubernetes cannot carry, are refused with ``NonFiniteError`` naming the
field path.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from google.protobuf import struct_pb2 as structpb

from function.errors import format_path

V = TypeVar("V")
STRUCT_CACHE_ENTRIES = 8192
STRUCT_CACHE_BYTES = 32 << 20


class NonFiniteError(ValueError):
    """A NaN or infinite number somewhere in a Struct; ``loc`` says where."""

    def __init__(self, loc: tuple[str | int, ...] = ()) -> None:
        """Keep the location (keys and list indexes from the Struct's root)."""
        super().__init__("numbers must be finite (NaN and infinities are not JSON)")
        self.loc = loc

    def path(self, root: str) -> str:
        """The field path under ``root``, e.g. ``spec.clusters[0].gpuNodePool.minNodes``."""
        return format_path(self.loc, root)


def _number(n: float) -> float | int:
    if not math.isfinite(n):
        raise NonFiniteError
    if n.is_integer() and not (n == 0 and math.copysign(1.0, n) < 0):
        return int(n)
    return n


def value(v: structpb.Value) -> Any:  # JSON
    """A Struct Value as plain Python; NonFiniteError for NaN or infinities."""
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return to_dict(v.struct_value)
    if kind == "list_value":
        items = []
        for i, x in enumerate(v.list_value.values):
            try:
                items.append(value(x))
            except NonFiniteError as exc:
                raise NonFiniteError((i, *exc.loc)) from None
        return items
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        return _number(v.number_value)
    if kind == "bool_value":
        return v.bool_value
    return None


def to_dict(s: structpb.Struct) -> dict[str, Any]:
    """A whole Struct as plain Python (whole numbers as ints); NonFiniteError names a path."""
    out = {}
    for k, x in s.fields.items():
        try:
            out[k] = value(x)
        except NonFiniteError as exc:
            raise NonFiniteError((k, *exc.loc)) from None
    return out


def _field(s: structpb.Struct, name: str, kind: str) -> structpb.Value | None:
    """``s[name]`` when present and of ``kind``; reading never adds the key."""
    if name not in s.fields:
        return None
    v = s.fields[name]
    return v if v.WhichOneof("kind") == kind else None


def _sub(s: structpb.Struct, name: str) -> structpb.Struct | None:
    v = _field(s, name, "struct_value")
    return v.struct_value if v is not None else None


def string_at(s: structpb.Struct, *path: str) -> str | None:
    """The string at ``path`` under ``s``, or None when absent or not a string."""
    node: structpb.Struct | None = s
    for name in path[:-1]:
        node = _sub(node, name) if node is not None else None
    if node is None:
        return None
    v = _field(node, path[-1], "string_value")
    return v.string_value if v is not None else None


def _conditions(status: structpb.Struct) -> list[dict[str, str]]:
    v = _field(status, "conditions", "list_value")
    out: list[dict[str, str]] = []
    for item in v.list_value.values if v is not None else ():
        if item.WhichOneof("kind") != "struct_value":
            continue
        cond = {
            name: item.struct_value.fields[name].string_value
            for name in ("type", "status", "reason")
            if _field(item.struct_value, name, "string_value") is not None
        }
        if "type" in cond:
            out.append(cond)
    return out


def _scalars(s: structpb.Struct, *, nested: bool = False) -> dict[str, Any]:
    """The string, number and bool fields of ``s`` (what status reads from atProvider).

    With ``nested``, also the scalar fields of each object field, one level down
    (e.g. a GKE cluster's ``workloadIdentityConfig.workloadPool``); lists are skipped.
    """
    out: dict[str, Any] = {}
    for k, v in s.fields.items():
        kind = v.WhichOneof("kind")
        if kind == "string_value":
            out[k] = v.string_value
        elif kind == "bool_value":
            out[k] = v.bool_value
        elif kind == "number_value" and math.isfinite(v.number_value):
            out[k] = _number(v.number_value)
        elif kind == "struct_value" and nested:
            out[k] = _scalars(v.struct_value)
    return out


class ObservedResource(dict[str, Any]):
    """An observed composed resource: the summary the plan reads, and the whole body.

    The dict is the summary (``observed_summary``). ``carried`` reads any other
    value the resource holds (a field of its spec, a provider-kubernetes
    Object's live manifest) from the request's own Struct, decoded only when
    asked for.
    """

    __slots__ = ("_struct",)

    def __init__(self, summary: Mapping[str, Any], struct: structpb.Struct) -> None:
        """Wrap ``summary`` and keep the Struct it was read from."""
        super().__init__(summary)
        self._struct = struct

    def carried(self, path: tuple[str, ...]) -> Any:  # JSON
        """The value at ``path`` in the observed body (None when absent or not finite)."""
        node: structpb.Struct | None = self._struct
        for name in path[:-1]:
            node = _sub(node, name) if node is not None else None
        if node is None or path[-1] not in node.fields:
            return None
        try:
            return value(node.fields[path[-1]])
        except NonFiniteError:
            return None


class MemoLRU(Generic[V]):
    """Values by a bytes key (what they were computed from), bounded in entries and key bytes.

    Least recently used out first. The budget counts each key's bytes, which
    bound the value computed from them. Thread-safe.
    """

    def __init__(self, entries: int, max_bytes: int) -> None:
        """Keep at most ``entries`` values whose keys hold ``max_bytes`` together."""
        self.entries = entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[bytes, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many values are kept."""
        return len(self._items)

    def get(self, key: bytes) -> V | None:
        """The value kept for ``key``, if any."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: bytes, value: V) -> None:
        """Keep ``value`` unless its key alone exceeds a quarter of the budget."""
        if self.entries <= 0 or len(key) > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.bytes += len(key)
            while len(self._items) > self.entries or self.bytes > self.max_bytes:
                dropped, _ = self._items.popitem(last=False)
                self.bytes -= len(dropped)


# Decoded summaries by the observed resource's serialised bytes: between two
# calls most observed resources are unchanged (only those whose status moved differ).
SUMMARY_CACHE_ENTRIES = 8192
SUMMARY_CACHE_BYTES = 32 << 20
_SUMMARIES: MemoLRU[dict[str, Any]] = MemoLRU(SUMMARY_CACHE_ENTRIES, SUMMARY_CACHE_BYTES)


def observed_resource(s: structpb.Struct) -> ObservedResource:
    """The one decoder of an observed composed resource (see ``ObservedResource``).

    The summary of a resource seen before, byte for byte, comes from a bounded
    memo (``MemoLRU``): the plan reads summaries and never changes them.
    """
    key = s.SerializeToString(deterministic=True)
    summary = _SUMMARIES.get(key)
    if summary is None:
        summary = observed_summary(s)
        _SUMMARIES.put(key, summary)
    return ObservedResource(summary, s)


def observed_summary(s: structpb.Struct) -> dict[str, Any]:
    """The parts of an observed composed resource the plan reads, in the expected shape.

    Anything of the wrong type (a string ``status``, a number for
    ``conditions``, a list for ``atProvider``) reads as absent, so the resource
    counts as not ready rather than failing the whole XR.
    """
    out: dict[str, Any] = {}
    for field in ("apiVersion", "kind"):
        text = string_at(s, field)
        if text is not None:
            out[field] = text
    name = string_at(s, "metadata", "name")
    if name is not None:
        out["metadata"] = {"name": name}
    status = _sub(s, "status")
    if status is not None:
        out["status"] = {"conditions": _conditions(status)}
        at_provider = _sub(status, "atProvider")
        if at_provider is not None:
            out["status"]["atProvider"] = _scalars(at_provider, nested=True)
    return out


def _cost(key: Any, data: bytes) -> int:  # a hashable key
    return len(data) + (len(key) if isinstance(key, str | bytes) else 0)


class BytesLRU:
    """Bytes by key, least recently used out first, bounded in entries and in bytes.

    Thread-safe. An item larger than ``max_item`` is not kept.
    """

    def __init__(self, entries: int, max_bytes: int, max_item: int | None = None) -> None:
        """Keep at most ``entries`` items holding at most ``max_bytes`` together."""
        self.entries = entries
        self.max_bytes = max_bytes
        self.max_item = max_bytes if max_item is None else min(max_item, max_bytes)
        self.bytes = 0
        self._items: OrderedDict[Any, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many items are kept."""
        return len(self._items)

    def get(self, key: Any) -> bytes | None:  # a hashable key
        """The bytes kept for ``key``, if any."""
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: Any, data: bytes) -> bool:  # a hashable key
        """Keep ``data`` for ``key`` unless too large; evict the oldest to fit."""
        if self.entries <= 0 or _cost(key, data) > self.max_item:
            return False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= _cost(key, old)
            self._items[key] = data
            self.bytes += _cost(key, data)
            while len(self._items) > self.entries or self.bytes > self.max_bytes:
                dropped = self._items.popitem(last=False)
                self.bytes -= _cost(*dropped)
            return True


_STRUCTS = BytesLRU(STRUCT_CACHE_ENTRIES, STRUCT_CACHE_BYTES, max_item=256 << 10)


def _encode(text: str) -> bytes:
    data = _STRUCTS.get(text)
    if data is None:
        s = structpb.Struct()
        s.update(json.loads(text))
        data = bytes(s.SerializeToString(deterministic=True))
        _STRUCTS.put(text, data)
    return data


def struct_bytes(data: Mapping[str, Any]) -> bytes:
    """The serialised Struct of ``data``: keys sorted, byte-stable, cached per body."""
    return _encode(json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False))


def to_struct(data: Mapping[str, Any]) -> structpb.Struct:
    """A Struct of ``data`` (see ``struct_bytes``)."""
    return structpb.Struct.FromString(struct_bytes(data))
