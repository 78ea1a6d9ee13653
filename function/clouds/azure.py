"""Azure: the AKS GPU node pool, a storage account with a private container, the cache identity.

Kinds are the classic cluster-scoped ones at their storage versions:
``containerservice.azure.upbound.io/v1beta2`` KubernetesClusterNodePool and
KubernetesCluster (observed only), ``storage.azure.upbound.io/v1beta2`` Account
and ``storage.azure.upbound.io/v1beta1`` Container,
``managedidentity.azure.upbound.io/v1beta1`` UserAssignedIdentity and
FederatedIdentityCredential, ``authorization.azure.upbound.io/v1beta1`` RoleAssignment.

The model cache (with a container): Microsoft Entra Workload ID on AKS. The
existing cluster is observed, never changed (``managementPolicies:
[Observe]``), for its OIDC issuer URL; the cluster must have the OIDC issuer
and workload identity enabled (``az aks update --enable-oidc-issuer
--enable-workload-identity``). A user-assigned managed identity
``cache-identity`` holds ``Storage Blob Data Contributor`` scoped to the
container only (its ``resourceManagerId``), and trusts, by one
``FederatedIdentityCredential`` per model, the token of
``system:serviceaccount:ollama-<model>:ollama`` issued by that cluster for the
``api://AzureADTokenExchange`` audience. The issuer, the identity's principal
id and the container's id are what the provider reports, so what needs them
waits for them.
"""

from __future__ import annotations

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
from function.composed import UNKNOWN, Composed, Gate, Need, Unknown
from function.context import ClusterContext
from function.models.common import Profile
from function.models.platform import AzureCluster
from function.reports import (
    CLIENT_ID,
    OIDC_ISSUER,
    PRINCIPAL_ID,
    RESOURCE_ID,
    aks_workload_identity,
    reported,
)

CONTAINERSERVICE_API = "containerservice.azure.upbound.io/v1beta2"
STORAGE_ACCOUNT_API = "storage.azure.upbound.io/v1beta2"
STORAGE_CONTAINER_API = "storage.azure.upbound.io/v1beta1"
IDENTITY_API = "managedidentity.azure.upbound.io/v1beta1"
AUTHORIZATION_API = "authorization.azure.upbound.io/v1beta1"

ROLE_NODEPOOL = "nodepool"

Observed = Mapping[str, Mapping[str, Any]]
ROLE_STORAGE_ACCOUNT = "storage-account"
ROLE_CONTAINER = "container"
ROLE_AKS = "aks-cluster"
ROLE_CACHE_IDENTITY = "cache-identity"
ROLE_CACHE_ACCESS = "cache-access"
ROLE_CACHE_CREDENTIAL = "model-identity"  # + model name; no other key starts so

CACHE_ROLE = "Storage Blob Data Contributor"
TOKEN_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105  # an audience, not a secret

# The one container in the platform's storage account.
CONTAINER_NAME = "models"

# AKS puts this label and taint on every spot pool. Naming them keeps the
# provider from trying to remove them on every reconcile (and a label update
# without the label would drop it from the nodes).
SPOT_LABEL = {"kubernetes.azure.com/scalesetpriority": "spot"}
SPOT_TAINT = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"

# Zone-redundant storage in production; locally redundant is enough to develop with.
REPLICATION = {Profile.DEVELOPMENT: "LRS", Profile.PRODUCTION: "ZRS"}


def build(ctx: ClusterContext, observed: Observed | None = None) -> list[Composed]:
    """Build the Azure resources of one cluster: node pool, storage, cache identity."""
    resources = [aks_node_pool(ctx)]
    if wants_bucket(ctx):
        resources.extend([storage_account(ctx), container(ctx)])
        resources.extend(cache_identity(ctx, observed or {}))
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


def aks_cluster_key(ctx: ClusterContext) -> str:
    """Return the key of the observed AKS cluster."""
    return naming.key(ctx.name, ROLE_AKS)


def identity_key(ctx: ClusterContext) -> str:
    """Return the key of the model cache's managed identity."""
    return naming.key(ctx.name, ROLE_CACHE_IDENTITY)


def credential_key(ctx: ClusterContext, model: str) -> str:
    """Return the key of the federated credential of ``model``'s ServiceAccount."""
    return naming.key(ctx.name, ROLE_CACHE_CREDENTIAL, model)


def cluster_id_parts(cluster_id: str) -> tuple[str, str]:
    """Return (resource group, cluster name) of an AKS cluster's resource id."""
    parts = cluster_id.split("/")
    return parts[4], parts[-1]


def observed_cluster(ctx: ClusterContext) -> Composed:
    """Observe (never change) the existing AKS cluster, for its OIDC issuer URL."""
    group, name = cluster_id_parts(azure_cluster(ctx).cluster_id)
    body = managed_resource(
        ctx,
        CONTAINERSERVICE_API,
        "KubernetesCluster",
        ROLE_AKS,
        {"resourceGroupName": group},
        external_name=name,
        management_policies=["Observe"],
    )
    return Composed(key=aks_cluster_key(ctx), body=body)


