"""The cluster's blob container as the model cache (Azure), reached by Microsoft Entra Workload ID.

The existing AKS cluster is observed, never changed (``managementPolicies:
[Observe]``), for its OIDC issuer URL; the cluster must have the OIDC issuer
and workload identity enabled (``az aks update --enable-oidc-issuer
--enable-workload-identity``), else the warning says so and the models pull
without the cache. A user-assigned managed identity ``cache-identity`` holds
``Storage Blob Data Contributor`` scoped to the container only (its
``resourceManagerId``), and trusts, by one ``FederatedIdentityCredential`` per
model, the token of ``system:serviceaccount:ollama-<model>:ollama`` issued by
that cluster for the ``api://AzureADTokenExchange`` audience. The issuer, the
identity's principal id and the container's id are what the provider reports,
so what needs them waits for them.
"""

from __future__ import annotations

from function import naming
from function.clouds.azure import (
    CONTAINER_NAME,
    CONTAINERSERVICE_API,
    ROLE_CONTAINER,
    azure_cluster,
)
from function.clouds.common import (
    cloud_tags,
    item_resource,
    managed_resource,
    region,
    unknown,
)
from function.composed import UNKNOWN, Composed, Gate, Need
from function.context import ClusterContext
from function.modelcache.backend import CacheBlock, Observed
from function.models.fleet import CacheProvider
from function.reports import (
    CLIENT_ID,
    OIDC_ISSUER,
    PRINCIPAL_ID,
    RESOURCE_ID,
    aks_workload_identity,
    reported,
)

IDENTITY_API = "managedidentity.azure.upbound.io/v1beta1"
AUTHORIZATION_API = "authorization.azure.upbound.io/v1beta1"

ROLE_AKS = "aks-cluster"
ROLE_CACHE_IDENTITY = "cache-identity"
ROLE_CACHE_ACCESS = "cache-access"
ROLE_CACHE_CREDENTIAL = "model-identity"  # + model name; no other key starts so

CACHE_ROLE = "Storage Blob Data Contributor"
TOKEN_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105  # an audience, not a secret


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


def workload_identity(ctx: ClusterContext, observed: Observed) -> bool | None:
    """Tell whether the observed AKS cluster has the OIDC issuer and workload identity on.

    None while it is not known (see ``reports.aks_workload_identity``).
    """
    return aks_workload_identity(observed.get(aks_cluster_key(ctx)))


def composes(ctx: ClusterContext, observed: Observed) -> list[Composed]:
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


def fleet_cache(ctx: ClusterContext, observed: Observed) -> CacheBlock:
    """Return the fleet's ``cache`` block, once the identity reports its client id.

    None once the cluster is seen without the OIDC issuer or workload identity;
    UNKNOWN while the client id is not reported.
    """
    if workload_identity(ctx, observed) is False:
        return None
    client_id = reported(observed.get(identity_key(ctx)), CLIENT_ID)
    if client_id is None:
        return UNKNOWN
    account = naming.azure_storage_account_name(ctx.platform.uid, ctx.platform.name, ctx.name)
    return {
        "provider": CacheProvider.AZURE_BLOB.value,
        "bucket": CONTAINER_NAME,
        "account": account,
        "azureClientId": client_id,
    }


def gates(ctx: ClusterContext, model: str, observed: Observed) -> tuple[Gate, ...]:
    """Return what a model's fleet waits for: the identity, its role, and its own credential.

    Nothing once the cluster is seen without workload identity (the model pulls).
    """
    if workload_identity(ctx, observed) is False:
        return ()
    return (
        Gate(identity_key(ctx), Need.READY),
        Gate(identity_key(ctx), Need.REPORTED, CLIENT_ID),
        Gate(naming.key(ctx.name, ROLE_CACHE_ACCESS), Need.READY),
        Gate(credential_key(ctx, model), Need.READY),
    )


def warning(ctx: ClusterContext, observed: Observed) -> str | None:
    """Return why the cluster's models cannot use the container cache (None when they can)."""
    if workload_identity(ctx, observed) is not False:
        return None
    group, name = cluster_id_parts(azure_cluster(ctx).cluster_id)
    return (
        f"AKS cluster {name} has the OIDC issuer or workload identity off, so its models "
        "pull from the registry without the container cache; turn them on with: "
        f"az aks update --resource-group {group} --name {name} "
        "--enable-oidc-issuer --enable-workload-identity"
    )
