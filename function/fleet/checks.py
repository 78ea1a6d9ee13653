"""Render-time checks of a fleet: policy, replica bounds, KEDA triggers, the image."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from function.errors import ClaimError, bounded, format_path
from function.fleet.scaling import (
    CPU_TRIGGER,
    KEDA_METRIC_TYPES,
    KEDA_TRIGGER_FIELDS,
    POD_METRIC_TRIGGERS,
    REQUEST_RATE_TRIGGER,
)
from function.models.common import MAX_SUBDOMAIN, Exposure, Ingress, Policies, Serving
from function.models.fleet import (
    AZURE_CONTAINER_PATTERN,
    CACHE_REQUIRED,
    IP_ADDRESS_PATTERN,
    MAX_TRIGGER_SETTING_CHARS,
    MAX_TRIGGER_SETTINGS,
    MAX_TRIGGER_WORD_CHARS,
    TRIGGER_SETTING_PATTERN,
    TRIGGER_WORD_PATTERN,
    Cache,
    CacheProvider,
    FleetSpec,
)
from function.models.input import FunctionInput
from function.quantity import parse_quantity

# An offending value is echoed at most this long (its repr), as in validation.
MAX_ECHO_CHARS = 80
_WORD = re.compile(TRIGGER_WORD_PATTERN)
_SETTING = re.compile(TRIGGER_SETTING_PATTERN)
_IP_ADDRESS = re.compile(IP_ADDRESS_PATTERN)
_AZURE_CONTAINER = re.compile(AZURE_CONTAINER_PATTERN)
_PREFIX = re.compile(r"0|[1-9][0-9]*")
MAX_REF_CHARS = 253  # authenticationRef's name and kind, as the schema bounds them


def _shown(value: Any) -> str:  # an offending input value
    return bounded(repr(value), MAX_ECHO_CHARS)


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
    errors.extend(cache_errors(spec.cache))
    names: set[str] = {REQUEST_RATE_TRIGGER, CPU_TRIGGER}
    for i, item in enumerate(scaling.metrics):
        path = f"spec.scaling.metrics[{i}]"
        errors.extend(_trigger_errors(path, item))
        name = item.get("name")
        if isinstance(name, str) and name in names:
            errors.append(ClaimError(f"{path}.name", f"trigger name {name} is already used"))
        if isinstance(name, str):
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
    """Refuse an exposure nothing would serve, or with callers or a TLS Secret it cannot use.

    Exposure needs deployment serving behind Contour; its callers must be valid,
    distinct networks and its Secret name a DNS subdomain.
    """
    if spec.exposure is None:
        return []
    errors = exposure_value_errors(spec.exposure)
    if spec.ingress is not Ingress.CONTOUR:
        errors.append(
            ClaimError(
                "spec.exposure",
                "public exposure is served by Contour; set ingress contour, or remove "
                "exposure to keep the model private",
            )
        )
    elif spec.serving is not Serving.DEPLOYMENT:
        errors.append(
            ClaimError(
                "spec.exposure",
                "public exposure is supported for serving deployment only (Knative Services "
                "stay cluster-local); use serving deployment, or remove exposure",
            )
        )
    return errors


def cidr_problem(text: str) -> str | None:
    """Say what is wrong with ``text`` as an allowed source range (None: nothing).

    An IPv4 or IPv6 address, or a CIDR block whose host bits are clear: Contour
    and the load balancer's source ranges match on the network, so ``10.0.0.1/8``
    would silently mean ``10.0.0.0/8``. IPv4-mapped IPv6 addresses, zones and
    netmask or zero-padded prefixes are refused, as Kubernetes' CEL ``isIP`` and
    ``isCIDR`` refuse them.
    """
    address, slash, prefix = text.partition("/")
    try:
        if "%" in text or (slash and not _PREFIX.fullmatch(prefix)):
            raise ValueError(text)
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return "is not an IP address or CIDR block; write e.g. 203.0.113.0/24 or 2001:db8::/32"
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        return "is an IPv4-mapped IPv6 address; write the IPv4 form"
    if ipaddress.ip_address(address) != network.network_address:
        return (
            f"has host bits set; use its network {network} "
            f"(or {address}/{network.max_prefixlen} for that one address)"
        )
    return None


def exposure_value_errors(exposure: Exposure, root: str = "spec.exposure") -> list[ClaimError]:
    """The exposure's callers (valid, distinct networks) and its TLS Secret's name length."""
    errors: list[ClaimError] = []
    path = f"{root}.allowedSourceRanges"
    seen: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, int] = {}
    for i, text in enumerate(exposure.allowed_source_ranges):
        problem = cidr_problem(text)
        if problem is not None:
            errors.append(ClaimError(f"{path}[{i}]", f"{_shown(text)} {problem}"))
            continue
        network = ipaddress.ip_network(text)
        if network in seen:
            errors.append(
                ClaimError(
                    f"{path}[{i}]",
                    f"{_shown(text)} is the same range as [{seen[network]}] ("
                    f"{_shown(exposure.allowed_source_ranges[seen[network]])}); list each "
                    "range once",
                )
            )
        seen.setdefault(network, i)
    name = exposure.tls_secret_name.rpartition("/")[2]
    if len(name) > MAX_SUBDOMAIN:
        errors.append(
            ClaimError(
                f"{root}.tlsSecretName",
                f"the Secret name is {len(name)} characters; a Secret name (a DNS subdomain) "
                f"has at most {MAX_SUBDOMAIN}",
            )
        )
    return errors


# Cache fields: alias -> attribute.
_CACHE_FIELDS = {(info.alias or name): name for name, info in Cache.model_fields.items()}


def cache_errors(cache: Cache | None) -> list[ClaimError]:
    """Refuse a cache block its provider cannot use: missing settings, an invalid bucket.

    S3 needs its region, GCS the Google service account, Azure the storage
    account and the identity's client id (``fleet/cache.py`` reads each). S3, GCS
    and MinIO bucket names may not look like an IP address; an Azure container
    name has no dots and no two hyphens in a row.
    """
    if cache is None:
        return []
    errors = [
        ClaimError(
            f"spec.cache.{field}",
            f"required when provider is {cache.provider.value}; the {cache.provider.value} "
            "cache cannot be reached without it",
        )
        for field in CACHE_REQUIRED[cache.provider]
        if getattr(cache, _CACHE_FIELDS[field]) is None
    ]
    if cache.provider is CacheProvider.AZURE_BLOB:
        if not _AZURE_CONTAINER.match(cache.bucket):
            errors.append(
                ClaimError(
                    "spec.cache.bucket",
                    f"{_shown(cache.bucket)} is not an Azure blob container name: 3 to 63 "
                    "lowercase letters, digits and hyphens, a letter or digit on either side "
                    "of each hyphen",
                )
            )
    elif _IP_ADDRESS.match(cache.bucket):
        errors.append(
            ClaimError(
                "spec.cache.bucket",
                f"{_shown(cache.bucket)} is formatted as an IP address, which S3 and GCS "
                "refuse as a bucket name; name the bucket",
            )
        )
    return errors


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
    elif not _is_word(kind):
        errors.append(
            ClaimError(
                f"{path}.type",
                f"{_shown(kind)} is not a KEDA trigger type: at most {MAX_TRIGGER_WORD_CHARS} "
                "printable ASCII characters without spaces (e.g. cpu, prometheus)",
            )
        )
    errors.extend(_settings_errors(f"{path}.metadata", item.get("metadata")))
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_TRIGGER_WORD_CHARS):
        errors.append(
            ClaimError(
                f"{path}.name",
                f"{_shown(name)} is not a trigger name: a string of at most "
                f"{MAX_TRIGGER_WORD_CHARS} characters",
            )
        )
    metric_type = item.get("metricType")
    if metric_type is not None and not (
        isinstance(metric_type, str) and metric_type in KEDA_METRIC_TYPES
    ):
        errors.append(
            ClaimError(
                f"{path}.metricType",
                f"{_shown(metric_type)} must be one of {', '.join(sorted(KEDA_METRIC_TYPES))}",
            )
        )
    cached = item.get("useCachedMetrics")
    if cached is not None and not isinstance(cached, bool):
        errors.append(
            ClaimError(f"{path}.useCachedMetrics", f"{_shown(cached)} must be true or false")
        )
    errors.extend(_authentication_errors(f"{path}.authenticationRef", item))
    return errors


def _is_word(value: str) -> bool:
    return len(value) <= MAX_TRIGGER_WORD_CHARS and _WORD.match(value) is not None


def _settings_errors(path: str, metadata: Any) -> list[ClaimError]:  # untrusted
    """A trigger's settings: a map of named strings (scalars become strings), no controls."""
    if not isinstance(metadata, Mapping):
        return [ClaimError(path, "a map of trigger settings is required")]
    errors: list[ClaimError] = []
    if len(metadata) > MAX_TRIGGER_SETTINGS:
        errors.append(
            ClaimError(
                path, f"{len(metadata)} settings; a trigger takes at most {MAX_TRIGGER_SETTINGS}"
            )
        )
    for name, value in metadata.items():
        if not isinstance(name, str) or not _is_word(name):
            # The path names the map, not the key: a control character stays out of it.
            errors.append(
                ClaimError(
                    path,
                    f"setting name {_shown(name)} is not printable ASCII without spaces, at "
                    f"most {MAX_TRIGGER_WORD_CHARS} characters; rename the setting",
                )
            )
            continue
        where = format_path((name,), root=path)
        if isinstance(value, bool | int | float):
            continue
        if not isinstance(value, str):
            errors.append(ClaimError(where, "trigger settings are strings"))
        elif len(value) > MAX_TRIGGER_SETTING_CHARS or not _SETTING.match(value):
            errors.append(
                ClaimError(
                    where,
                    f"{_shown(value)} is not a trigger setting: at most "
                    f"{MAX_TRIGGER_SETTING_CHARS} characters, none of them a control "
                    "character (newline, tab, escape, ...)",
                )
            )
    return errors


