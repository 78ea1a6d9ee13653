"""The in-cluster stack: one module per component group, in bring-up order."""

from __future__ import annotations

from function import naming
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


def build(ctx: ClusterContext) -> list[Composed]:
    """Every in-cluster Release and Object of one cluster."""
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