def identity_name(ctx: ClusterContext) -> str:
    """Return the managed identity's name, unique per claim and cluster in its resource group."""
    suffix = naming.digest(ctx.platform.uid or ctx.platform.name, ctx.name, "cache", length=8)
    return naming.dns_label("ollama-cache", ctx.name, suffix)


def cache_identity(ctx: ClusterContext, observed: Observed) -> list[Composed]:
    """Build the Workload ID chain from each model's ServiceAccount to the container."""
    identity = managed_resource(
        ctx,
        IDENTITY_API,
        "UserAssignedIdentity",
        ROLE_CACHE_IDENTITY,
        {
            "name": identity_name(ctx),
            "resourceGroupName": azure_cluster(ctx).resource_group_name,
            "location": region(ctx),
            "tags": cloud_tags(ctx),
        },
    )
    principal = reported(observed.get(identity_key(ctx)), PRINCIPAL_ID)
    scope = reported(observed.get(naming.key(ctx.name, ROLE_CONTAINER)), RESOURCE_ID)
    access = managed_resource(
        ctx,
        AUTHORIZATION_API,
        "RoleAssignment",
        ROLE_CACHE_ACCESS,
        {
            "principalId": principal or "",
            "principalType": "ServicePrincipal",
            "roleDefinitionName": CACHE_ROLE,
            "scope": scope or "",
        },
    )
    out = [
        observed_cluster(ctx),
        Composed(key=identity_key(ctx), body=identity),
        Composed(
            key=naming.key(ctx.name, ROLE_CACHE_ACCESS),
            body=access,
            gates=(
                Gate(identity_key(ctx), Need.REPORTED, PRINCIPAL_ID),
                Gate(naming.key(ctx.name, ROLE_CONTAINER), Need.REPORTED, RESOURCE_ID),
            ),
            latch=unknown(principal, "principalId") + unknown(scope, "scope"),
        ),
    ]
    if workload_identity(ctx, observed) is False:
        return out  # no issuer to federate with: the models pull without the cache
    issuer = reported(observed.get(aks_cluster_key(ctx)), OIDC_ISSUER)
    for model in ctx.models:
        subject = (
            f"system:serviceaccount:{naming.model_namespace(model)}:{naming.MODEL_SERVICE_ACCOUNT}"
        )
        credential = item_resource(
            ctx,
            IDENTITY_API,
            "FederatedIdentityCredential",
            ROLE_CACHE_CREDENTIAL,
            model,
            for_provider={
                "audience": [TOKEN_AUDIENCE],
                "issuer": issuer or "",
                "subject": subject,
                "userAssignedIdentityIdSelector": ctx.selector(ROLE_CACHE_IDENTITY),
            },
            gates=(Gate(aks_cluster_key(ctx), Need.REPORTED, OIDC_ISSUER),),
            latch=unknown(issuer, "issuer"),
        )
        out.append(credential)
    return out


def workload_identity(ctx: ClusterContext, observed: Observed) -> bool | None:
    """Tell whether the observed AKS cluster has the OIDC issuer and workload identity on.

    None while it is not known (see ``reports.aks_workload_identity``).
    """
    return aks_workload_identity(observed.get(aks_cluster_key(ctx)))


def cache_warning(ctx: ClusterContext, observed: Observed) -> str | None:
    """Return why the cluster's models cannot use the container cache (None when they can)."""
    if not wants_bucket(ctx) or workload_identity(ctx, observed) is not False:
        return None
    group, name = cluster_id_parts(azure_cluster(ctx).cluster_id)
    return (
        f"AKS cluster {name} has the OIDC issuer or workload identity off, so its models "
        "pull from the registry without the container cache; turn them on with: "
        f"az aks update --resource-group {group} --name {name} "
        "--enable-oidc-issuer --enable-workload-identity"
    )


def fleet_cache(ctx: ClusterContext, observed: Observed) -> dict[str, Any] | Unknown | None:
    """Return the fleet's ``cache`` block, once the identity reports its client id.

    None once the cluster is seen without the OIDC issuer or workload identity;
    UNKNOWN while the client id is not reported.
    """
    if not wants_bucket(ctx) or workload_identity(ctx, observed) is False:
        return None
    client_id = reported(observed.get(identity_key(ctx)), CLIENT_ID)
    if client_id is None:
        return UNKNOWN
    account = naming.azure_storage_account_name(ctx.platform.uid, ctx.platform.name, ctx.name)
    return {
        "provider": "azureblob",
        "bucket": CONTAINER_NAME,
        "account": account,
        "azureClientId": client_id,
    }


def cache_gates(ctx: ClusterContext, model: str, observed: Observed) -> tuple[Gate, ...]:
    """Return what a model's fleet waits for: the identity, its role, and its own credential.

    Nothing once the cluster is seen without workload identity (the model pulls).
    """
    if not wants_bucket(ctx) or workload_identity(ctx, observed) is False:
        return ()
    return (
        Gate(identity_key(ctx), Need.READY),
        Gate(identity_key(ctx), Need.REPORTED, CLIENT_ID),
        Gate(naming.key(ctx.name, ROLE_CACHE_ACCESS), Need.READY),
        Gate(credential_key(ctx, model), Need.READY),
    )
