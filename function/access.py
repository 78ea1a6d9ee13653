"""How provider-helm and provider-kubernetes reach a cluster: the ProviderConfigs.

A cluster reached by ``kubeconfig.secretRef`` gets one ProviderConfig per
provider. Without ``kubeconfig.identity`` the kubeconfig's own credential is
used (a token or client certificate: the provider pods run no exec plugin such
as ``aws eks get-token``, ``gke-gcloud-auth-plugin`` or ``kubelogin``). With it,
the kubeconfig gives the endpoint and CA and the providers authenticate as a
cloud identity, the way provider-kubernetes' client (which provider-helm uses
too) builds its REST config:

- ``AWSWebIdentityCredentials``: the provider pods' own AWS credentials (IRSA or
  EKS Pod Identity), source ``InjectedIdentity``, the only source it takes; the
  token is signed for the cluster named by the kubeconfig's current context.
- ``GoogleApplicationCredentials``: the pods' Google default credentials (GKE
  Workload Identity), source ``InjectedIdentity``.
- ``AzureWorkloadIdentityCredentials``: refuses ``InjectedIdentity``; source
  ``Secret``, a key holding the identity's settings as JSON (clientId, tenantId,
  federatedTokenFile, authorityHost, serverId), no secret value among them.

A cluster reached by ``kubeconfig.providerConfigName`` uses ProviderConfigs
that exist already: nothing is composed.
"""

from __future__ import annotations

from typing import Any

from function.composed import Composed
from function.context import ClusterContext
from function.errors import ClaimError
from function.models.common import Cloud
from function.models.platform import (
    CLOUD_IDENTITY,
    ClusterSpec,
    IdentityType,
    Kubeconfig,
    PlatformSpec,
)
from function.wrap import provider_config_key

PROVIDER_CONFIG_APIS = (
    ("helm", "helm.crossplane.io/v1beta1"),
    ("kubernetes", "kubernetes.crossplane.io/v1alpha1"),
)

INJECTED_IDENTITY = "InjectedIdentity"
SECRET_SOURCE = "Secret"  # noqa: S105  # a credentials source, not a secret

# Where each identity type takes its credentials from (provider-kubernetes'
# client refuses every other source for the first and InjectedIdentity for the last).
IDENTITY_SOURCES = {
    IdentityType.AWS_WEB_IDENTITY: INJECTED_IDENTITY,
    IdentityType.GOOGLE_APPLICATION: INJECTED_IDENTITY,
    IdentityType.AZURE_WORKLOAD_IDENTITY: SECRET_SOURCE,
}

# What grants each identity type its credentials, for messages.
_IDENTITY_FROM = {
    IdentityType.AWS_WEB_IDENTITY: "the provider pods' IRSA or EKS Pod Identity role",
    IdentityType.GOOGLE_APPLICATION: "the provider pods' GKE Workload Identity",
    IdentityType.AZURE_WORKLOAD_IDENTITY: "a Microsoft Entra workload identity federated "
    "with the provider pods' service account",
}
AZURE_SETTINGS = "clientId, tenantId, federatedTokenFile, authorityHost and serverId"


def provider_configs(ctx: ClusterContext) -> list[Composed]:
    """The provider-helm and provider-kubernetes ProviderConfigs of ``ctx``'s cluster.

    Nothing when the claim names existing ProviderConfigs (``kubeconfig.providerConfigName``).
    """
    if provider_config_spec(ctx.spec.kubeconfig) is None:
        return []
    return [
        Composed(
            key=provider_config_key(ctx.name, provider),
            body={
                "apiVersion": api,
                "kind": "ProviderConfig",
                "metadata": {"labels": ctx.labels(f"providerconfig-{provider}")},
                "spec": provider_config_spec(ctx.spec.kubeconfig),
            },
        )
        for provider, api in PROVIDER_CONFIG_APIS
    ]


