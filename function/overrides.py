"""Platform teams' Helm values overrides, deep-merged over what the function computes.

The Composition's function input carries ``spec.values.<component>`` (the
Release's name: ``cilium``, ``contour``, ``istiod``, ...). For each Release,
the override is merged over the computed values: where both sides hold a map
the maps merge key by key; anywhere else the override's value replaces the
computed one (lists are replaced whole, as Helm does; ``null`` is passed on,
which Helm reads as "remove this key and use the chart default").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base`` (maps recursively, everything else replaced)."""
    out: dict[str, Any] = dict(base)
    for key, value in over.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = deep_merge(current, value)
        else:
            out[key] = value
    return out


def apply(
    component: str, values: Mapping[str, Any] | None, overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The values of ``component`` with the platform team's override merged over them."""
    own = overrides.get(component)
    return deep_merge(values or {}, own) if own else dict(values or {})
