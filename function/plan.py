"""Pure planning: (typed claim, observed state, input) -> desired resources and status.

Nothing here knows about gRPC. ``fn.py`` decodes the request, calls one of the
two planners, and encodes the Plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from function import access, clouds, fit, fleet, modelcache, naming, stack, status, usages
from function.composed import UNKNOWN, Composed, Gate, Need, Unknown
from function.context import (
    PROMETHEUS_ADDRESS,
    ClusterContext,
    PlatformContext,
    ResolvedComponents,
    effective_components,
    resolve_node_pool,
)
from function.errors import ClaimError, InvalidClaimError
from function.fleet.routing import address as fleet_address
from function.fleet.routing import endpoint as fleet_endpoint
from function.models.common import Observability, Serving
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.models.platform import ClusterSpec, ModelSpec, PlatformSpec
from function.readiness import Selection, is_ready, select, waiting_reason
from function.stack import gateway
from function.status import Condition, model_targets
from function.wrap import object_key, provider_config_key, release_key

FLEET_API = "openhands.ai/v1alpha1"
FLEET_KIND = "XOllamaFleet"
PROGRESSING = "Progressing"
ADVISORIES = "Advisories"

Observed = Mapping[str, Mapping[str, Any]]


@dataclass(slots=True)
class Plan:
    """Everything the runner writes into the response."""

    resources: list[Composed]
    ready: dict[str, bool]
    status: dict[str, Any]
    conditions: list[Condition] = field(default_factory=list)
    connection_details: dict[str, str] = field(default_factory=dict)
    composite_ready: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class XrMeta:
    """The parts of the observed XR's metadata the plan uses."""

    name: str
    uid: str = ""
    claim_name: str = ""
    claim_namespace: str = ""


def _provider_configs(ctx: ClusterContext) -> list[Composed]:
    return access.provider_configs(ctx)


def _observed_name(observed: Observed, key: str) -> str | None:
    obj = observed.get(key)
    if obj is None:
        return None
    name = (obj.get("metadata") or {}).get("name")
    return str(name) if name else None


def _cluster_context(
    platform: PlatformContext, spec: PlatformSpec, cluster: ClusterSpec, observed: Observed
) -> ClusterContext:
    if cluster.kubeconfig.secret_ref is not None:
        helm_pc = _observed_name(observed, provider_config_key(cluster.name, "helm"))
        k8s_pc = _observed_name(observed, provider_config_key(cluster.name, "kubernetes"))
    else:
        helm_pc = k8s_pc = cluster.kubeconfig.provider_config_name
    sources = sorted(
        {
            cidr
            for m in spec.models
            if m.exposure is not None and cluster in model_targets(spec, m)
            for cidr in m.exposure.allowed_source_ranges
        }
    )
    targeting = [m for m in spec.models if cluster in model_targets(spec, m)]
    gpu_models = any(m.resources.gpu for m in targeting)
    pool = resolve_node_pool(spec, cluster, platform.inputs)
    explicit_min = cluster.gpu_node_pool is not None and cluster.gpu_node_pool.min_nodes is not None
    if pool is not None and not gpu_models and not explicit_min:
        pool = replace(pool, min_nodes=0)  # no idle GPU nodes for nothing
    return ClusterContext(
        platform=platform,
        spec=cluster,
        gpu_models=gpu_models,
        models=tuple(m.name for m in targeting),
        public_sources=tuple(sources),
        components=effective_components(platform.components, cluster),
        node_pool=pool,
        helm_provider_config=helm_pc,
        kubernetes_provider_config=k8s_pc,
    )


def fleet_key(cluster: str, model: str) -> str:
    """Composition resource name of the XOllamaFleet of ``model`` on ``cluster``."""
    return naming.key(cluster, "fleet", model)


def fleet_spec(
    ctx: ClusterContext, model: ModelSpec, observed: Observed | None = None
) -> dict[str, Any]:
    """The spec of the XOllamaFleet serving ``model`` on ``ctx``'s cluster.

    ``cache`` is set for clusters with a bucket once what it names is known, and
    for clusters whose object storage is the MinIO tenant.
    """
    return _fleet_spec(ctx, model, _fleet_cache(ctx, observed or {}))


