"""Cloud resources of one cluster entry: GPU node pool, its identity, the model bucket.

Each cloud module has ``build(ctx) -> list[Composed]``; ``build`` here picks
the one for the cluster's cloud. Existing clusters get no cloud resources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from function.clouds import aws, azure, gcp
from function.composed import Composed, Gate
from function.context import ClusterContext
from function.models.common import Cloud

Observed = Mapping[str, Mapping[str, Any]]

BUILDERS: dict[Cloud, Callable[[ClusterContext, Observed | None], list[Composed]]] = {
    Cloud.AWS: aws.build,
    Cloud.GCP: gcp.build,
    Cloud.AZURE: azure.build,
}


def build(ctx: ClusterContext, observed: Observed | None = None) -> list[Composed]:
    """Build the cloud resources of the cluster ``ctx``, in a fixed order ([] for existing).

    ``observed`` gives the values the cache identity chain reads from what the
    provider reports (bucket ARN, service account e-mail, identity ids).
    """
    builder = BUILDERS.get(ctx.cloud)
    return builder(ctx, observed) if builder is not None else []


def fleet_cache(ctx: ClusterContext, observed: Observed) -> dict[str, Any] | None:
    """Return the ``cache`` block of the cluster's fleets, or None (no bucket, or not known yet)."""
    if ctx.cloud is Cloud.AWS:
        return aws.fleet_cache(ctx, observed)
    if ctx.cloud is Cloud.GCP:
        return gcp.fleet_cache(ctx, observed)
    if ctx.cloud is Cloud.AZURE:
        return azure.fleet_cache(ctx, observed)
    return None


def cache_gates(ctx: ClusterContext, model: str) -> tuple[Gate, ...]:
    """Return what the fleet of ``model`` waits for before it is first composed: its identity."""
    if ctx.cloud is Cloud.AWS:
        return aws.cache_gates(ctx, model)
    if ctx.cloud is Cloud.GCP:
        return gcp.cache_gates(ctx, model)
    if ctx.cloud is Cloud.AZURE:
        return azure.cache_gates(ctx, model)
    return ()
