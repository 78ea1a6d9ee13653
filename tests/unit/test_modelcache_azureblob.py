"""The blob container as the model cache (modelcache/azureblob.py): Entra Workload ID on AKS."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from function import modelcache, naming
from function.composed import UNKNOWN, Composed, Need
from function.readiness import select
from tests.factories import cluster_chain, cluster_composed, cluster_context, reporting

CONTAINER_ID = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"
    "/blobServices/default/containers/models"
)

ISSUER = "https://eastus.oic.prod-aks.azure.com/tenant/cluster-guid/"

AZURE_REPORTED = {
    **reporting(
        "azure-1-cache-identity",
        "UserAssignedIdentity",
        clientId="00000000-0000-4000-8000-00000000c11d",
        principalId="00000000-0000-4000-8000-0000000000b1",
    ),
    **reporting("azure-1-container", "Container", resourceManagerId=CONTAINER_ID),
    **reporting("azure-1-aks-cluster", "KubernetesCluster", oidcIssuerUrl=ISSUER),
}


def fp(c: Composed) -> dict[str, Any]:
    return dict(c.body["spec"]["forProvider"])


def external_name_of(c: Composed) -> str:
    return str(c.body["metadata"]["annotations"][naming.EXTERNAL_NAME])


def test_aks_cluster_is_observed_never_managed() -> None:
    aks = cluster_chain("azure")["azure-1-aks-cluster"]
    assert (aks.api_version, aks.kind) == (
        "containerservice.azure.upbound.io/v1beta2",
        "KubernetesCluster",
    )
    assert aks.body["spec"]["managementPolicies"] == ["Observe"]
    ctx = cluster_context("azure")
    assert ctx.spec.azure is not None
    assert ctx.spec.azure.cluster_id.endswith("/" + external_name_of(aks))
    assert fp(aks) == {"resourceGroupName": ctx.spec.azure.cluster_id.split("/")[4]}


def test_aks_workload_identity_chain_from_service_account_to_container() -> None:
    chain = cluster_chain("azure", AZURE_REPORTED, models=("llama2", "mistral"))
    identity = chain["azure-1-cache-identity"]
    assert identity.kind == "UserAssignedIdentity"
    access = chain["azure-1-cache-access"]
    assert (access.api_version, access.kind) == (
        "authorization.azure.upbound.io/v1beta1",
        "RoleAssignment",
    )
    assert fp(access)["roleDefinitionName"] == "Storage Blob Data Contributor"
    assert fp(access)["scope"] == CONTAINER_ID  # the container, not the account or group
    assert fp(access)["principalId"] == "00000000-0000-4000-8000-0000000000b1"
    assert fp(access)["principalType"] == "ServicePrincipal"
    for model in ("llama2", "mistral"):
        cred = chain[f"azure-1-model-identity-{model}"]
        assert (cred.api_version, cred.kind) == (
            "managedidentity.azure.upbound.io/v1beta1",
            "FederatedIdentityCredential",
        )
        assert fp(cred)["issuer"] == ISSUER
        assert fp(cred)["subject"] == f"system:serviceaccount:ollama-{model}:ollama"
        assert fp(cred)["audience"] == ["api://AzureADTokenExchange"]
        assert (
            fp(cred)["userAssignedIdentityIdSelector"]["matchLabels"]
            == identity.body["metadata"]["labels"]
        )


def test_aks_chain_waits_for_what_the_provider_reports() -> None:
    chain = cluster_chain("azure", {})
    access, cred = chain["azure-1-cache-access"], chain["azure-1-model-identity-llama2"]
    assert {(g.key, g.field) for g in access.gates} == {
        ("azure-1-cache-identity", "principalId"),
        ("azure-1-container", "resourceManagerId"),
    }
    assert [(g.key, g.field) for g in cred.gates] == [("azure-1-aks-cluster", "oidcIssuerUrl")]
    held = select(chain.values(), {})
    assert {"azure-1-cache-access", "azure-1-model-identity-llama2"} <= set(held.held)
    emitted = {
        c.key
        for c in select(cluster_chain("azure", AZURE_REPORTED).values(), AZURE_REPORTED).emitted
    }
    assert {"azure-1-cache-access", "azure-1-model-identity-llama2"} <= emitted


def test_aks_fleet_cache_names_the_reported_client_id() -> None:
    ctx = cluster_context("azure")
    assert modelcache.backend(ctx).fleet_cache(ctx, {}) is UNKNOWN
    assert modelcache.backend(ctx).fleet_cache(ctx, AZURE_REPORTED) == {
        "provider": "azureblob",
        "bucket": "models",
        "account": external_name_of(cluster_chain("azure")["azure-1-storage-account"]),
        "azureClientId": "00000000-0000-4000-8000-00000000c11d",
    }
    assert [
        (g.key, g.need) for g in modelcache.backend(ctx).gates(ctx, "llama2", AZURE_REPORTED)
    ] == [
        ("azure-1-cache-identity", Need.READY),
        ("azure-1-cache-identity", Need.REPORTED),  # its client id goes into the fleet
        ("azure-1-cache-access", Need.READY),
        ("azure-1-model-identity-llama2", Need.READY),
    ]


AKS_WITHOUT_WI = reporting(
    "azure-1-aks-cluster",
    "KubernetesCluster",
    oidcIssuerEnabled=False,
    workloadIdentityEnabled=False,
)


@pytest.mark.parametrize(
    "flags",
    [
        {"oidcIssuerEnabled": False, "workloadIdentityEnabled": False},
        {"oidcIssuerEnabled": True, "workloadIdentityEnabled": False, "oidcIssuerUrl": ISSUER},
        {"id": "aks-prod"},  # observed (Ready) but no issuer URL reported
    ],
)
def test_aks_without_workload_identity_serves_models_without_the_cache(
    flags: dict[str, Any],
) -> None:
    observed = {**AZURE_REPORTED, **reporting("azure-1-aks-cluster", "KubernetesCluster", **flags)}
    ctx = dataclasses.replace(cluster_context("azure"), models=("llama2",))
    keys = {c.key for c in cluster_composed(ctx, observed)}
    assert "azure-1-model-identity-llama2" not in keys
    assert modelcache.backend(ctx).fleet_cache(ctx, observed) is None
    assert modelcache.backend(ctx).gates(ctx, "llama2", observed) == ()
    warning = modelcache.backend(ctx).warning(ctx, observed)
    assert warning is not None
    assert "--enable-oidc-issuer --enable-workload-identity" in warning
    assert modelcache.backend(ctx).warning(ctx, AZURE_REPORTED) is None
    assert modelcache.backend(ctx).warning(ctx, {}) is None  # not observed yet: no verdict