def _fleet_spec(
    ctx: ClusterContext, model: ModelSpec, cache: dict[str, Any] | Unknown | None
) -> dict[str, Any]:
    c = ctx.components
    body = model.model_dump(
        by_alias=True,
        mode="json",
        include={"model", "replicas", "resources", "storage", "scaling", "exposure"},
        exclude_none=True,
    )
    target: dict[str, Any] = {
        "providerConfigName": ctx.kubernetes_provider_config or "",
        "helmProviderConfigName": ctx.helm_provider_config or "",
        "cloud": ctx.cloud.value,
        "clusterName": ctx.name,
        "acceleratorCount": ctx.node_pool.accelerator_count if ctx.node_pool else 1,
    }
    if ctx.node_pool is not None:
        target["instanceType"] = ctx.node_pool.instance_type
    if c.observability is not Observability.NONE:
        target["prometheusAddress"] = PROMETHEUS_ADDRESS
    # An UNKNOWN cache is left out: an existing fleet keeps what it carries (see _fleet).
    return {
        "name": model.name,
        **body,
        "target": target,
        **({"cache": cache} if isinstance(cache, dict) else {}),
        "serving": c.serving.value,
        "mesh": c.mesh.value,
        "ingress": c.ingress.value,
        "observability": c.observability.value,
        "policies": c.policies.value,
        "policy": {"maxStorageRequest": ctx.platform.max_storage_request},
        "defaultStorageClass": ctx.storage_class(),
    }


def _fleet_cache(ctx: ClusterContext, observed: Observed) -> dict[str, Any] | Unknown | None:
    """The fleets' ``cache`` block, as the cluster's one cache backend gives it."""
    return modelcache.backend(ctx).fleet_cache(ctx, observed)


def _fleet(ctx: ClusterContext, model: ModelSpec, observed: Observed) -> Composed:
    """The XOllamaFleet of ``model`` on ``ctx``'s cluster, gated on what it runs on.

    With a bucket it also waits for the model's identity chain, so the first
    pod already restores from (and saves to) the cache.
    """
    gates = [
        Gate(provider_config_key(ctx.name, "helm"), Need.EXISTS),
        Gate(provider_config_key(ctx.name, "kubernetes"), Need.EXISTS),
        Gate(naming.key(ctx.name, "nodepool"), Need.READY),
        Gate(release_key(ctx.name, "gpu-operator"), Need.READY),
        Gate(release_key(ctx.name, "istiod"), Need.READY),
        Gate(release_key(ctx.name, "linkerd-control-plane"), Need.READY),
    ]
    if ctx.components.serving is Serving.KNATIVE:
        gates.append(Gate(object_key(ctx.name, "knative-serving"), Need.READY))
    else:
        gates.append(Gate(release_key(ctx.name, "keda"), Need.READY))
        gates.extend(modelcache.backend(ctx).gates(ctx, model.name, observed))
    cache = _fleet_cache(ctx, observed)
    return Composed(
        key=fleet_key(ctx.name, model.name),
        body={
            "apiVersion": FLEET_API,
            "kind": FLEET_KIND,
            "metadata": {
                "labels": {**ctx.labels("fleet"), naming.LABEL_MODEL: model.name},
            },
            "spec": _fleet_spec(ctx, model, cache),
        },
        gates=tuple(gates),
        latch=_fleet_latch(ctx, cache),
    )


def _fleet_latch(
    ctx: ClusterContext, cache: dict[str, Any] | Unknown | None
) -> tuple[tuple[str, ...], ...]:
    """What an existing fleet keeps while the values it carries are not observed."""
    latch: list[tuple[str, ...]] = []
    if cache is UNKNOWN:
        latch.append(("spec", "cache"))
    if not ctx.kubernetes_provider_config:
        latch.append(("spec", "target", "providerConfigName"))
    if not ctx.helm_provider_config:
        latch.append(("spec", "target", "helmProviderConfigName"))
    return tuple(latch)


def _readiness(selection: Selection, observed: Observed) -> dict[str, bool]:
    return {c.key: is_ready(observed.get(c.key)) for c in selection.emitted}


def _waiting_message(selection: Selection, ready: Mapping[str, bool], observed: Observed) -> str:
    parts = [
        f"{key} ({waiting_reason(observed.get(key))})"
        for key, ok in sorted(ready.items())
        if not ok
    ]
    parts += [f"{key} (waits for {', '.join(d)})" for key, d in sorted(selection.held.items())]
    shown = parts[:5]
    more = f" and {len(parts) - len(shown)} more" if len(parts) > len(shown) else ""
    return "waiting for " + "; ".join(shown) + more if parts else ""


