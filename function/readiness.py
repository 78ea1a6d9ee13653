"""Observed state -> readiness, and which desired resources may be emitted yet.

A composed resource is ready when its observed ``Ready`` condition is True.
Kinds that carry no conditions (ProviderConfigs) are ready once they exist.
A resource is emitted once every gate it declares is met, and from then on it
is kept whatever happens to readiness or reports: observed existence keeps it.

The rule for observed state: once a composed resource exists it is never
withdrawn, and its spec never changes because something it depends on stopped
reporting, turned not Ready or flickered. A value derived from observed state
(a bucket's ARN in a policy, a service account's e-mail in a fleet's cache
block, a live replica count) is latched from what the resource already carries
(``Composed.latch``) until a new non-empty value is reported. Only a change of
the claim, or the documented removal path, removes or rewrites.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from function.composed import Composed, Gate, Need
from function.reports import reported

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


def carried(obj: Mapping[str, Any] | None, path: tuple[str, ...]) -> Any:  # JSON
    """The value an observed resource holds at ``path`` (None when absent).

    Decoded observed resources (``codec.ObservedResource``) read it from the
    request; a plain dict is walked.
    """
    if obj is None:
        return None
    reader = getattr(obj, "carried", None)
    if reader is not None:
        return reader(path)
    node: Any = obj
    for name in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
    return node


def _set(body: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``body`` (copied along ``path`` only) with ``path`` set, or removed for None."""
    out = dict(body)
    head, rest = path[0], path[1:]
    if not rest:
        if value is None:
            out.pop(head, None)
        else:
            out[head] = value
        return out
    child = out.get(head)
    out[head] = _set(child if isinstance(child, Mapping) else {}, rest, value)
    return out


def latched(item: Composed, obj: Mapping[str, Any]) -> Composed:
    """``item`` with each latched path taken from what the existing resource carries."""
    if not item.latch:
        return item
    body = item.body
    for path in item.latch:
        body = _set(body, path, carried(obj, path))
    return replace(item, body=body, latch=(), encoded=b"")


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
    """Keep what exists (latched); add what has every gate met; hold the rest."""
    items = list(candidates)
    known = {c.key for c in items}
    emitted: list[Composed] = []
    held: dict[str, list[str]] = {}
    for item in items:
        obj = observed.get(item.key)
        if obj is not None:
            emitted.append(latched(item, obj))
            continue
        unmet = [g.key for g in item.gates if not _met(g, observed, known)]
        if unmet:
            held[item.key] = sorted(set(unmet))
        else:
            emitted.append(item)
    return Selection(emitted=emitted, held=held)
