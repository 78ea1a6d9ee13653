"""ClusterUsages: what must not be deleted before what depends on it.

ProviderConfigs need no Usage here: provider-helm and provider-kubernetes track
their own ProviderConfigUsages and hold a ProviderConfig while anything uses it.
What they do not know is that a model's pods need the GPU node pool, and that
an EKS node group needs its IAM role; those two edges are declared here.
"""

from __future__ import annotations

from collections.abc import Sequence

from function import naming
from function.composed import Composed, Gate, Need
from function.context import ClusterContext

USAGE_API = "protection.crossplane.io/v1beta1"


def _ref(item: Composed) -> dict[str, object]:
    labels = item.body.get("metadata", {}).get("labels", {})
    return {
        "apiVersion": item.api_version,
        "kind": item.kind,
        "resourceSelector": {"matchControllerRef": True, "matchLabels": dict(labels)},
    }


def usage(ctx: ClusterContext, of: Composed, by: Composed, reason: str) -> Composed:
    """A ClusterUsage that keeps ``of`` until ``by`` is gone, emitted once both exist."""
    suffix = by.key.removeprefix(f"{ctx.name}-")
    return Composed(
        key=naming.key(of.key, "used-by", suffix),
        body={
            "apiVersion": USAGE_API,
            "kind": "ClusterUsage",
            "metadata": {"labels": ctx.labels("usage")},
            "spec": {"of": _ref(of), "by": _ref(by), "reason": reason, "replayDeletion": True},
        },
        gates=(Gate(of.key, Need.EXISTS), Gate(by.key, Need.EXISTS)),
    )


def build(ctx: ClusterContext, composed: Sequence[Composed]) -> list[Composed]:
    """The Usages between this cluster's composed resources."""
    by_key = {c.key: c for c in composed}
    out: list[Composed] = []
    pool = by_key.get(naming.key(ctx.name, "nodepool"))
    role = by_key.get(naming.key(ctx.name, "node-role"))
    if pool is not None and role is not None:
        out.append(usage(ctx, role, pool, "the GPU node group runs with this IAM role"))
    if pool is not None:
        for item in composed:
            if item.kind == "XOllamaFleet":
                out.append(usage(ctx, pool, item, "model pods run on the GPU node pool"))
    return out
