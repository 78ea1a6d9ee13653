"""Wrap in-cluster work into provider-helm Releases and provider-kubernetes Objects.

Every in-cluster resource goes through these two functions, so the choice of
ProviderConfig, management policies and gates is made in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from function import naming, overrides
from function.composed import Composed, Gate, Need
from function.context import ClusterContext, InClusterTarget
from function.models.common import StackDeletionPolicy

HELM_API = "helm.crossplane.io/v1beta1"
KUBERNETES_API = "kubernetes.crossplane.io/v1alpha2"

# The shared stack is not deleted through the provider unless the claim asks
# (stackDeletionPolicy: Delete): the cluster is not ours to tear down, and a
# Delete waits for an API server that may be gone; see the README's removal
# section. A model's own objects are always deleted with it (``DELETABLE``).
IN_CLUSTER_MANAGEMENT_POLICIES = ["Observe", "Create", "Update", "LateInitialize"]
DELETABLE_MANAGEMENT_POLICIES = [*IN_CLUSTER_MANAGEMENT_POLICIES, "Delete"]


def management_policies(target: InClusterTarget) -> list[str]:
    """The management policies of an in-cluster resource on ``target``."""
    if target.deletable:
        return list(DELETABLE_MANAGEMENT_POLICIES)
    return list(IN_CLUSTER_MANAGEMENT_POLICIES)


# provider-helm retries a failed install or upgrade only with a rollback limit.
ROLLBACK_LIMIT = 3


def provider_config_key(cluster: str, provider: str) -> str:
    """Key of the ProviderConfig composed for ``cluster`` (provider: helm | kubernetes)."""
    return naming.key(cluster, "providerconfig", provider)


def release_key(cluster: str, component: str) -> str:
    """Key of the Release of ``component`` on ``cluster``."""
    return naming.key(cluster, "release", component)


def object_key(cluster: str, name: str) -> str:
    """Key of the Object ``name`` on ``cluster``."""
    return naming.key(cluster, "object", name)


def target_of(ctx: ClusterContext) -> InClusterTarget:
    """The in-cluster target of a platform cluster entry."""
    composes = ctx.spec.kubeconfig.secret_ref is not None
    return InClusterTarget(
        cluster=ctx.name,
        helm_provider_config=ctx.helm_provider_config or "",
        kubernetes_provider_config=ctx.kubernetes_provider_config or "",
        labels=ctx.platform.labels() | {naming.LABEL_CLUSTER: ctx.name},
        helm_gates=(Gate(provider_config_key(ctx.name, "helm"), Need.EXISTS),) if composes else (),
        kubernetes_gates=(
            (Gate(provider_config_key(ctx.name, "kubernetes"), Need.EXISTS),) if composes else ()
        ),
        deletable=ctx.spec.stack_deletion_policy is StackDeletionPolicy.DELETE,
    )


def release(  # the Release's knobs are all meaningful
    ctx: ClusterContext | InClusterTarget,
    component: str,
    *,
    chart: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
    values_from: Iterable[Mapping[str, Any]] = (),
    wait: bool = False,
    wait_timeout: str = "10m",
    after: Iterable[Gate] = (),
    skip_crds: bool = False,
) -> Composed:
    """A provider-helm Release of the catalogue chart ``chart`` as ``component``."""
    inputs = ctx.platform.inputs if isinstance(ctx, ClusterContext) else ctx.inputs
    ref = ctx.platform.inputs.chart(chart) if isinstance(ctx, ClusterContext) else ctx.chart(chart)
    target = target_of(ctx) if isinstance(ctx, ClusterContext) else ctx
    if inputs is not None:
        values = overrides.apply(component, values, inputs.spec.values)
    # provider-helm takes OCI registries (oci://...) in the same repository field.
    chart_spec = {"name": ref.chart, "repository": ref.repository, "version": ref.version}
    for_provider: dict[str, Any] = {"chart": chart_spec, "namespace": namespace}
    if values:
        for_provider["values"] = dict(values)
    vf = [dict(v) for v in values_from]
    if vf:
        for_provider["valuesFrom"] = vf
    if wait:
        for_provider["wait"] = True
        for_provider["waitTimeout"] = wait_timeout
    if skip_crds:
        for_provider["skipCRDs"] = True
    body = {
        "apiVersion": HELM_API,
        "kind": "Release",
        "metadata": {
            "labels": target.role_labels(f"release-{component}"),
            "annotations": {naming.EXTERNAL_NAME: component},
        },
        "spec": {
            "forProvider": for_provider,
            "managementPolicies": management_policies(target),
            "rollbackLimit": ROLLBACK_LIMIT,
            "providerConfigRef": {"name": target.helm_provider_config},
        },
    }
    return Composed(
        key=release_key(target.key_prefix, component),
        body=body,
        gates=(*target.helm_gates, *after),
        latch=_unknown_provider_config(target.helm_provider_config),
    )


def k8s_object(
    ctx: ClusterContext | InClusterTarget,
    name: str,
    manifest: Mapping[str, Any],
    *,
    after: Iterable[Gate] = (),
    readiness: str = "DeriveFromObject",
    cel_query: str | None = None,
    deletable: bool = False,
) -> Composed:
    """A provider-kubernetes Object that manages ``manifest`` on the cluster.

    With ``cel_query``, readiness is that CEL query on the observed object.
    With ``deletable``, it is deleted with its composite whatever the target's stack policy.
    """
    target = target_of(ctx) if isinstance(ctx, ClusterContext) else ctx
    body = {
        "apiVersion": KUBERNETES_API,
        "kind": "Object",
        "metadata": {"labels": target.role_labels(f"object-{name}")},
        "spec": {
            "forProvider": {"manifest": dict(manifest)},
            "managementPolicies": (
                list(DELETABLE_MANAGEMENT_POLICIES) if deletable else management_policies(target)
            ),
            "readiness": (
                {"policy": "DeriveFromCelQuery", "celQuery": cel_query}
                if cel_query
                else {"policy": readiness}
            ),
            "providerConfigRef": {"name": target.kubernetes_provider_config},
        },
    }
    return Composed(
        key=object_key(target.key_prefix, name),
        body=body,
        gates=(*target.kubernetes_gates, *after),
        latch=_unknown_provider_config(target.kubernetes_provider_config),
    )


def _unknown_provider_config(name: str) -> tuple[tuple[str, ...], ...]:
    """Latch the ProviderConfig reference while its (generated) name is not observed."""
    return (("spec", "providerConfigRef", "name"),) if not name else ()
