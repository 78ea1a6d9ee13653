"""Observed state -> readiness, and which desired resources may be emitted yet.

A composed resource is ready when its observed ``Ready`` condition is True.
Kinds that carry no conditions (ProviderConfigs) are ready once they exist.
A resource is emitted once every gate it declares is met, and from then on it
is kept whatever happens to readiness: observed existence keeps it. The one
exception is a gate on a reported value (``Need.REPORTED``): the resource's
body carries that value, so while it is unknown the resource is not composed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from function.composed import Composed, Gate, Need

# Kinds that never report a Ready condition: existing is being ready.
CONDITIONLESS_KINDS = frozenset({"ProviderConfig"})


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The observed condition of type ``kind``, if any."""
    status = obj.get("status")
    if not isinstance(status, Mapping):
        return None
    for cond in status.get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def is_ready(obj: Mapping[str, Any] | None) -> bool:
    """Tell whether an observed resource is ready."""
    if obj is None:
        return False
    if obj.get("kind") in CONDITIONLESS_KINDS:
        return True
    cond = condition(obj, "Ready")
    return cond is not None and cond.get("status") == "True"


def waiting_reason(obj: Mapping[str, Any] | None) -> str:
    """A short phrase saying why a resource is not ready."""
    if obj is None:
        return "not created yet"
    cond = condition(obj, "Ready") or condition(obj, "Synced")
    if cond is None:
        return "no Ready condition yet"
    reason = cond.get("reason") or "Unknown"
    return f"{reason}"


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of gating: what to emit and what waits on what."""

    emitted: list[Composed]
    held: dict[str, list[str]]  # key -> keys it waits for


def at_provider(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The ``status.atProvider`` of an observed resource ({} when absent or malformed)."""
    status = (obj or {}).get("status")
    found = status.get("atProvider") if isinstance(status, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def reported(obj: Mapping[str, Any] | None, field: str) -> str | None:
    """The non-empty string ``status.atProvider.<field>`` of an observed resource, if any."""
    value = at_provider(obj).get(field)
    return value if isinstance(value, str) and value else None


def _met(gate: Gate, observed: Mapping[str, Mapping[str, Any]], known: set[str]) -> bool:
    if gate.need is Need.REPORTED:
        return reported(observed.get(gate.key), gate.field) is not None
    if gate.key not in known:
        # A gate on something this plan does not compose (a component that is
        # switched off) is no gate at all.
        return True
    obj = observed.get(gate.key)
    if gate.need is Need.EXISTS:
        return obj is not None
    return is_ready(obj)


def select(candidates: Iterable[Composed], observed: Mapping[str, Mapping[str, Any]]) -> Selection:
    """Keep what exists; add what has every gate met; hold the rest."""
    items = list(candidates)
    known = {c.key for c in items}
    emitted: list[Composed] = []
    held: dict[str, list[str]] = {}
    for item in items:
        if item.key in observed and not any(
            g.need is Need.REPORTED and not _met(g, observed, known) for g in item.gates
        ):
            emitted.append(item)
            continue
        unmet = [g.key for g in item.gates if not _met(g, observed, known)]
        if unmet:
            held[item.key] = sorted(set(unmet))
        else:
            emitted.append(item)
    return Selection(emitted=emitted, held=held)