def _key_collisions(spec: PlatformSpec, owned: Mapping[str, list[str]]) -> list[ClaimError]:
    """Refuse names whose composition keys collide (keys join names with '-').

    Clusters ``a`` and ``a-fleet-b`` with models ``b-fleet-c`` and ``c`` would
    otherwise compose one fleet where two are meant, and report both ready.
    """
    index = {c.name: i for i, c in enumerate(spec.clusters)}
    first: dict[str, str] = {}
    collided: set[str] = set()
    errors: list[ClaimError] = []
    for cluster, keys in owned.items():
        errors += _collisions_within(spec, cluster, keys)
        for key in keys:
            other = first.setdefault(key, cluster)
            if other != cluster:
                collided.add(key)
                if _twin_of(key) in collided:
                    continue  # a ClusterUsage's twin collides with its first: said once
                errors.append(
                    ClaimError(
                        f"spec.clusters[{index[cluster]}].name",
                        f"cluster {cluster!r} and cluster {other!r} (spec.clusters"
                        f"[{index[other]}]) both compose a resource named {key!r}; rename a "
                        "cluster or model so that no name is another's prefix joined with '-'",
                    )
                )
    return errors


def _twin_of(key: str) -> str:
    """The key of which ``key`` is the ClusterUsage twin (``usages.pair``), else ""."""
    return key.replace("-also-used-by-", "-used-by-", 1) if "-also-used-by-" in key else ""


def _collisions_within(spec: PlatformSpec, cluster: str, keys: list[str]) -> list[ClaimError]:
    """Refuse model names whose resources on one cluster share a name.

    Models ``x`` and ``x-objects`` would give the usage ``<pool>-used-by-fleet-x-objects``
    twice (the pool's usage by the second fleet, the objects' usage by the first),
    and one would silently replace the other.
    """
    seen: set[str] = set()
    collided: set[str] = set()
    errors: list[ClaimError] = []
    for key in keys:
        if key not in seen:
            seen.add(key)
            continue
        collided.add(key)
        if _twin_of(key) in collided:
            continue  # a ClusterUsage's twin collides with its first: said once
        involved = [
            (i, m.name)
            for i, m in enumerate(spec.models)
            if f"-fleet-{m.name}-" in f"-{key}-"
        ]
        i, name = involved[-1] if involved else (0, "")
        others = ", ".join(repr(n) for _, n in involved[:-1]) or "another model"
        errors.append(
            ClaimError(
                f"spec.models[{i}].name",
                f"models {name!r} and {others} compose two resources named {key!r} on cluster "
                f"{cluster!r}; rename one so that no model's name is another's followed by "
                "'-objects' or another suffix joined with '-'",
            )
        )
    return errors


def progressing(waiting: str, *, ready: bool) -> Condition:
    """The ``Progressing`` condition, sent on every call.

    Crossplane keeps a custom condition's last value until the function sends
    it again, so it is always sent: True while something is awaited (naming
    it), False once everything composed is ready.
    """
    if ready:
        message = "every composed resource is ready"
        return Condition(PROGRESSING, status=False, reason="Converged", message=message)
    return Condition(PROGRESSING, status=True, reason="Creating", message=waiting)


def advisories(messages: list[str]) -> Condition:
    """The ``Advisories`` condition, sent on every call: what needs a person's attention.

    Persistent situations (an unknown instance type, workload identity off on a
    cluster) live here rather than in a Warning result on every reconcile, which
    Crossplane would turn into the same Event again and again; the runner sends
    the Warning once, when the message changes.
    """
    if messages:
        message = "; ".join(messages)
        return Condition(ADVISORIES, status=True, reason="AttentionNeeded", message=message)
    return Condition(
        ADVISORIES, status=False, reason="NothingToReport", message="nothing needs attention"
    )


