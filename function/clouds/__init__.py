"""Cloud resources of one cluster entry: GPU node pool, its identity, the model bucket.

Each cloud module has ``build(ctx) -> list[Composed]``; ``build`` here picks
the one for the cluster's cloud. Existing clusters get no cloud resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from function.clouds import aws, azure, gcp
from function.composed import Composed, Gate, Unknown
from function.context import ClusterContext
from function.models.common import Cloud

Observed = Mapping[str, Mapping[str, Any]]

# Each cloud module builds its resources and answers the same questions about its
# cache identity (fleet_cache, cache_gates, cache_warning).
MODULES: dict[Cloud, ModuleType] = {Cloud.AWS: aws, Cloud.GCP: gcp, Cloud.AZURE: azure}


def build(ctx: ClusterContext, observed: Observed | None = None) -> list[Composed]:
    """Build the cloud resources of the cluster ``ctx``, in a fixed order ([] for existing).

    ``observed`` gives the values the cache identity chain reads from what the
    provider reports (bucket ARN, service account e-mail, identity ids).
    """
    module = MODULES.get(ctx.cloud)
    return module.build(ctx, observed) if module is not None else []


def fleet_cache(ctx: ClusterContext, observed: Observed) -> dict[str, Any] | Unknown | None:
    """Return the ``cache`` block of the cluster's fleets, or None (no bucket, or not known yet)."""
    module = MODULES.get(ctx.cloud)
    return module.fleet_cache(ctx, observed) if module is not None else None


def cache_gates(ctx: ClusterContext, model: str, observed: Observed) -> tuple[Gate, ...]:
    """Return what the fleet of ``model`` waits for before it is first composed: its identity."""
    module = MODULES.get(ctx.cloud)
    return module.cache_gates(ctx, model, observed) if module is not None else ()


def cache_warning(ctx: ClusterContext, observed: Observed) -> str | None:
    """Return why the cluster's models cannot use its bucket (a prerequisite is off), or None."""
    module = MODULES.get(ctx.cloud)
    return module.cache_warning(ctx, observed) if module is not None else None
