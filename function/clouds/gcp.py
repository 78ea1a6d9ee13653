"""GCP: the GPU nodes' service account, the GKE node pool, and the GCS bucket.

Kinds are the classic cluster-scoped ones at their storage versions:
``cloudplatform.gcp.upbound.io/v1beta1`` ServiceAccount,
``container.gcp.upbound.io/v1beta2`` NodePool and ``storage.gcp.upbound.io/v1beta2``
Bucket.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from function import naming
from function.clouds.common import (
    AUTOSCALED_MANAGEMENT_POLICIES,
    GPU_NODE_LABELS,
    cloud_tags,
    managed_resource,
    missing,
    node_pool,
    region,
    wants_bucket,
)
from function.composed import Composed
from function.context import ClusterContext
from function.models.platform import GcpCluster

CLOUDPLATFORM_API = "cloudplatform.gcp.upbound.io/v1beta1"
CONTAINER_API = "container.gcp.upbound.io/v1beta2"
STORAGE_API = "storage.gcp.upbound.io/v1beta2"

ROLE_NODE_SA = "node-sa"
ROLE_NODEPOOL = "nodepool"

Observed = Mapping[str, Mapping[str, Any]]
ROLE_BUCKET = "bucket"

# GKE node pool names are at most 40 characters.
NODE_POOL_NAME_LENGTH = 40
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# A regional cluster puts its nodes in three zones unless told otherwise.
REGIONAL_ZONES = 3

_ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
_LABEL_INVALID = re.compile(r"[^a-z0-9_-]+")


def build(ctx: ClusterContext, observed: Observed | None = None) -> list[Composed]:  # noqa: ARG001
    """Build the GCP resources of one cluster entry: node service account, node pool, bucket."""
    resources = [service_account(ctx), gke_node_pool(ctx)]
    if wants_bucket(ctx):
        resources.append(bucket(ctx))
    return resources


def gcp_cluster(ctx: ClusterContext) -> GcpCluster:
    """Return the cluster's ``gcp`` block."""
    if ctx.spec.gcp is None:
        raise missing(ctx, "gcp")
    return ctx.spec.gcp


def is_zone(location: str) -> bool:
    """Tell whether a GCP location is a zone (``us-central1-a``) rather than a region."""
    return bool(_ZONE.match(location))


def region_of(location: str) -> str:
    """Return the region of a GCP location (a zone's region, or the region itself)."""
    return location.rsplit("-", 1)[0] if is_zone(location) else location


def gcp_labels(tags: dict[str, str]) -> dict[str, str]:
    """Convert tags to GCP labels: lowercase letters, digits, '_' and '-', at most 63 characters.

    Keys also start with a letter.
    """
    labels = {}
    for key, value in tags.items():
        clean_key = _LABEL_INVALID.sub("-", key.lower())[:63]
        if not clean_key[:1].isalpha():
            clean_key = f"l{clean_key}"[:63]
        labels[clean_key] = _LABEL_INVALID.sub("-", value.lower())[:63]
    return labels


def service_account(ctx: ClusterContext) -> Composed:
    """Build the service account the GPU nodes run as (instead of the Compute default)."""
    body = managed_resource(
        ctx,
        CLOUDPLATFORM_API,
        "ServiceAccount",
        ROLE_NODE_SA,
        {
            "project": gcp_cluster(ctx).project,
            "displayName": f"Ollama GPU nodes {ctx.name}"[:100],
            "description": f"GPU nodes of Ollama platform {ctx.platform.name}, cluster {ctx.name}",
        },
        external_name=naming.gcp_service_account_id(ctx.platform.uid, ctx.platform.name, ctx.name),
    )
    return Composed(key=naming.key(ctx.name, ROLE_NODE_SA), body=body)


def initial_node_count(location: str, min_nodes: int) -> int:
    """Return the nodes per zone at creation, so the pool starts at about ``min_nodes`` in total.

    GKE counts initial nodes per zone; a zonal cluster has one zone, a
    regional one three by default.
    """
    zones = 1 if is_zone(location) else REGIONAL_ZONES
    return math.ceil(min_nodes / zones)


