"""Kubernetes structural schemas from the pydantic models.

Pydantic's JSON Schema uses ``$ref``, ``anyOf`` with null and titles; a CRD's
openAPIV3Schema needs none of these. ``structural`` inlines references, drops
the null branch of optional fields and keeps what Kubernetes understands.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_KEEP = {
    "type",
    "description",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "pattern",
    "format",
    "items",
    "properties",
    "required",
    "additionalProperties",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:  # JSON
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(branches) == 1:
            return _resolve({**branches[0], **rest}, defs)
    return {k: _resolve(v, defs) for k, v in node.items()}


def _clean(node: Any) -> Any:  # JSON
    if isinstance(node, list):
        return [_clean(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _clean(sub) for name, sub in value.items()}
        elif key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "default" and value is None:
            continue
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _clean(value)
            elif value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif key in _KEEP:
            out[key] = _clean(value) if isinstance(value, (dict, list)) else value
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "required" in out:
        out["required"] = sorted(out["required"])
    return out


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural openAPIV3Schema of ``model``, by alias, validation mode."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return dict(_clean(_resolve(raw, defs)))
