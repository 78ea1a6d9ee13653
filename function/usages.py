"""ClusterUsages: what must not be deleted before what depends on it.

provider-helm and provider-kubernetes track their own ProviderConfigUsages and
hold a ProviderConfig while anything uses it. What they do not know:

- an EKS node group needs its IAM role;
- a model's objects need the GPU node pool (and, when the stack is uninstalled,
  the components the model runs on: GPU operator, mesh, KEDA or Knative) until
  they are gone from the cluster. An XOllamaFleet disappears as soon as it is
  deleted (background deletion) while its Objects still delete, so the edge
  names the fleet's Namespace Object, the last of them to go (it outlives the
  fleet XR, whose child it is, so no edge names the XR), by its labels:
  ``crossplane.io/composite``, which Crossplane sets to the root XR (this
  platform, not the fleet) on everything a nested fleet composes, and the
  fleet's cluster and model labels (one fleet per model and cluster);
- with ``stackDeletionPolicy: Delete``, every stack component is kept until
  what waits for it at creation is gone: the reverse dependency order.

Every edge is composed twice (``pair``): ``<of>-used-by-<by>`` and
``<of>-also-used-by-<by>``, with the same ``of`` and ``by``. Crossplane 2.1.4's
Usage controller (internal/controller/protection/usage/reconciler.go) removes
the ``crossplane.io/in-use`` label from what a deleted Usage held when it finds
fewer than two Usages of it, counting itself; its webhook is only called for
objects with that label. A reconcile that starts from a cached copy of a Usage
whose finalizer it already removed finds itself gone from the cache by the time
it counts, so when one other Usage still holds the object the label goes, and
the object can be deleted while that Usage's user is still there (until the
survivor's next poll, a minute later, puts the label back). Seen in the
end-to-end suite: removing a model stripped the label from the cluster's
ProviderConfig that the other model's Namespace Object still used, and
deleting the claim 25 s later deleted it first. With every edge doubled, a
Usage counting the others while any user of the object is still there finds
that user's two Usages, so the label stays; only when one user is left does
a stale count find one Usage, its twin, whose user is the one just gone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from function import naming
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.models.common import StackDeletionPolicy

USAGE_API = "protection.crossplane.io/v1beta1"
COMPOSITE_LABEL = "crossplane.io/composite"
IN_CLUSTER_KINDS = frozenset({"Release", "Object"})
FLEET_NAMESPACE_ROLE = "object-namespace"


def _ref(item: Composed) -> dict[str, object]:
    labels = item.body.get("metadata", {}).get("labels", {})
    return {
        "apiVersion": item.api_version,
        "kind": item.kind,
        "resourceSelector": {"matchControllerRef": True, "matchLabels": dict(labels)},
    }


def pair(usage: Composed, twin_key: str) -> list[Composed]:
    """``usage`` and its twin under ``twin_key``: the same edge twice (see the module's doc)."""
    return [usage, Composed(key=twin_key, body=copy.deepcopy(usage.body), gates=usage.gates)]


def usage(
    ctx: ClusterContext,
    of: Composed,
    by: Composed,
    reason: str,
    *,
    by_ref: dict[str, Any] | None = None,
    suffix: str = "",
) -> list[Composed]:
    """The ClusterUsages (a pair) that keep ``of`` until ``by`` is gone, emitted once both exist."""
    name = by.key.removeprefix(f"{ctx.name}-") + (f"-{suffix}" if suffix else "")
    return pair(
        Composed(
            key=naming.key(of.key, "used-by", name),
            body={
                "apiVersion": USAGE_API,
                "kind": "ClusterUsage",
                "metadata": {"labels": ctx.labels("usage")},
                "spec": {
                    "of": _ref(of),
                    "by": by_ref or _ref(by),
                    "reason": reason,
                    "replayDeletion": True,
                },
            },
            gates=(Gate(of.key, Need.EXISTS), Gate(by.key, Need.EXISTS)),
        ),
        naming.key(of.key, "also-used-by", name),
    )


def fleet_namespace_ref(ctx: ClusterContext, fleet: Composed) -> dict[str, Any]:
    """Select the Namespace Object of this platform's ``fleet`` on this cluster."""
    labels = {
        COMPOSITE_LABEL: ctx.platform.name,
        naming.LABEL_CLUSTER: ctx.name,
        naming.LABEL_FLEET: str(fleet.body["spec"]["name"]),
        naming.LABEL_ROLE: FLEET_NAMESPACE_ROLE,
    }
    return {
        "apiVersion": "kubernetes.crossplane.io/v1alpha2",
        "kind": "Object",
        "resourceSelector": {"matchLabels": labels},
    }


def build(ctx: ClusterContext, composed: Sequence[Composed]) -> list[Composed]:
    """The Usages between this cluster's composed resources (each gated on both ends existing)."""
    by_key = {c.key: c for c in composed}
    out: list[Composed] = []
    pool = by_key.get(naming.key(ctx.name, "nodepool"))
    role = by_key.get(naming.key(ctx.name, "node-role"))
    uninstall = ctx.spec.stack_deletion_policy is StackDeletionPolicy.DELETE
    if pool is not None and role is not None:
        out += usage(ctx, role, pool, "the GPU node group runs with this IAM role")
    for item in composed:
        if item.kind != "XOllamaFleet":
            continue
        needs = [pool] if pool is not None else []
        if uninstall:  # what the fleet waited for: GPU operator, mesh, KEDA or Knative
            needs += [
                by_key[g.key]
                for g in item.gates
                if g.key in by_key and by_key[g.key].kind in IN_CLUSTER_KINDS
            ]
        ref = fleet_namespace_ref(ctx, item)
        reason = "the model's objects must be gone from the cluster first"
        # Gated on the fleet's existence like every usage (the fleet's objects do
        # not exist before the fleet does), and always a candidate, so a usage that
        # exists is kept while the fleet is missing from the observed state.
        for of in needs:
            out += usage(ctx, of, item, reason, by_ref=ref, suffix="objects")
    if uninstall:
        out += stack_order(ctx, composed)
    return out


def stack_order(ctx: ClusterContext, composed: Sequence[Composed]) -> list[Composed]:
    """Uninstall in reverse dependency order: keep what a component waited for until it is gone."""
    by_key = {c.key: c for c in composed if c.kind in IN_CLUSTER_KINDS}
    have = {c.key for c in composed}  # an edge a builder composed already (the gateway's guards)
    out: list[Composed] = []
    for item in by_key.values():
        for gate in item.gates:
            of = by_key.get(gate.key)
            if of is not None and of is not item:
                pair = usage(ctx, of, item, f"{item.key} is uninstalled first")
                out += [] if pair[0].key in have else pair
    return out