def provider_config_spec(kubeconfig: Kubeconfig) -> dict[str, Any] | None:
    """The ``spec`` both providers' ProviderConfigs share, or None when none is composed.

    ``kubeconfig`` has passed ``errors`` (the claim's validation): an identity
    comes with its Secret where its type needs one.
    """
    ref = kubeconfig.secret_ref
    if ref is None:
        return None
    spec: dict[str, Any] = {
        "credentials": {
            "source": SECRET_SOURCE,
            "secretRef": {"name": ref.name, "namespace": ref.namespace, "key": ref.key},
        }
    }
    identity = kubeconfig.identity
    if identity is not None:
        block: dict[str, Any] = {
            "type": identity.type.value,
            "source": IDENTITY_SOURCES[identity.type],
        }
        if block["source"] == SECRET_SOURCE:
            settings = identity.secret_ref
            if settings is None:  # refused by ``errors`` before planning
                msg = f"{identity.type.value} needs identity.secretRef"
                raise ValueError(msg)
            block["secretRef"] = {
                "name": settings.name,
                "namespace": settings.namespace,
                "key": settings.key,
            }
        spec["identity"] = block
    return spec


def errors(spec: PlatformSpec) -> list[ClaimError]:
    """The identity rules of every cluster entry (the XRD's CEL rules, with the fix)."""
    return [
        error
        for i, cluster in enumerate(spec.clusters)
        for error in cluster_errors(f"spec.clusters[{i}]", cluster)
    ]


def cluster_errors(path: str, cluster: ClusterSpec) -> list[ClaimError]:
    """Refuse an identity that cannot reach ``cluster`` (at ``path``), saying what would."""
    identity = cluster.kubeconfig.identity
    if identity is None:
        return []
    at = f"{path}.kubeconfig.identity"
    out: list[ClaimError] = []
    if cluster.kubeconfig.secret_ref is None:
        out.append(
            ClaimError(
                at,
                "needs kubeconfig.secretRef, a kubeconfig Secret with the cluster's endpoint "
                "and CA that the composed ProviderConfigs pair with the identity; "
                "ProviderConfigs named by kubeconfig.providerConfigName carry their own "
                "identity: remove kubeconfig.identity, or name the kubeconfig Secret in "
                "secretRef instead of providerConfigName",
            )
        )
    wanted = CLOUD_IDENTITY.get(cluster.cloud)
    if wanted is None:
        out.append(
            ClaimError(
                f"{at}.type",
                f"{identity.type.value} cannot reach a cluster whose cloud is "
                f"{Cloud.EXISTING.value}: existing clusters are reached by their kubeconfig "
                "alone; remove kubeconfig.identity and give the kubeconfig a token or client "
                "certificate, or declare the cluster's cloud (aws, gcp or azure)",
            )
        )
    elif identity.type is not wanted:
        out.append(
            ClaimError(
                f"{at}.type",
                f"{identity.type.value} cannot reach a cluster whose cloud is "
                f"{cluster.cloud.value}; use {wanted.value} ({_IDENTITY_FROM[wanted]})",
            )
        )
    needs_secret = IDENTITY_SOURCES[identity.type] == SECRET_SOURCE
    if needs_secret and identity.secret_ref is None:
        out.append(
            ClaimError(
                f"{at}.secretRef",
                f"required for {identity.type.value}: provider-helm and provider-kubernetes "
                "read the workload identity's settings from a Secret key, JSON with "
                f"{AZURE_SETTINGS} (no secret value); name that Secret key here",
            )
        )
    if not needs_secret and identity.secret_ref is not None:
        out.append(
            ClaimError(
                f"{at}.secretRef",
                f"only for {IdentityType.AZURE_WORKLOAD_IDENTITY.value}: {identity.type.value} "
                f"takes its credentials from {_IDENTITY_FROM[identity.type]}, never from a "
                "Secret; remove identity.secretRef",
            )
        )
    return out