def _authentication_errors(path: str, item: Mapping[str, Any]) -> list[ClaimError]:
    if "authenticationRef" not in item:
        return []
    ref = item["authenticationRef"]
    if not isinstance(ref, Mapping):
        return [ClaimError(path, "a map with the TriggerAuthentication's name (and kind)")]
    return [
        ClaimError(
            f"{path}.{field}",
            f"{_shown(ref[field])} must be a string of at most {MAX_REF_CHARS} characters",
        )
        for field in ("name", "kind")
        if field in ref and not (isinstance(ref[field], str) and len(ref[field]) <= MAX_REF_CHARS)
    ]


def _unpinned(image: str) -> bool:
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.endswith(":latest")


def image_errors(inputs: FunctionInput) -> list[ClaimError]:
    """Refuse an Ollama, cache, MinIO client or Redis image not pinned to a tag or digest."""
    return [
        ClaimError(
            f"input.spec.{field}",
            f"{image} is not pinned; name a version tag or a digest (not latest)",
        )
        for field, image in (
            ("ollamaImage", inputs.spec.ollama_image),
            ("cacheImage", inputs.spec.cache_image),
            ("minioClientImage", inputs.spec.minio_client_image),
            ("redisImage", inputs.spec.redis_image),
        )
        if _unpinned(image)
    ]