def plan_platform(
    xr: XrMeta, spec: PlatformSpec, inputs: FunctionInput, observed: Observed
) -> Plan:
    """Plan an XOllamaPlatform: per cluster its cloud, stack and fleets, gated and ordered."""
    platform = PlatformContext(
        name=xr.name,
        uid=xr.uid,
        profile=spec.profile,
        components=ResolvedComponents.resolve(spec.profile, spec.components),
        inputs=inputs,
        max_storage_request=spec.policy.max_storage_request,
        claim_name=xr.claim_name,
        claim_namespace=xr.claim_namespace,
    )
    contexts = [_cluster_context(platform, spec, c, observed) for c in spec.clusters]
    contexts = [replace(ctx, gateway=gateway.enabled(spec, ctx)) for ctx in contexts]
    candidates: list[Composed] = []
    owned: dict[str, list[str]] = {}
    for ctx in contexts:
        per_cluster = [
            *_provider_configs(ctx),
            *clouds.build(ctx, observed),
            *stack.build(ctx),
            *modelcache.backend(ctx).composes(ctx, observed),
        ]
        per_cluster += [
            _fleet(ctx, m, observed) for m in spec.models if ctx.spec in model_targets(spec, m)
        ]
        upstreams = _upstreams(ctx, spec)
        per_cluster += gateway.build(ctx, spec, upstreams, _retired(ctx, upstreams, observed))
        per_cluster += usages.build(ctx, per_cluster)
        owned[ctx.name] = [c.key for c in per_cluster]
        candidates += per_cluster
    errors = _key_collisions(spec, owned)
    if errors:
        raise InvalidClaimError(errors)
    selection = select(candidates, observed)
    ready = _readiness(selection, observed)
    report = status.platform_status(contexts, spec, owned, selection, ready, observed)
    composite_ready = not selection.held and all(ready.values())
    message = _waiting_message(selection, ready, observed)
    warnings = [*fit.warnings(spec, inputs), *_cache_warnings(spec, contexts, observed)]
    conditions = [
        *report.conditions,
        progressing(message, ready=composite_ready),
        advisories(warnings),
    ]
    return Plan(
        resources=sorted(selection.emitted, key=lambda c: c.key),
        ready=ready,
        status=report.status,
        conditions=conditions,
        connection_details=report.connection_details,
        composite_ready=composite_ready,
        warnings=warnings,
    )


def _upstreams(ctx: ClusterContext, spec: PlatformSpec) -> list[gateway.Upstream]:
    """The models the cluster's gateway routes to: name, Ollama tag, Service address."""
    return [
        gateway.Upstream(m.name, m.model, *fleet_address(m.name, ctx.components.serving))
        for m in spec.models
        if ctx.spec in model_targets(spec, m)
    ]


def _retired(
    ctx: ClusterContext, upstreams: list[gateway.Upstream], observed: Observed
) -> list[gateway.Retired]:
    """Removed models whose gateway objects an observed route may still name (``retiring``)."""
    kept = gateway.retiring(ctx, {u.name for u in upstreams}, observed)
    return [
        gateway.Retired(gateway.Upstream(m, "", *fleet_address(m, ctx.components.serving)), names)
        for m, names in kept.items()
    ]


def _cache_warnings(
    spec: PlatformSpec, contexts: list[ClusterContext], observed: Observed
) -> list[str]:
    """One message per cluster whose bucket cannot serve as the model cache, and why."""
    out = []
    for i, ctx in enumerate(contexts):
        reason = modelcache.backend(ctx).warning(ctx, observed)
        if reason:
            out.append(f"spec.clusters[{i}] ({spec.clusters[i].name}): {reason}")
    return out


def plan_fleet(xr: XrMeta, spec: FleetSpec, inputs: FunctionInput, observed: Observed) -> Plan:
    """Plan an XOllamaFleet: the model's objects on its cluster.

    Objects are named after ``spec.name`` when set (the platform sets the model's
    name), so namespaces stay readable; else after the XR.
    """
    base = spec.name or xr.name
    candidates = fleet.build(base, spec, inputs, observed)
    selection = select(candidates, observed)
    ready = _readiness(selection, observed)
    composite_ready = not selection.held and all(ready.values())
    endpoint = fleet_endpoint(base, spec)
    message = _waiting_message(selection, ready, observed)
    warnings = fit.fleet_warnings(spec)
    return Plan(
        resources=sorted(selection.emitted, key=lambda c: c.key),
        ready=ready,
        status={"endpoint": endpoint, "ready": composite_ready, "model": spec.model},
        conditions=[
            Condition(
                "ModelReady",
                composite_ready,
                "Available" if composite_ready else "Creating",
                message or f"{spec.model} serves at {endpoint}",
            ),
            progressing(message, ready=composite_ready),
            advisories(warnings),
        ],
        connection_details={"endpoint": endpoint},
        composite_ready=composite_ready,
        warnings=warnings,
    )