def gke_node_pool(ctx: ClusterContext) -> Composed:
    """Build the GKE node pool of GPU machines, with GKE-managed NVIDIA drivers.

    The autoscaler limits are pool totals (``totalMinNodeCount`` and
    ``totalMaxNodeCount``), matching the claim's ``minNodes``/``maxNodes`` on
    zonal and regional clusters alike. The initial size is only in
    ``spec.initProvider`` (in ``spec.forProvider`` it would also force a new
    pool on change) and, as on every cloud, ``LateInitialize`` is left out of
    the management policies so the provider never takes the size back from
    the autoscaler (provider-upjet-gcp #600).
    """
    pool = node_pool(ctx)
    gcp = gcp_cluster(ctx)
    location = region(ctx)
    node_config: dict[str, Any] = {
        "machineType": pool.instance_type,
        "imageType": "COS_CONTAINERD",
        "diskSizeGb": pool.disk_size_gb,
        "spot": pool.spot,
        "guestAccelerator": [
            {
                "type": pool.accelerator_type,
                "count": pool.accelerator_count,
                "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"},
            }
        ],
        "serviceAccountSelector": ctx.selector(ROLE_NODE_SA),
        "oauthScopes": [CLOUD_PLATFORM_SCOPE],
        "labels": dict(GPU_NODE_LABELS),
        "taint": [{"key": naming.GPU_TAINT_KEY, "value": "present", "effect": "NO_SCHEDULE"}],
        "resourceLabels": gcp_labels(cloud_tags(ctx)),
        "metadata": {"disable-legacy-endpoints": "true"},
        "shieldedInstanceConfig": {"enableSecureBoot": True, "enableIntegrityMonitoring": True},
    }
    for_provider: dict[str, Any] = {
        "project": gcp.project,
        "location": location,
        "cluster": gcp.cluster_name,
        "autoscaling": {
            "totalMinNodeCount": pool.min_nodes,
            "totalMaxNodeCount": pool.max_nodes,
            # Any zone with capacity: GPUs, and spot GPUs most of all, are scarce.
            "locationPolicy": "ANY",
        },
        "management": {"autoRepair": True, "autoUpgrade": True},
        "nodeConfig": node_config,
    }
    body = managed_resource(
        ctx,
        CONTAINER_API,
        "NodePool",
        ROLE_NODEPOOL,
        for_provider,
        external_name=naming.node_pool_name(
            ctx.platform.name, ctx.name, max_length=NODE_POOL_NAME_LENGTH
        ),
        init_provider={"initialNodeCount": initial_node_count(location, pool.min_nodes)},
        management_policies=AUTOSCALED_MANAGEMENT_POLICIES,
    )
    return Composed(key=naming.key(ctx.name, ROLE_NODEPOOL), body=body)


def gcs_bucket_name(ctx: ClusterContext) -> str:
    """Return the bucket name; GCS refuses names that contain "google", so it is replaced.

    The digest at the end of the name is unchanged, so the name stays unique.
    """
    name = naming.bucket_name(ctx.platform.uid, ctx.platform.name, ctx.name)
    return name.replace("google", "gcp")


def bucket(ctx: ClusterContext) -> Composed:
    """Build the GCS bucket for model artefacts: uniform access, never public, in its region."""
    body = managed_resource(
        ctx,
        STORAGE_API,
        "Bucket",
        ROLE_BUCKET,
        {
            "project": gcp_cluster(ctx).project,
            # GCS reports locations in upper case; sending them so avoids a diff.
            "location": region_of(region(ctx)).upper(),
            "storageClass": "STANDARD",
            "uniformBucketLevelAccess": True,
            "publicAccessPrevention": "enforced",
            "versioning": {"enabled": ctx.spec.bucket.versioning},
            "forceDestroy": False,
            "labels": gcp_labels(cloud_tags(ctx)),
        },
        external_name=gcs_bucket_name(ctx),
    )
    return Composed(key=naming.key(ctx.name, ROLE_BUCKET), body=body)
