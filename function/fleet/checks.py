"""Render-time checks of a fleet: policy, replica bounds, KEDA triggers, the image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from function.errors import ClaimError
from function.fleet.scaling import (
    CPU_TRIGGER,
    KEDA_METRIC_TYPES,
    KEDA_TRIGGER_FIELDS,
    POD_METRIC_TRIGGERS,
    REQUEST_RATE_TRIGGER,
)
from function.models.common import Ingress, Policies, Serving
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.quantity import parse_quantity


def policy_errors(spec: FleetSpec) -> list[ClaimError]:
    """Find, at render time, what the cluster's enforced Kyverno policies would refuse.

    Only under ``policies: enforce``; audit and none report in the cluster instead.
    """
    if spec.policies is not Policies.ENFORCE:
        return []
    errors: list[ClaimError] = []
    if not spec.resources.gpu:
        errors.append(
            ClaimError(
                "spec.resources.gpu",
                "policy require-gpu-limits (enforce) needs GPU limits on model pods; "
                "set resources.gpu: true or policies: audit",
            )
        )
    size, limit = spec.storage.size, spec.policy.max_storage_request
    if parse_quantity(size) > parse_quantity(limit):
        errors.append(
            ClaimError(
                "spec.storage.size",
                f"{size} is more than policy.maxStorageRequest {limit}, which policy "
                "require-storage-quota (enforce) refuses; request at most "
                f"{limit}, raise policy.maxStorageRequest, or set policies: audit",
            )
        )
    return errors


def spec_errors(spec: FleetSpec) -> list[ClaimError]:
    """Find shape errors the schema cannot express: replica bounds, extra KEDA triggers."""
    errors: list[ClaimError] = []
    scaling = spec.scaling
    if scaling.max_replicas < scaling.min_replicas:
        errors.append(
            ClaimError(
                "spec.scaling.maxReplicas",
                f"{scaling.max_replicas} is less than minReplicas {scaling.min_replicas}",
            )
        )
    errors.extend(scale_to_zero_errors(spec))
    errors.extend(exposure_errors(spec))
    names: set[Any] = {REQUEST_RATE_TRIGGER, CPU_TRIGGER}
    for i, item in enumerate(scaling.metrics):
        path = f"spec.scaling.metrics[{i}]"
        errors.extend(_trigger_errors(path, item))
        name = item.get("name")
        if name is not None and name in names:
            errors.append(ClaimError(f"{path}.name", f"trigger name {name} is already used"))
        names.add(name)
    return errors


def can_wake(spec: FleetSpec) -> bool:
    """Return whether something brings a model scaled to zero back (see ``scaling``)."""
    if spec.serving is Serving.KNATIVE:
        return True
    return any(
        isinstance(t.get("type"), str) and t["type"] not in POD_METRIC_TRIGGERS
        for t in spec.scaling.metrics
    )


def scale_to_zero_errors(spec: FleetSpec) -> list[ClaimError]:
    """Refuse ``minReplicas: 0`` where nothing could wake the model up again."""
    if spec.scaling.min_replicas > 0 or can_wake(spec):
        return []
    return [
        ClaimError(
            "spec.scaling.minReplicas",
            "0 would scale the model to zero with nothing to wake it: in deployment serving "
            "the request-rate metric comes from the model's own pods (and KEDA's cpu and "
            "memory scalers cannot scale from zero); set minReplicas to 1 or more, use "
            "serving knative, or add a scaling.metrics trigger whose metric exists with no "
            "pods (not cpu or memory)",
        )
    ]


def exposure_errors(spec: FleetSpec) -> list[ClaimError]:
    """Refuse an exposure nothing would serve: it needs deployment serving behind Contour."""
    if spec.exposure is None:
        return []
    if spec.ingress is not Ingress.CONTOUR:
        return [
            ClaimError(
                "spec.exposure",
                "public exposure is served by Contour; set ingress contour, or remove "
                "exposure to keep the model private",
            )
        ]
    if spec.serving is not Serving.DEPLOYMENT:
        return [
            ClaimError(
                "spec.exposure",
                "public exposure is supported for serving deployment only (Knative Services "
                "stay cluster-local); use serving deployment, or remove exposure",
            )
        ]
    return []


def _trigger_errors(path: str, item: Mapping[str, Any]) -> list[ClaimError]:
    errors: list[ClaimError] = []
    unknown = sorted(set(item) - KEDA_TRIGGER_FIELDS)
    if unknown:
        errors.append(
            ClaimError(
                path,
                f"unknown trigger field(s) {', '.join(unknown)}; a KEDA trigger has "
                f"{', '.join(sorted(KEDA_TRIGGER_FIELDS))}",
            )
        )
    kind = item.get("type")
    if not isinstance(kind, str) or not kind:
        errors.append(ClaimError(f"{path}.type", "a KEDA trigger type is required (e.g. cpu)"))
    metadata = item.get("metadata")
    if not isinstance(metadata, Mapping):
        errors.append(ClaimError(f"{path}.metadata", "a map of trigger settings is required"))
    else:
        for name, value in metadata.items():
            if not isinstance(value, str | int | float | bool):
                errors.append(ClaimError(f"{path}.metadata.{name}", "trigger settings are strings"))
    metric_type = item.get("metricType")
    if metric_type is not None and metric_type not in KEDA_METRIC_TYPES:
        errors.append(
            ClaimError(
                f"{path}.metricType",
                f"must be one of {', '.join(sorted(KEDA_METRIC_TYPES))}",
            )
        )
    return errors


def _unpinned(image: str) -> bool:
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.endswith(":latest")


def image_errors(inputs: FunctionInput) -> list[ClaimError]:
    """Refuse an Ollama, cache or MinIO client image not pinned to a tag or digest (not latest)."""
    return [
        ClaimError(
            f"input.spec.{field}",
            f"{image} is not pinned; name a version tag or a digest (not latest)",
        )
        for field, image in (
            ("ollamaImage", inputs.spec.ollama_image),
            ("cacheImage", inputs.spec.cache_image),
            ("minioClientImage", inputs.spec.minio_client_image),
        )
        if _unpinned(image)
    ]
