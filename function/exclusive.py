"""One platform per cluster.

Release names, ClusterPolicies and model namespaces are cluster-wide, so two
XOllamaPlatforms targeting the same cluster would overwrite each other's
objects. The function asks Crossplane for every other XOllamaPlatform (a
required resource, ``REQUIREMENT``) and refuses a platform whose cluster an
older platform already targets.

Two cluster entries are the same cluster when they reach it the same way (the
same kubeconfig Secret key, or the same ProviderConfig) or name the same cloud
cluster (EKS region and name, GKE project, location and name, AKS cluster id).
The older platform (creation time, then name) keeps the cluster; the newer one
gets a Fatal result naming both claims and the cluster, so the platform that
works keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from function.errors import ClaimError

REQUIREMENT = "other-xollamaplatforms"
PLATFORM_API = "openhands.ai/v1alpha1"
PLATFORM_KIND = "XOllamaPlatform"


def identities(cluster: Mapping[str, Any]) -> set[str]:
    """Every way this cluster entry identifies its cluster."""
    out: set[str] = set()
    kube = _map(cluster.get("kubeconfig"))
    ref = _map(kube.get("secretRef"))
    if ref.get("name"):
        key = ref.get("key") or "kubeconfig"
        out.add(f"kubeconfig Secret {ref.get('namespace', '')}/{ref['name']} key {key}")
    if kube.get("providerConfigName"):
        out.add(f"ProviderConfig {kube['providerConfigName']}")
    cloud = cluster.get("cloud")
    aws, gcp, azure = (_map(cluster.get(c)) for c in ("aws", "gcp", "azure"))
    if cloud == "aws" and aws.get("clusterName"):
        out.add(f"EKS cluster {cluster.get('region', '')}/{aws['clusterName']}")
    if cloud == "gcp" and gcp.get("clusterName"):
        where = f"{gcp.get('project', '')}/{cluster.get('region', '')}"
        out.add(f"GKE cluster {where}/{gcp['clusterName']}")
    if cloud == "azure" and azure.get("clusterId"):
        out.add(f"AKS cluster {str(azure['clusterId']).lower()}")
    return out


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a map, else an empty one (other platforms are untrusted input)."""
    return value if isinstance(value, Mapping) else {}


def _claim(xr: Mapping[str, Any]) -> str:
    """``claim <namespace>/<name> (XOllamaPlatform <xr>)`` or the XR alone."""
    meta = _map(xr.get("metadata"))
    labels = _map(meta.get("labels"))
    name = labels.get("crossplane.io/claim-name")
    namespace = labels.get("crossplane.io/claim-namespace")
    xr_name = meta.get("name", "?")
    if name:
        return f"claim {namespace}/{name} (XOllamaPlatform {xr_name})"
    return f"XOllamaPlatform {xr_name}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _age(xr: Mapping[str, Any]) -> tuple[str, str]:
    meta = _map(xr.get("metadata"))
    # RFC 3339 UTC timestamps sort as strings; a platform not yet created sorts last.
    return (str(meta.get("creationTimestamp") or "9999"), str(meta.get("name") or ""))


def conflicts(xr: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> list[ClaimError]:
    """Errors for each cluster of ``xr`` an older platform among ``others`` already targets."""
    me = _map(xr.get("metadata")).get("name")
    mine = [c for c in _list(_map(xr.get("spec")).get("clusters")) if isinstance(c, Mapping)]
    errors: list[ClaimError] = []
    for other in sorted((_map(o) for o in others), key=_age):
        if _map(other.get("metadata")).get("name") == me or _age(other) > _age(xr):
            continue
        theirs = _list(_map(other.get("spec")).get("clusters"))
        for i, cluster in enumerate(mine):
            for their in theirs:
                if not isinstance(their, Mapping):
                    continue
                shared = sorted(identities(cluster) & identities(their))
                if shared:
                    errors.append(
                        ClaimError(
                            f"spec.clusters[{i}]",
                            f"cluster {cluster.get('name')!r} ({shared[0]}) is already served by "
                            f"{_claim(other)} as its cluster {their.get('name')!r}; "
                            f"{_claim(xr)} cannot share it: one platform per cluster "
                            "(Release names, ClusterPolicies and model namespaces are "
                            "cluster-wide). Add the models to that platform, or target "
                            "another cluster",
                        )
                    )
                    break
    return errors
