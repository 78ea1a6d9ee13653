"""Turn raw XR specs into typed models, or into InvalidClaimError that name the field path.

Pydantic checks types, enums, bounds and patterns; the cross-field rules below
mirror the CEL rules the generated XRDs publish, so a claim that slipped past
admission (or an XR from an older schema) gets the same answer here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from function import access, exclusive, fit, valueschemas
from function.context import ResolvedComponents, effective_components, resolve_node_pool
from function.errors import ClaimError, InvalidClaimError, bounded, format_path
from function.fleet import checks as fleet_checks
from function.models.common import (
    LABEL_VALUE_PATTERN,
    BlockStorage,
    Cloud,
    Cni,
    Distribution,
    Ingress,
    Mesh,
    ObjectStorage,
    Serving,
)
from function.models.fleet import FleetSpec
from function.models.input import (
    CHART_COMPONENTS,
    COMPONENT_CHARTS,
    INPUT_GROUP,
    INPUT_KIND,
    INPUT_VERSION,
    FunctionInput,
)
from function.models.platform import ClusterSpec, ModelSpec, PlatformSpec
from function.stack import gateway

M = TypeVar("M", bound=BaseModel)

# Friendlier words for the pydantic error types users meet most.
_FIELD_MESSAGES = {
    "subnetIds": "at least one subnet is required",
    "clusters": "at least one cluster is required",
}
_PATTERN_HINTS = {
    "name": "must be a DNS-1123 label: lowercase letters, digits and '-', starting and "
    "ending with a letter or digit",
    "size": "must be a Kubernetes quantity greater than zero, such as 50Gi",
    "host": "must be a DNS name: lowercase letters, digits, '-' and '.', each dot-separated "
    "label at most 63 characters, starting and ending with a letter or digit",
    "tlsSecretName": "must be a Secret name (a DNS-1123 subdomain), or namespace/name with a "
    "namespace of at most 63 characters",
    "allowedSourceRanges": "must be an IPv4 or IPv6 address or CIDR block such as "
    "203.0.113.0/24 or 2001:db8::/32",
    "bucket": "must be a bucket name: lowercase letters, digits, '.' and '-', starting and "
    "ending with a letter or digit, no two dots in a row",
    "memory": "must be a Kubernetes quantity such as 16Gi",
    "cpu": "must be a Kubernetes quantity such as 4 or 500m",
    "maxStorageRequest": "must be a Kubernetes quantity such as 100Gi",
}


# An offending value is echoed in a message at most this long (its repr).
MAX_ECHO_CHARS = 80


def _shown(value: Any) -> str:  # an offending input value
    return bounded(repr(value), MAX_ECHO_CHARS)


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    loc = error["loc"]
    leaf = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "too_short" and leaf in _FIELD_MESSAGES:
        return _FIELD_MESSAGES[leaf]
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(leaf, f"must match {error['ctx']['pattern']}")
        return f"{_shown(error['input'])} {hint}"
    if kind == "string_too_long":
        return (
            f"{_shown(error['input'])} is too long: at most {error['ctx']['max_length']} characters"
        )
    if kind == "enum":
        return f"{_shown(error['input'])} is not one of {error['ctx']['expected']}"
    if kind == "missing":
        return "required field is missing"
    return f"{error['msg']} (got {_shown(error.get('input'))})"


def plain(value: Any) -> Any:  # JSON
    """JSON with sorted keys and whole numbers as ints: protobuf Structs hold only doubles."""
    if isinstance(value, dict):
        return {k: plain(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parse(model: type[M], raw: Any, root: str = "spec") -> M:  # untrusted input
    """Validate ``raw`` as ``model``; raise InvalidClaimError with field paths on failure.

    Validation is strict, as the API server is: "3" is not an integer and "yes"
    is not a boolean, so a claim the XRD would refuse is refused here too.
    """
    try:
        text = json.dumps(plain(raw if raw is not None else {}))
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        errors = [
            ClaimError(format_path(tuple(e["loc"]), root), _message(e))
            for e in exc.errors(include_url=False)
            # pydantic reports each failed branch of `X | None`; keep the useful one.
            if not (e["type"] == "none_required")
        ]
        raise InvalidClaimError(errors) from None


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
        errors.extend(_check_distribution(spec, path, cluster))
        if cluster.aws is not None:
            errors.extend(_unique(f"{path}.aws.subnetIds", cluster.aws.subnet_ids, "subnet"))
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
    errors.extend(access.errors(spec))
    errors.extend(_check_same_cluster(spec))
    errors.extend(_check_models(spec, set(seen)))
    errors.extend(_check_components(spec))
    errors.extend(_check_federated_credentials(spec))
    errors.extend(_unique("spec.gateway.teams", [t.name for t in spec.gateway.teams], "team"))
    errors.extend(gateway.errors(spec))
    exposure = spec.gateway.exposure
    if exposure is not None:
        errors.extend(fleet_checks.exposure_value_errors(exposure, "spec.gateway.exposure"))
    if not errors:  # the fit check needs well-formed models and clusters
        errors.extend(fit.errors(spec, inputs))
    return errors


def _check_same_cluster(spec: PlatformSpec) -> list[ClaimError]:
    """Refuse a cluster listed twice: the same kubeconfig, or the same cloud cluster.

    Two entries for one cluster would compose the shared stack and every model
    twice into it. The identities are those of the one-platform-per-cluster rule
    (``exclusive.identities``): the kubeconfig Secret key or ProviderConfig, the
    EKS region and name, the GKE project, location and name, the AKS cluster id.
    """
    errors: list[ClaimError] = []
    first: dict[str, int] = {}
    for j, cluster in enumerate(spec.clusters):
        raw = cluster.model_dump(by_alias=True, mode="json", exclude_none=True)
        mine = sorted(exclusive.identities(raw))
        shared = sorted((first[identity], identity) for identity in mine if identity in first)
        if shared:
            i, identity = shared[0]
            errors.append(
                ClaimError(
                    f"spec.clusters[{j}]",
                    f"cluster {cluster.name!r} is the same cluster as spec.clusters[{i}] "
                    f"({spec.clusters[i].name!r}): both use the {identity}, so everything "
                    "would be composed into it twice; list each cluster once and name it in "
                    "the models that should run there",
                )
            )
        for identity in mine:
            first.setdefault(identity, j)
    return errors


# Microsoft Entra allows at most 20 federated identity credentials per managed identity;
# the AKS model cache gives each model on a cluster one (clouds/azure.py).
AZURE_FEDERATED_CREDENTIALS = 20


def _check_federated_credentials(spec: PlatformSpec) -> list[ClaimError]:
    """Refuse more models on an AKS cluster with a bucket than its cache identity can trust."""
    platform = ResolvedComponents.resolve(spec.profile, spec.components)
    errors = []
    for i, cluster in enumerate(spec.clusters):
        if cluster.cloud is not Cloud.AZURE or not cluster.bucket.enabled:
            continue
        if effective_components(platform, cluster).object_storage is not ObjectStorage.CLOUD:
            continue
        models = [m for m in spec.models if not m.clusters or cluster.name in m.clusters]
        if len(models) > AZURE_FEDERATED_CREDENTIALS:
            errors.append(
                ClaimError(
                    f"spec.clusters[{i}].bucket",
                    f"{len(models)} models run on AKS cluster {cluster.name!r}, but its model "
                    f"cache identity can trust at most {AZURE_FEDERATED_CREDENTIALS} (one "
                    "federated credential per model, Entra's limit); spread the models over "
                    "clusters or set bucket.enabled: false",
                )
            )
    return errors


def _check_distribution(spec: PlatformSpec, path: str, cluster: ClusterSpec) -> list[ClaimError]:
    """Distribution rules: existing clusters only; Cilium on K3s only without flannel."""
    errors: list[ClaimError] = []
    if cluster.distribution is not None and cluster.cloud is not Cloud.EXISTING:
        errors.append(
            ClaimError(
                f"{path}.distribution",
                f"only for existing clusters; a {cluster.cloud.value} cluster's distribution "
                "is its cloud's",
            )
        )
    k3s = cluster.distribution is Distribution.K3S
    if cluster.k3s is not None and not k3s:
        errors.append(ClaimError(f"{path}.k3s", "only for distribution k3s"))
    cni = ResolvedComponents.resolve(spec.profile, spec.components).cni
    if k3s and cni is Cni.CILIUM and not (cluster.k3s and cluster.k3s.flannel_disabled):
        errors.append(
            ClaimError(
                f"{path}.k3s.flannelDisabled",
                "cni cilium on K3s needs flannel off: start the K3s servers with "
                "--flannel-backend=none --disable-network-policy and set k3s.flannelDisabled: "
                "true, or set spec.components.cni: none to keep flannel",
            )
        )
    return errors


def _unique(path: str, values: list[str], what: str) -> list[ClaimError]:
    first: dict[str, int] = {}
    errors = []
    for i, value in enumerate(values):
        if value in first:
            errors.append(
                ClaimError(f"{path}[{i}]", f"duplicate {what} {value!r} (also [{first[value]}])")
            )
        first.setdefault(value, i)
    return errors


def _check_models(spec: PlatformSpec, clusters: set[str]) -> list[ClaimError]:
    errors: list[ClaimError] = []
    seen: dict[str, int] = {}
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
                        f"unknown cluster {target!r}; known clusters: "
                        + ", ".join(sorted(clusters)),
                    )
                )
        errors.extend(_check_scaling(path, model.scaling.min_replicas, model.scaling.max_replicas))
        errors.extend(_model_policy_errors(spec, components, model, path))
    return errors


def _model_policy_errors(
    spec: PlatformSpec, components: ResolvedComponents, model: ModelSpec, path: str
) -> list[ClaimError]:
    """The fleet's render-time policy, applied to a platform model entry."""
    as_fleet = FleetSpec.model_validate(
        {
            **model.model_dump(
                by_alias=True,
                mode="json",
                include={"model", "replicas", "resources", "storage", "scaling", "exposure"},
                exclude_none=True,
            ),
            "target": {"providerConfigName": "unused"},
            "serving": components.serving.value,
            "ingress": components.ingress.value,
            "policies": components.policies.value,
            "policy": {"maxStorageRequest": spec.policy.max_storage_request},
        }
    )
    return [
        ClaimError(path + e.path.removeprefix("spec"), e.message)
        for e in [
            *fleet_checks.scale_to_zero_errors(as_fleet),
            *fleet_checks.exposure_errors(as_fleet),
            *fleet_checks.policy_errors(as_fleet),
        ]
    ]


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
    if (
        c.object_storage is ObjectStorage.ROOK_CEPH
        and c.block_storage is not BlockStorage.ROOK_CEPH
    ):
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
    """The cross-field rules and render-time policy of an XOllamaFleet spec."""
    return [
        *fleet_checks.spec_errors(spec),
        *fleet_checks.policy_errors(spec),
        *fit.fleet_errors(spec),
    ]


