"""Protobuf Struct <-> plain Python, fast enough for the steady-state reconcile.

The SDK's helpers go through ``json_format``, which walks every value in
Python; a large platform's observed state is hundreds of resources. Here:

- ``observed_summary`` reads only what the plan uses from an observed resource
  (kind, name, conditions, ``status.atProvider``), not the whole body;
- ``struct_bytes`` turns a body into the serialised Struct once per distinct
  body (bounded LRU), so re-emitting an unchanged resource costs one C parse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from google.protobuf import struct_pb2 as structpb

STRUCT_CACHE_SIZE = 8192


def value(v: structpb.Value) -> Any:  # JSON
    """A Struct Value as plain Python."""
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return {k: value(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [value(x) for x in v.list_value.values]
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() else n
    if kind == "bool_value":
        return v.bool_value
    return None


def to_dict(s: structpb.Struct) -> dict[str, Any]:
    """A whole Struct as plain Python (whole numbers as ints)."""
    return {k: value(x) for k, x in s.fields.items()}


def _field(s: structpb.Struct, name: str) -> structpb.Value | None:
    return s.fields[name] if name in s.fields else None


def _sub(s: structpb.Struct, name: str) -> structpb.Struct | None:
    v = _field(s, name)
    return v.struct_value if v is not None and v.WhichOneof("kind") == "struct_value" else None


def observed_summary(s: structpb.Struct) -> dict[str, Any]:
    """The parts of an observed composed resource the plan reads."""
    out: dict[str, Any] = {}
    for name in ("apiVersion", "kind"):
        v = _field(s, name)
        if v is not None:
            out[name] = value(v)
    meta = _sub(s, "metadata")
    if meta is not None and "name" in meta.fields:
        out["metadata"] = {"name": value(meta.fields["name"])}
    status = _sub(s, "status")
    if status is not None:
        out["status"] = {
            name: value(status.fields[name])
            for name in ("conditions", "atProvider")
            if name in status.fields
        }
    return out


@lru_cache(maxsize=STRUCT_CACHE_SIZE)
def _encode(text: str) -> bytes:
    s = structpb.Struct()
    s.update(json.loads(text))
    return bytes(s.SerializeToString(deterministic=True))


def struct_bytes(data: Mapping[str, Any]) -> bytes:
    """The serialised Struct of ``data``: keys sorted, byte-stable, cached per body."""
    return _encode(json.dumps(data, sort_keys=True, separators=(",", ":")))


def to_struct(data: Mapping[str, Any]) -> structpb.Struct:
    """A Struct of ``data`` (see ``struct_bytes``)."""
    return structpb.Struct.FromString(struct_bytes(data))
