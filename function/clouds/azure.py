"""Azure: the AKS GPU node pool, a storage account with a private container.

Kinds are the classic cluster-scoped ones at their storage versions:
``containerservice.azure.upbound.io/v1beta2`` KubernetesClusterNodePool,
``storage.azure.upbound.io/v1beta2`` Account and ``storage.azure.upbound.io/v1beta1``
Container. The model cache in the container (the observed AKS cluster, the
cache's managed identity, its role assignment and federated credentials) is
modelcache/azureblob.py's.
"""

from __future__ import annotations

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
from function.models.common import Profile
from function.models.platform import AzureCluster

CONTAINERSERVICE_API = "containerservice.azure.upbound.io/v1beta2"
STORAGE_ACCOUNT_API = "storage.azure.upbound.io/v1beta2"
STORAGE_CONTAINER_API = "storage.azure.upbound.io/v1beta1"

ROLE_NODEPOOL = "nodepool"

Observed = Mapping[str, Mapping[str, Any]]
ROLE_STORAGE_ACCOUNT = "storage-account"
ROLE_CONTAINER = "container"

# The one container in the platform's storage account.
CONTAINER_NAME = "models"

# AKS puts this label and taint on every spot pool. Naming them keeps the
# provider from trying to remove them on every reconcile (and a label update
# without the label would drop it from the nodes).
SPOT_LABEL = {"kubernetes.azure.com/scalesetpriority": "spot"}
SPOT_TAINT = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"

# Zone-redundant storage in production; locally redundant is enough to develop with.
REPLICATION = {Profile.DEVELOPMENT: "LRS", Profile.PRODUCTION: "ZRS"}


def build(ctx: ClusterContext, observed: Observed | None = None) -> list[Composed]:  # noqa: ARG001  # every cloud's signature
    """Build the Azure resources of one cluster: node pool, storage account and container."""
    resources = [aks_node_pool(ctx)]
    if wants_bucket(ctx):
        resources.extend([storage_account(ctx), container(ctx)])
    return resources


def azure_cluster(ctx: ClusterContext) -> AzureCluster:
    """Return the cluster's ``azure`` block."""
    if ctx.spec.azure is None:
        raise missing(ctx, "azure")
    return ctx.spec.azure


def rotation_name(ctx: ClusterContext) -> str:
    """Return the temporary pool name AKS uses to cycle nodes when vmSize or disk size change.

    At most 12 lowercase alphanumerics, starting with a letter, never equal to
    the pool's own name (which starts with ``gpu``).
    """
    return "tmp" + naming.digest(
        ctx.platform.uid or ctx.platform.name, ctx.name, "rotation", length=9
    )


def aks_node_pool(ctx: ClusterContext) -> Composed:
    """Build the AKS user node pool of GPU VMs, with the NVIDIA driver installed by AKS.

    The cluster autoscaler owns the node count: ``minCount``/``maxCount`` are
    in ``spec.forProvider``, the initial ``nodeCount`` only in
    ``spec.initProvider``, and ``LateInitialize`` is left out of the
    management policies so the provider never copies the observed count
    back into ``spec.forProvider`` (provider-upjet-azure #636).
    """
    pool = node_pool(ctx)
    taints = [f"{naming.GPU_TAINT_KEY}=true:NoSchedule"]
    for_provider: dict[str, Any] = {
        "kubernetesClusterId": azure_cluster(ctx).cluster_id,
        "mode": "User",
        "osType": "Linux",
        "vmSize": pool.instance_type,
        "gpuDriver": "Install",
        "osDiskSizeGb": pool.disk_size_gb,
        "autoScalingEnabled": True,
        "minCount": pool.min_nodes,
        "maxCount": pool.max_nodes,
        "nodeLabels": dict(GPU_NODE_LABELS),
        "nodeTaints": taints,
        "nodePublicIpEnabled": False,
        "temporaryNameForRotation": rotation_name(ctx),
        "tags": cloud_tags(ctx),
    }
    if pool.spot:
        for_provider.update(
            {
                "priority": "Spot",
                "evictionPolicy": "Delete",
                # Pay at most the on-demand price; never evicted for price.
                "spotMaxPrice": -1,
                "nodeLabels": {**GPU_NODE_LABELS, **SPOT_LABEL},
                "nodeTaints": [*taints, SPOT_TAINT],
            }
        )
    body = managed_resource(
        ctx,
        CONTAINERSERVICE_API,
        "KubernetesClusterNodePool",
        ROLE_NODEPOOL,
        for_provider,
        external_name=naming.azure_node_pool_name(ctx.platform.uid, ctx.platform.name, ctx.name),
        init_provider={"nodeCount": pool.min_nodes},
        management_policies=AUTOSCALED_MANAGEMENT_POLICIES,
    )
    return Composed(key=naming.key(ctx.name, ROLE_NODEPOOL), body=body)


def storage_account(ctx: ClusterContext) -> Composed:
    """Build the storage account for model artefacts: HTTPS and TLS 1.2 only, no public blobs.

    No static keys: every consumer authenticates with Entra ID (the models by
    workload identity, the provider through the management plane, where the
    container is created by the account's id), so Shared Key (account keys and the
    SAS they sign) and local users are off, and the portal defaults to Entra ID.
    """
    body = managed_resource(
        ctx,
        STORAGE_ACCOUNT_API,
        "Account",
        ROLE_STORAGE_ACCOUNT,
        {
            "resourceGroupName": azure_cluster(ctx).resource_group_name,
            "location": region(ctx),
            "accountKind": "StorageV2",
            "accountTier": "Standard",
            "accountReplicationType": REPLICATION[ctx.platform.profile],
            "minTlsVersion": "TLS1_2",
            "httpsTrafficOnlyEnabled": True,
            "allowNestedItemsToBePublic": False,
            "crossTenantReplicationEnabled": False,
            "sharedAccessKeyEnabled": False,
            "localUserEnabled": False,
            "defaultToOauthAuthentication": True,
            "blobProperties": {"versioningEnabled": ctx.spec.bucket.versioning},
            "tags": cloud_tags(ctx),
        },
        external_name=naming.azure_storage_account_name(
            ctx.platform.uid, ctx.platform.name, ctx.name
        ),
    )
    return Composed(key=naming.key(ctx.name, ROLE_STORAGE_ACCOUNT), body=body)


def container(ctx: ClusterContext) -> Composed:
    """Build the private blob container in the composed storage account."""
    body = managed_resource(
        ctx,
        STORAGE_CONTAINER_API,
        "Container",
        ROLE_CONTAINER,
        {
            "containerAccessType": "private",
            "storageAccountIdSelector": ctx.selector(ROLE_STORAGE_ACCOUNT),
        },
        external_name=CONTAINER_NAME,
    )
    return Composed(key=naming.key(ctx.name, ROLE_CONTAINER), body=body)