def parse_platform(raw: Any, inputs: FunctionInput) -> PlatformSpec:
    """A valid PlatformSpec, or InvalidClaimError naming every problem found."""
    spec = parse(PlatformSpec, raw)
    errors = check_platform(spec, inputs)
    if errors:
        raise InvalidClaimError(errors)
    return spec


def parse_fleet(raw: Any) -> FleetSpec:
    """A valid FleetSpec, or InvalidClaimError naming every problem found."""
    spec = parse(FleetSpec, raw)
    errors = check_fleet(spec)
    if errors:
        raise InvalidClaimError(errors)
    return spec


def parse_input(raw: Any) -> FunctionInput:
    """The function input, or InvalidClaimError with paths under ``input``.

    An input that names its apiVersion or kind must name this function's
    (``ollama.fn.openhands.ai/v1beta1``, ``Input``); its image must be pinned.
    """
    errors = []
    if isinstance(raw, Mapping):
        expected = {"apiVersion": f"{INPUT_GROUP}/{INPUT_VERSION}", "kind": INPUT_KIND}
        for field, want in expected.items():
            if field in raw and raw[field] != want:
                errors.append(
                    ClaimError(
                        f"input.{field}",
                        f"{_shown(raw[field])} is not this function's input; use {want}",
                    )
                )
        body = {"spec": raw.get("spec", {})}
    else:
        body = raw
    try:
        inputs = parse(FunctionInput, body, root="input")
    except InvalidClaimError as exc:
        raise InvalidClaimError([*errors, *exc.errors]) from None
    errors.extend(fleet_checks.image_errors(inputs))
    errors.extend(chart_override_errors(inputs))
    errors.extend(values_override_errors(inputs))
    if errors:
        raise InvalidClaimError(errors)
    return inputs


