"""Cloud resources of one cluster entry: GPU node pool, its identity, the model bucket.

Each cloud module has ``build(ctx) -> list[Composed]``; ``build`` here picks
the one for the cluster's cloud. Existing clusters get no cloud resources.
"""

from __future__ import annotations

from collections.abc import Callable

from function.clouds import aws, azure, gcp
from function.composed import Composed
from function.context import ClusterContext
from function.models.common import Cloud

BUILDERS: dict[Cloud, Callable[[ClusterContext], list[Composed]]] = {
    Cloud.AWS: aws.build,
    Cloud.GCP: gcp.build,
    Cloud.AZURE: azure.build,
}


def build(ctx: ClusterContext) -> list[Composed]:
    """Build the cloud resources of the cluster ``ctx``, in a fixed order ([] for existing)."""
    builder = BUILDERS.get(ctx.cloud)
    return builder(ctx) if builder is not None else []
