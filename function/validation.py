"""Turn raw XR specs into typed models, or into ClaimErrors that name the field path.

Pydantic checks types, enums, bounds and patterns; the cross-field rules below
mirror the CEL rules the generated XRDs publish, so a claim that slipped past
admission (or an XR from an older schema) gets the same answer here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from function.context import ResolvedComponents, resolve_node_pool
from function.errors import ClaimError, ClaimErrors, format_path
from function.models.common import BlockStorage, Cloud, Ingress, Mesh, ObjectStorage, Serving
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.models.platform import PlatformSpec
from function.quantity import parse_quantity

M = TypeVar("M", bound=BaseModel)

# Friendlier words for the pydantic error types users meet most.
_FIELD_MESSAGES = {
    "subnetIds": "at least one subnet is required",
    "clusters": "at least one cluster is required",
}
_PATTERN_HINTS = {
    "name": "must be a DNS-1123 label: lowercase letters, digits and '-', starting and "
    "ending with a letter or digit",
    "size": "must be a Kubernetes quantity such as 50Gi",
    "memory": "must be a Kubernetes quantity such as 16Gi",
    "cpu": "must be a Kubernetes quantity such as 4 or 500m",
    "maxStorageRequest": "must be a Kubernetes quantity such as 100Gi",
}


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    loc = error["loc"]
    leaf = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "too_short" and leaf in _FIELD_MESSAGES:
        return _FIELD_MESSAGES[leaf]
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(leaf, f"must match {error['ctx']['pattern']}")
        return f"{error['input']!r} {hint}"
    if kind == "string_too_long":
        return f"{error['input']!r} is too long: at most {error['ctx']['max_length']} characters"
    if kind == "enum":
        return f"{error['input']!r} is not one of {error['ctx']['expected']}"
    if kind == "missing":
        return "required field is missing"
    return f"{error['msg']} (got {error.get('input')!r})"


def parse(model: type[M], raw: Any, root: str = "spec") -> M:  # noqa: ANN401  # untrusted input
    """Validate ``raw`` as ``model``; raise ClaimErrors with field paths on failure."""
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        errors = [
            ClaimError(format_path(tuple(e["loc"]), root), _message(e))
            for e in exc.errors(include_url=False)
            # pydantic reports each failed branch of `X | None`; keep the useful one.
            if not (e["type"] == "none_required")
        ]
        raise ClaimErrors(errors) from None


def check_platform(spec: PlatformSpec, inputs: FunctionInput) -> list[ClaimError]:
    """The cross-field rules of an XOllamaPlatform spec."""
    errors: list[ClaimError] = []
    seen: dict[str, int] = {}
    for i, cluster in enumerate(spec.clusters):
        path = f"spec.clusters[{i}]"
        if cluster.name in seen:
            errors.append(
                ClaimError(
                    f"{path}.name",
                    f"duplicate cluster name {cluster.name!r} (also spec.clusters"
                    f"[{seen[cluster.name]}]); cluster names must be unique",
                )
            )
        seen.setdefault(cluster.name, i)
        for cloud in (Cloud.AWS, Cloud.GCP, Cloud.AZURE):
            block = getattr(cluster, cloud.value)
            if cluster.cloud is cloud and block is None:
                errors.append(
                    ClaimError(f"{path}.{cloud.value}", f"required when cloud is {cloud.value}")
                )
            if cluster.cloud is not cloud and block is not None:
                errors.append(
                    ClaimError(
                        f"{path}.{cloud.value}",
                        f"must not be set when cloud is {cluster.cloud.value}",
                    )
                )
        if cluster.cloud is Cloud.EXISTING:
            if cluster.gpu_node_pool is not None:
                errors.append(
                    ClaimError(
                        f"{path}.gpuNodePool",
                        "not supported when cloud is existing: the cluster brings its own nodes",
                    )
                )
        elif cluster.region is None:
            errors.append(
                ClaimError(f"{path}.region", f"required when cloud is {cluster.cloud.value}")
            )
        kube = cluster.kubeconfig
        if (kube.secret_ref is None) == (kube.provider_config_name is None):
            errors.append(
                ClaimError(
                    f"{path}.kubeconfig",
                    "set exactly one of secretRef or providerConfigName",
                )
            )
        pool = resolve_node_pool(spec, cluster, inputs)
        if pool is not None and pool.min_nodes > pool.max_nodes:
            errors.append(
                ClaimError(
                    f"{path}.gpuNodePool.minNodes",
                    f"minNodes ({pool.min_nodes}) must not exceed maxNodes ({pool.max_nodes})",
                )
            )
    errors.extend(_check_models(spec, set(seen)))
    errors.extend(_check_components(spec))
    return errors


def _check_models(spec: PlatformSpec, clusters: set[str]) -> list[ClaimError]:
    errors: list[ClaimError] = []
    seen: dict[str, int] = {}
    limit = parse_quantity(spec.policy.max_storage_request)
    components = ResolvedComponents.resolve(spec.profile, spec.components)
    for i, model in enumerate(spec.models):
        path = f"spec.models[{i}]"
        if model.name in seen:
            errors.append(
                ClaimError(
                    f"{path}.name",
                    f"duplicate model name {model.name!r} (also spec.models[{seen[model.name]}]);"
                    " model names must be unique",
                )
            )
        seen.setdefault(model.name, i)
        for j, target in enumerate(model.clusters):
            if target not in clusters:
                errors.append(
                    ClaimError(
                        f"{path}.clusters[{j}]",
                        f"unknown cluster {target!r}; known clusters: {', '.join(sorted(clusters))}",
                    )
                )
        errors.extend(_check_scaling(path, model.scaling.min_replicas, model.scaling.max_replicas))
        if (
            components.policies.value == "enforce"
            and parse_quantity(model.storage.size) > limit
        ):
            errors.append(
                ClaimError(
                    f"{path}.storage.size",
                    f"{model.storage.size} exceeds policy.maxStorageRequest "
                    f"{spec.policy.max_storage_request} (policy require-storage-quota, enforce); "
                    "request less storage or raise policy.maxStorageRequest",
                )
            )
    return errors


def _check_scaling(path: str, minimum: int, maximum: int) -> list[ClaimError]:
    if minimum > maximum:
        return [
            ClaimError(
                f"{path}.scaling.minReplicas",
                f"minReplicas ({minimum}) must not exceed maxReplicas ({maximum})",
            )
        ]
    return []


def _check_components(spec: PlatformSpec) -> list[ClaimError]:
    c = ResolvedComponents.resolve(spec.profile, spec.components)
    errors: list[ClaimError] = []
    if c.object_storage is ObjectStorage.ROOK_CEPH and c.block_storage is not BlockStorage.ROOK_CEPH:
        errors.append(
            ClaimError(
                "spec.components.objectStorage",
                f"rook-ceph object storage needs blockStorage rook-ceph (got "
                f"{c.block_storage.value}); choose objectStorage cloud or minio, or blockStorage "
                "rook-ceph",
            )
        )
    if c.object_storage is ObjectStorage.MINIO and c.block_storage is BlockStorage.NONE:
        errors.append(
            ClaimError(
                "spec.components.objectStorage",
                "minio needs a block storage class for its volumes; set blockStorage to "
                "rook-ceph or longhorn",
            )
        )
    if c.serving is Serving.KNATIVE and c.ingress is Ingress.NONE and c.mesh is not Mesh.ISTIO:
        errors.append(
            ClaimError(
                "spec.components.serving",
                "knative needs a networking layer; set ingress contour or mesh istio",
            )
        )
    return errors


def check_fleet(spec: FleetSpec) -> list[ClaimError]:
    """The cross-field rules of an XOllamaFleet spec."""
    return _check_scaling("spec", spec.scaling.min_replicas, spec.scaling.max_replicas)


def parse_platform(raw: Any, inputs: FunctionInput) -> PlatformSpec:  # noqa: ANN401
    """A valid PlatformSpec, or ClaimErrors naming every problem found."""
    spec = parse(PlatformSpec, raw)
    errors = check_platform(spec, inputs)
    if errors:
        raise ClaimErrors(errors)
    return spec


def parse_fleet(raw: Any) -> FleetSpec:  # noqa: ANN401
    """A valid FleetSpec, or ClaimErrors naming every problem found."""
    spec = parse(FleetSpec, raw)
    errors = check_fleet(spec)
    if errors:
        raise ClaimErrors(errors)
    return spec


def parse_input(raw: Any) -> FunctionInput:  # noqa: ANN401
    """The function input, or ClaimErrors with paths under ``input``."""
    body = {"spec": raw.get("spec", {})} if isinstance(raw, Mapping) else raw
    return parse(FunctionInput, body, root="input")
