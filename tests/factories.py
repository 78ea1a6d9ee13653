"""Build typed claims and resolved contexts for unit tests."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from function import clouds, modelcache
from function.codec import ObservedResource, observed_resource, to_struct
from function.composed import Composed
from function.context import (
    ClusterContext,
    PlatformContext,
    ResolvedComponents,
    effective_components,
    resolve_node_pool,
)
from function.models.input import FunctionInput
from function.models.platform import PlatformSpec
from function.readiness import select
from scripts.stage import MAX_ROUNDS, observe

CLOUD_BLOCKS: dict[str, dict[str, Any]] = {
    "aws": {
        "region": "us-east-1",
        "aws": {"clusterName": "eks-prod", "subnetIds": ["subnet-0a1b2c3d4e5f60718"]},
    },
    "gcp": {"region": "us-central1", "gcp": {"project": "my-project", "clusterName": "gke-prod"}},
    "azure": {
        "region": "eastus",
        "azure": {
            "resourceGroupName": "rg-ollama",
            "clusterId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
            "rg-ollama/providers/Microsoft.ContainerService/managedClusters/aks-prod",
        },
    },
    "existing": {},
}


def cluster_dict(name: str = "c1", cloud: str = "aws", **extra: Any) -> dict[str, Any]:
    """A valid cluster entry for ``cloud``."""
    return {
        "name": name,
        "cloud": cloud,
        "kubeconfig": {
            "secretRef": {"name": f"{name}-kubeconfig", "namespace": "crossplane-system"}
        },
        **copy.deepcopy(CLOUD_BLOCKS[cloud]),
        **extra,
    }


def platform_spec(
    clouds: tuple[str, ...] = ("aws",), profile: str = "production", **extra: Any
) -> PlatformSpec:
    """A valid PlatformSpec with one cluster per cloud."""
    raw = {
        "profile": profile,
        "clusters": [cluster_dict(f"{c}-1", c) for c in clouds],
        "models": [{"name": "llama2", "model": "llama2"}],
        **extra,
    }
    return PlatformSpec.model_validate(raw)


def cluster_context(
    cloud: str = "aws",
    profile: str = "production",
    components: dict[str, str] | None = None,
    inputs: FunctionInput | None = None,
    **cluster_extra: Any,
) -> ClusterContext:
    """A resolved ClusterContext for one cluster of ``cloud``, ProviderConfigs observed."""
    raw = {
        "profile": profile,
        "clusters": [cluster_dict(f"{cloud}-1", cloud, **cluster_extra)],
        "components": components or {},
    }
    return context_of(raw, inputs or FunctionInput())


def context_of(
    raw: dict[str, Any],
    inputs: FunctionInput,
    *,
    claim: tuple[str, str] | None = ("demo", "team-a"),
    provider_configs: tuple[str, str] | None = None,
    with_models: bool = False,
) -> ClusterContext:
    """The resolved context of the first cluster of the platform spec ``raw``.

    ``claim`` is (name, namespace), None for an XR without one; ``provider_configs``
    (helm, kubernetes) defaults to ``<cluster>-helm-pc`` and ``<cluster>-kubernetes-pc``;
    ``with_models`` places the spec's models on the cluster.
    """
    spec = PlatformSpec.model_validate(raw)
    resolved = ResolvedComponents.resolve(spec.profile, spec.components)
    claim_name, claim_namespace = claim or ("", "")
    platform = PlatformContext(
        name="demo-abc12",
        uid="7f0c2d4e-0000-4000-8000-000000000001",
        profile=spec.profile,
        components=resolved,
        inputs=inputs,
        max_storage_request=spec.policy.max_storage_request,
        claim_name=claim_name,
        claim_namespace=claim_namespace,
    )
    cluster = spec.clusters[0]
    helm, kubernetes = provider_configs or (
        f"{cluster.name}-helm-pc",
        f"{cluster.name}-kubernetes-pc",
    )
    return ClusterContext(
        platform=platform,
        spec=cluster,
        components=effective_components(resolved, cluster),
        node_pool=resolve_node_pool(spec, cluster, inputs),
        helm_provider_config=helm,
        kubernetes_provider_config=kubernetes,
        models=tuple(m.name for m in spec.models) if with_models else (),
    )


def decoded(obj: dict[str, Any]) -> ObservedResource:
    """``obj`` as the function reads it from a RunFunctionRequest: through the codec."""
    return observed_resource(to_struct(obj))


def reporting(key: str, kind: str, **at_provider: Any) -> dict[str, ObservedResource]:
    """One Ready observed resource ``key`` that reports ``at_provider``, decoded."""
    status = {"conditions": [{"type": "Ready", "status": "True"}], "atProvider": at_provider}
    return {key: decoded({"kind": kind, "status": status})}


def cluster_composed(ctx: ClusterContext, observed: dict[str, Any]) -> list[Composed]:
    """What the planner composes for the cluster's cloud, then for its model cache."""
    return [*clouds.build(ctx, observed), *modelcache.backend(ctx).composes(ctx, observed)]


def cluster_chain(
    cloud: str, observed: dict[str, Any] | None = None, models: tuple[str, ...] = ("llama2",)
) -> dict[str, Composed]:
    """By key, what a cluster of ``cloud`` serving ``models`` gets for its cloud and its cache."""
    ctx = dataclasses.replace(cluster_context(cloud), models=models)
    return {c.key: c for c in cluster_composed(ctx, observed or {})}


def converged(
    compose: Callable[[dict[str, ObservedResource]], list[Composed]], xr_name: str = "demo-abc12"
) -> dict[str, ObservedResource]:
    """What Crossplane observes once everything ``compose`` asks for exists and is ready.

    Each round the simulated providers of ``scripts.stage`` report what real
    ones do (ARNs, e-mails, ids, the OIDC issuer, the workload pool), and the
    function reads it decoded, as from a request.
    """
    observed: dict[str, ObservedResource] = {}
    for _ in range(MAX_ROUNDS):
        emitted = select(compose(observed), observed).emitted
        if {c.key for c in emitted} == set(observed):
            return observed
        observed = {c.key: decoded(observe(c.key, c.body, xr_name, ready=True)) for c in emitted}
    msg = f"{xr_name} did not converge in {MAX_ROUNDS} rounds"
    raise RuntimeError(msg)


# The model gateway's per-claim routing (composition resource name parts): it names
# the claim's models and teams, so it is deleted with the claim whatever the stack
# policy, like the models' own objects (README "Model gateway", "Removal").
GATEWAY_ROUTING = (
    "-object-gateway-route-",
    "-object-gateway-backend-",
    "-object-gateway-aibackend-",
    "-object-gateway-keys",
    "-object-gateway-quotas",
)
