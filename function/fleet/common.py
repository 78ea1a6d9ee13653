"""Names, labels and the Object wrapper every fleet module shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from function import naming
from function.composed import Composed, Gate
from function.context import InClusterTarget
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.wrap import k8s_object, object_key

KEY_PREFIX = "model"
DEFAULT_CLUSTER = "fleet"

WORKLOAD = "ollama"  # Deployment, Service, Knative Service, ScaledObject, HTTPProxy
PORT = 11434
POLLING_INTERVAL = 15


def namespace_for(xr_name: str) -> str:
    """Return the namespace of a fleet's objects: ``ollama-<xr name>`` as a DNS label."""
    return naming.model_namespace(xr_name)


def instance_for(xr_name: str) -> str:
    """Return a fleet's ``app.kubernetes.io/instance`` value (and HTTPProxy host label)."""
    return naming.dns_label(xr_name)


def target_for(xr_name: str, spec: FleetSpec, inputs: FunctionInput) -> InClusterTarget:
    """Return a fleet's in-cluster target: its ProviderConfigs, keys ``model-...``."""
    t = spec.target
    labels = {naming.LABEL_FLEET: label_value(xr_name)}
    if t.cluster_name:  # a platform's fleet: its ClusterUsages select by cluster too
        labels[naming.LABEL_CLUSTER] = t.cluster_name
    return InClusterTarget(
        cluster=t.cluster_name or DEFAULT_CLUSTER,
        helm_provider_config=t.helm_provider_config_name or t.provider_config_name,
        kubernetes_provider_config=t.provider_config_name,
        labels=labels,
        key_prefix_override=KEY_PREFIX,
        inputs=inputs,
        deletable=True,  # removing a model removes its objects from the cluster
    )


def key(name: str) -> str:
    """Return the composition resource name of the fleet object ``name``."""
    return object_key(KEY_PREFIX, name)


def wrap(
    target: InClusterTarget,
    name: str,
    manifest: Mapping[str, Any],
    *,
    after: tuple[Gate, ...] = (),
    readiness: str = "SuccessfulCreate",
    cel: str | None = None,
    latch: tuple[tuple[str, ...], ...] = (),
) -> Composed:
    """Wrap ``manifest`` in an Object; ``cel`` makes readiness a CEL query on the object.

    ``latch`` names body paths kept from the existing Object (``Composed.latch``).
    """
    item = k8s_object(target, name, manifest, after=after, readiness=readiness, cel_query=cel)
    return replace(item, latch=latch) if latch else item


def label_value(value: str) -> str:
    """Return ``value`` if it is a valid label value, else a stable DNS label of it."""
    return naming.label_value(value)


def labels(xr_name: str) -> dict[str, str]:
    """Return the labels of every fleet object; pods' include require-gpu-limits' match."""
    return {
        "app.kubernetes.io/name": WORKLOAD,
        "app.kubernetes.io/instance": instance_for(xr_name),
        "app.kubernetes.io/managed-by": "crossplane",
        naming.MODEL_POD_LABEL: naming.MODEL_POD_LABEL_VALUE,
    }


def selector(xr_name: str) -> dict[str, str]:
    """Return the labels that select a fleet's pods."""
    return {
        "app.kubernetes.io/name": WORKLOAD,
        "app.kubernetes.io/instance": instance_for(xr_name),
    }


def meta(name: str, ns: str, xr_name: str, **extra: Any) -> dict[str, Any]:
    """Return the metadata of a namespaced fleet object."""
    return {"name": name, "namespace": ns, "labels": labels(xr_name), **extra}
