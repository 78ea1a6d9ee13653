"""How a model leaves its cluster: deletion order for its objects.

Every fleet Object has ``Delete`` in its management policies (``common``), so
removing the model from a claim, or deleting the claim, deletes its workload,
Service, scaler, route and monitor, and the Namespace with what is left in it.
The Namespace is the last of them to go (Kubernetes empties it first), so its
Object stands for "the model's objects are gone": a ClusterUsage keeps the
provider-kubernetes ProviderConfig until then, because without it the provider
could not reach the cluster to finish the deletion. The platform adds the same
edge for the GPU node pool (``function.usages``).
"""

from __future__ import annotations

from typing import Any

from function import naming
from function.composed import Composed, Gate, Need
from function.context import InClusterTarget
from function.fleet.common import KEY_PREFIX, key
from function.usages import pair
from function.wrap import KUBERNETES_API

USAGE_API = "protection.crossplane.io/v1beta1"
PROVIDER_CONFIG_API = "kubernetes.crossplane.io/v1alpha1"
NAMESPACE_ROLE = "object-namespace"


def namespace_ref(target: InClusterTarget) -> dict[str, Any]:
    """Select this fleet's Namespace Object (the last of its objects to be deleted)."""
    return {
        "apiVersion": KUBERNETES_API,
        "kind": "Object",
        "resourceSelector": {
            "matchControllerRef": True,
            "matchLabels": target.role_labels(NAMESPACE_ROLE),
        },
    }


def usages(target: InClusterTarget) -> list[Composed]:
    """Keep the fleet's provider-kubernetes ProviderConfig until its objects are gone.

    Composed twice, as every ClusterUsage edge (``function.usages.pair`` says why):
    other fleets on the cluster hold the same ProviderConfig.
    """
    return pair(
        Composed(
            key=naming.key(KEY_PREFIX, "usage", "providerconfig"),
            body={
                "apiVersion": USAGE_API,
                "kind": "ClusterUsage",
                "metadata": {"labels": target.role_labels("usage-providerconfig")},
                "spec": {
                    "of": {
                        "apiVersion": PROVIDER_CONFIG_API,
                        "kind": "ProviderConfig",
                        "resourceRef": {"name": target.kubernetes_provider_config},
                    },
                    "by": namespace_ref(target),
                    "reason": "the model's objects are deleted through this ProviderConfig",
                    "replayDeletion": True,
                },
            },
            gates=(Gate(key("namespace"), Need.EXISTS),),
        ),
        naming.key(KEY_PREFIX, "usage", "providerconfig", "twin"),
    )