def chart_override_errors(inputs: FunctionInput) -> list[ClaimError]:
    """``spec.charts``: every key names a chart of the catalogue, or the override does nothing."""
    return [
        ClaimError(
            # A key that is not printable stays out of the path; the message shows it escaped.
            format_path((component,), root="input.spec.charts")
            if component.isprintable()
            else "input.spec.charts",
            f"no component is named {_shown(component)}, so this override would never be "
            f"used; the keys are the catalogue's components: {', '.join(CHART_COMPONENTS)}",
        )
        for component in sorted(inputs.spec.charts)
        if component not in CHART_COMPONENTS
    ]


def values_override_errors(inputs: FunctionInput) -> list[ClaimError]:
    """``spec.values``: known components, each override fitting its chart's published schema."""
    errors = []
    for component, values in sorted(inputs.spec.values.items()):
        chart_name = COMPONENT_CHARTS.get(component)
        if chart_name is None:
            errors.append(
                ClaimError(
                    format_path((component,), root="input.spec.values"),
                    f"no component is named {_shown(component)}; the keys are Release "
                    f"names: {', '.join(sorted(COMPONENT_CHARTS))}",
                )
            )
            continue
        chart = inputs.chart(chart_name)
        errors.extend(valueschemas.override_errors(component, chart.chart, chart.version, values))
    return errors


def meta_errors(name: str, labels: Mapping[str, str]) -> list[ClaimError]:
    """The XR's name and claim labels become label values: at most 63 characters each."""
    errors = [
        ClaimError(f"metadata.labels[{key!r}]", f"{_shown(value)} {_LABEL_VALUE_HINT}")
        for key, value in sorted(labels.items())
        if not is_label_value(value)
    ]
    if not is_label_value(name):
        errors.append(
            ClaimError(
                "metadata.name",
                f"{_shown(name)} {_LABEL_VALUE_HINT}: the name labels every composed "
                "resource; use a shorter claim name",
            )
        )
    return errors


_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)
_LABEL_VALUE_HINT = (
    "must be a Kubernetes label value: at most 63 characters, letters, digits, '-', '_' "
    "and '.', starting and ending with a letter or digit"
)


def is_label_value(value: str) -> bool:
    """Tell whether ``value`` may be a Kubernetes label value."""
    return len(value) <= 63 and _LABEL_VALUE.match(value) is not None
