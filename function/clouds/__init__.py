"""Cloud resources of one cluster entry: GPU node pool, its identity, the model bucket.

Each cloud module has ``build(ctx) -> list[Composed]``; ``build`` here picks
the one for the cluster's cloud. Existing clusters get no cloud resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from function.clouds import aws, azure, gcp
from function.composed import Composed
from function.context import ClusterContext
from function.models.common import Cloud

Observed = Mapping[str, Mapping[str, Any]]

MODULES: dict[Cloud, ModuleType] = {Cloud.AWS: aws, Cloud.GCP: gcp, Cloud.AZURE: azure}


def build(ctx: ClusterContext, observed: Observed | None = None) -> list[Composed]:
    """Build the cloud resources of the cluster ``ctx``, in a fixed order ([] for existing).

    ``observed`` gives what the builders read from what the providers report
    (the node service account's member, the GKE cluster's workload pool).
    """
    module = MODULES.get(ctx.cloud)
    return module.build(ctx, observed) if module is not None else []
