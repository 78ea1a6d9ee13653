"""Pieces every cloud builder shares: resource skeletons, tags, GPU node labels.

Every cloud resource is a classic, cluster-scoped upjet managed resource. It
carries the cluster's role labels (so selectors find it), the cluster's
ProviderConfig, and, where the name matters, an explicit external name; it
never carries ``metadata.name``, which Crossplane generates.
"""

from __future__ import annotations

from typing import Any

from function import naming
from function.composed import Composed, Gate
from function.context import ClusterContext, NodePool
from function.errors import ClaimError
from function.models.common import ObjectStorage

# Node pools are sized by the cluster autoscaler after creation. Their initial
# size goes only in spec.initProvider, which upjet applies on create and then
# ignores, but only while the same field is absent from spec.forProvider.
# LateInitialize would copy the observed size into spec.forProvider and make
# the provider reset the autoscaler's size on every reconcile, so node pools
# leave it out (crossplane/crossplane design one-pager-ignore-changes, EKS
# NodeGroup example; provider-upjet-aws #1469, provider-upjet-azure #636).
AUTOSCALED_MANAGEMENT_POLICIES = ["Observe", "Create", "Update", "Delete"]

# Kubernetes labels on every GPU node, on every cloud.
GPU_NODE_LABELS = {naming.GPU_LABEL: "true", "nvidia.com/gpu.present": "true"}

# Tag key that names the claim's cluster entry on cloud resources.
CLUSTER_TAG = "ollama-cluster"


def managed_resource(
    ctx: ClusterContext,
    api_version: str,
    kind: str,
    role: str,
    for_provider: dict[str, Any],
    *,
    external_name: str | None = None,
    init_provider: dict[str, Any] | None = None,
    management_policies: list[str] | None = None,
) -> dict[str, Any]:
    """Build the body of one cloud managed resource of this cluster.

    Args:
        ctx: The cluster the resource belongs to.
        api_version: The resource's apiVersion (a classic ``*.upbound.io`` group).
        kind: The resource's kind.
        role: The role label value, which selectors of dependent resources match.
        for_provider: ``spec.forProvider``.
        external_name: The cloud name, set as the ``crossplane.io/external-name``
            annotation; None lets the provider use the generated name or its own id.
        init_provider: ``spec.initProvider``: fields set on create only.
        management_policies: ``spec.managementPolicies``; None keeps the default ``["*"]``.

    Returns:
        The body, without ``metadata.name``.

    """
    metadata: dict[str, Any] = {"labels": ctx.labels(role)}
    if external_name is not None:
        metadata["annotations"] = {naming.EXTERNAL_NAME: external_name}
    spec: dict[str, Any] = {
        "forProvider": for_provider,
        "providerConfigRef": {"name": ctx.spec.provider_config_name},
    }
    if init_provider:
        spec["initProvider"] = init_provider
    if management_policies is not None:
        spec["managementPolicies"] = list(management_policies)
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def item_resource(
    ctx: ClusterContext,
    api_version: str,
    kind: str,
    role: str,
    item: str,
    *,
    for_provider: dict[str, Any],
    gates: tuple[Gate, ...] = (),
    latch: tuple[tuple[str, ...], ...] = (),
) -> Composed:
    """Build the resource of ``role`` for one item of a family: a model, a node policy or role.

    Its role label is ``<role>-<item>`` (a DNS label) and its key
    ``<cluster>-<role>-<item>``, so each item's resource is found and selected
    apart from its siblings.

    Args:
        ctx: The cluster the resource belongs to.
        api_version: The resource's apiVersion.
        kind: The resource's kind.
        role: The family's role.
        item: The item: a model name, or the short name of a policy or role.
        for_provider: ``spec.forProvider``.
        gates: What the resource waits for.
        latch: Body paths whose observed-derived value is unknown on this call.

    Returns:
        The composed resource.

    """
    body = managed_resource(ctx, api_version, kind, naming.dns_label(role, item), for_provider)
    return Composed(key=naming.key(ctx.name, role, item), body=body, gates=gates, latch=latch)


def unknown(value: str | None, *fields: str) -> tuple[tuple[str, ...], ...]:
    """The ``spec.forProvider`` paths to latch while a reported ``value`` is unknown."""
    return tuple(("spec", "forProvider", f) for f in fields) if value is None else ()


def cloud_tags(ctx: ClusterContext) -> dict[str, str]:
    """Return tags (AWS, Azure) that identify the claim and the cluster entry."""
    return {**ctx.platform.tags(), CLUSTER_TAG: ctx.name}


def wants_bucket(ctx: ClusterContext) -> bool:
    """Tell whether this cluster gets a cloud bucket for model artefacts."""
    return ctx.spec.bucket.enabled and ctx.components.object_storage is ObjectStorage.CLOUD


def node_pool(ctx: ClusterContext) -> NodePool:
    """Return the cluster's resolved GPU node pool (every cloud cluster has one)."""
    if ctx.node_pool is None:  # only existing clusters have none
        path = f"cluster {ctx.name}"
        raise ClaimError(path, "a cloud cluster needs a GPU node pool")
    return ctx.node_pool


def region(ctx: ClusterContext) -> str:
    """Return the cluster's region (AWS region, GCP location, Azure location)."""
    if not ctx.spec.region:
        raise missing(ctx, "region")
    return ctx.spec.region


def missing(ctx: ClusterContext, field: str) -> ClaimError:
    """Return the error for a cloud cluster without a field it needs (``region``, ``aws``, ...)."""
    return ClaimError(f"cluster {ctx.name}.{field}", f"required when cloud is {ctx.cloud}")
