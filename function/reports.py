"""What providers report: readers of an observed resource's ``status.atProvider``.

The plan copies a few reported values into what it composes: a bucket's ARN
into the cache policy, a service account's member into IAM grants and its
e-mail into a fleet's cache block, a managed identity's principal and client
ids, a container's resource id as a role's scope, a cluster's OIDC issuer and
workload pool. They are read here, and only here, from observed resources the
codec decoded (``codec.ObservedResource``). This module is a leaf: the cloud
builders, the cache backends, readiness and status read through it, and it
imports none of them.

A reported value is a short, printable ASCII string without spaces (an ARN,
an e-mail, an id, a URL); anything else is no report, so nothing is composed
from it and what exists keeps its value (``Composed.latch``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The ``status.atProvider`` fields the plan reads, by what they are.
ARN = "arn"  # S3 Bucket
MEMBER = "member"  # GCP ServiceAccount: ``serviceAccount:<e-mail>``
EMAIL = "email"  # GCP ServiceAccount
PRINCIPAL_ID = "principalId"  # Azure UserAssignedIdentity
CLIENT_ID = "clientId"  # Azure UserAssignedIdentity
RESOURCE_ID = "resourceManagerId"  # Azure Container: a role assignment's scope
OIDC_ISSUER = "oidcIssuerUrl"  # AKS KubernetesCluster

# What a provider reports and the plan copies into a body (ARNs, e-mails, ids,
# URLs) is printable ASCII without spaces, and short.
MAX_REPORTED_CHARS = 512


def at_provider(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The ``status.atProvider`` of an observed resource ({} when absent or malformed)."""
    status = (obj or {}).get("status")
    found = status.get("atProvider") if isinstance(status, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def reported(obj: Mapping[str, Any] | None, field: str) -> str | None:
    """The string ``status.atProvider.<field>`` of an observed resource, if it is one.

    A value that is empty, too long, or not printable ASCII without spaces (a
    newline, a non-ASCII character) is no report: the plan treats it as
    unknown, so nothing is composed from it and what exists keeps its value.
    """
    value = at_provider(obj).get(field)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REPORTED_CHARS:
        return None
    return value if value.isascii() and value.isprintable() and " " not in value else None


def gke_workload_identity(cluster: Mapping[str, Any] | None) -> bool | None:
    """Tell whether an observed GKE ``Cluster`` has a Workload Identity pool.

    None while the cluster reports nothing (not observed yet, or its report
    went missing): unknown, never "off", so nothing is rewritten on a flicker.
    Readiness does not matter: an observed-only cluster's report is complete.
    """
    seen = at_provider(cluster)
    if not seen:
        return None
    config = seen.get("workloadIdentityConfig")
    pool = config.get("workloadPool") if isinstance(config, Mapping) else None
    return bool(pool)


def aks_workload_identity(cluster: Mapping[str, Any] | None) -> bool | None:
    """Tell whether an observed AKS ``KubernetesCluster`` has the OIDC issuer and workload identity.

    None while the cluster reports nothing (not observed yet, or its report
    went missing): unknown, never "off", so nothing is rewritten on a flicker.
    """
    flags = at_provider(cluster)
    if not flags:
        return None
    if flags.get("oidcIssuerEnabled") is False or flags.get("workloadIdentityEnabled") is False:
        return False
    return reported(cluster, OIDC_ISSUER) is not None
