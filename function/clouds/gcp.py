"""GCP: the GPU nodes' service account and roles, the GKE node pool, the bucket.

Kinds are the classic cluster-scoped ones at their storage versions:
``cloudplatform.gcp.upbound.io/v1beta1`` ServiceAccount,
``cloudplatform.gcp.upbound.io/v1beta2`` ProjectIAMMember,
``container.gcp.upbound.io/v1beta2`` NodePool and Cluster (observed only),
``storage.gcp.upbound.io/v1beta2`` Bucket.

The GPU nodes' service account gets the roles GKE documents for node service
accounts: ``roles/container.defaultNodeServiceAccount`` (logging, monitoring,
metadata) and ``roles/artifactregistry.reader`` (images from Artifact
Registry), on the project: nothing else, and no storage role.

The cluster must have Workload Identity for the model cache
(``--workload-pool=<project>.svc.id.goog``; modelcache/gcs.py composes the
cache's identity chain) and the platform does not own it: with a bucket it
observes the cluster (a ``Cluster`` with ``managementPolicies: [Observe]``)
and waits for it before adding the pool. Without a workload pool GKE refuses
a ``GKE_METADATA`` node pool, so the pool keeps the node's metadata server.
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
    item_resource,
    managed_resource,
    missing,
    node_pool,
    region,
    unknown,
    wants_bucket,
)
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.models.platform import GcpCluster
from function.reports import MEMBER, gke_workload_identity, reported

CLOUDPLATFORM_API = "cloudplatform.gcp.upbound.io/v1beta1"
IAM_MEMBER_API = "cloudplatform.gcp.upbound.io/v1beta2"  # ProjectIAMMember, ServiceAccountIAMMember
CONTAINER_API = "container.gcp.upbound.io/v1beta2"
STORAGE_API = "storage.gcp.upbound.io/v1beta2"

ROLE_NODE_SA = "node-sa"
ROLE_NODEPOOL = "nodepool"
ROLE_GKE = "gke-cluster"  # the existing cluster, observed only

Observed = Mapping[str, Mapping[str, Any]]
ROLE_BUCKET = "bucket"

# What GKE documents for a node service account, by the short name used in keys.
NODE_ROLES = {
    "default-node": "roles/container.defaultNodeServiceAccount",
    "artifact-reader": "roles/artifactregistry.reader",
}

# GKE node pool names are at most 40 characters.
NODE_POOL_NAME_LENGTH = 40
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# A regional cluster puts its nodes in three zones unless told otherwise.
REGIONAL_ZONES = 3

_ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
_LABEL_INVALID = re.compile(r"[^a-z0-9_-]+")


def build(ctx: ClusterContext, observed: Observed | None = None) -> list[Composed]:
    """Build one cluster's GCP resources: node account and roles, pool, observed cluster, bucket."""
    observed = observed or {}
    resources = [service_account(ctx), *node_roles(ctx, observed), gke_node_pool(ctx, observed)]
    if wants_bucket(ctx):
        resources.extend([observed_cluster(ctx), bucket(ctx)])
    return resources


def gke_cluster_key(ctx: ClusterContext) -> str:
    """Return the key of the observed GKE cluster."""
    return naming.key(ctx.name, ROLE_GKE)


def observed_cluster(ctx: ClusterContext) -> Composed:
    """Observe (never change) the existing GKE cluster, for its Workload Identity pool."""
    gcp = gcp_cluster(ctx)
    body = managed_resource(
        ctx,
        CONTAINER_API,
        "Cluster",
        ROLE_GKE,
        {"project": gcp.project, "location": region(ctx)},
        external_name=gcp.cluster_name,
        management_policies=["Observe"],
    )
    return Composed(key=gke_cluster_key(ctx), body=body)


def workload_identity(ctx: ClusterContext, observed: Observed) -> bool | None:
    """Tell whether the observed cluster has a Workload Identity pool (None: not known)."""
    return gke_workload_identity(observed.get(gke_cluster_key(ctx)))


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


def gke_node_pool(ctx: ClusterContext, observed: Observed) -> Composed:
    """Build the GKE node pool of GPU machines, with GKE-managed NVIDIA drivers.

    The autoscaler limits are pool totals (``totalMinNodeCount`` and
    ``totalMaxNodeCount``), matching the claim's ``minNodes``/``maxNodes`` on
    zonal and regional clusters alike. The initial size is only in
    ``spec.initProvider`` (in ``spec.forProvider`` it would also force a new
    pool on change) and, as on every cloud, ``LateInitialize`` is left out of
    the management policies so the provider never takes the size back from
    the autoscaler (provider-upjet-gcp #600).

    With a bucket the pool waits until the cluster is observed: it serves pods
    the GKE metadata server only when the cluster has a Workload Identity pool
    (GKE refuses ``GKE_METADATA`` otherwise).
    """
    pool = node_pool(ctx)
    identity = workload_identity(ctx, observed) if wants_bucket(ctx) else False
    metadata_server = identity is True
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
        # Pods see the GKE metadata server, not the node's: Workload Identity.
        **({"workloadMetadataConfig": {"mode": "GKE_METADATA"}} if metadata_server else {}),
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
    gates = (Gate(gke_cluster_key(ctx), Need.READY),) if wants_bucket(ctx) else ()
    latch = (
        (("spec", "forProvider", "nodeConfig", "workloadMetadataConfig"),)
        if identity is None
        else ()
    )
    return Composed(key=naming.key(ctx.name, ROLE_NODEPOOL), body=body, gates=gates, latch=latch)


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


def node_sa_key(ctx: ClusterContext) -> str:
    """Return the key of the GPU nodes' service account."""
    return naming.key(ctx.name, ROLE_NODE_SA)


def node_roles(ctx: ClusterContext, observed: Observed) -> list[Composed]:
    """Grant the GPU nodes' service account the roles GKE documents for nodes, on the project.

    The member is the service account as the provider reports it
    (``status.atProvider.member``), so the grants wait for it.
    """
    member = reported(observed.get(node_sa_key(ctx)), MEMBER)
    return [
        item_resource(
            ctx,
            IAM_MEMBER_API,
            "ProjectIAMMember",
            ROLE_NODE_SA,
            short,
            for_provider={
                "project": gcp_cluster(ctx).project,
                "role": role,
                "member": member or "",
            },
            gates=(Gate(node_sa_key(ctx), Need.REPORTED, MEMBER),),
            latch=unknown(member, "member"),
        )
        for short, role in NODE_ROLES.items()
    ]
