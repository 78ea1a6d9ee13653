"""Keys, external names and labels: pure functions, DNS-1123 checked."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

LABEL_PREFIX = "ollama.openhands.ai"
LABEL_PLATFORM = f"{LABEL_PREFIX}/platform"
LABEL_CLUSTER = f"{LABEL_PREFIX}/cluster"
LABEL_ROLE = f"{LABEL_PREFIX}/role"
LABEL_MODEL = f"{LABEL_PREFIX}/model"
LABEL_FLEET = f"{LABEL_PREFIX}/fleet"
GPU_LABEL = f"{LABEL_PREFIX}/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
EXTERNAL_NAME = "crossplane.io/external-name"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A label value: at most 63 characters, alphanumeric at both ends.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MAX_LABEL_VALUE = 63
_NOT_IN_DNS_LABEL = re.compile(r"[^a-z0-9-]+")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]")
# The helpers below are pure and called thousands of times per call with the
# same few hundred names (clusters x models x roles): each remembers this many
# answers, keyed by its own arguments.
NAMES_REMEMBERED = 4096


@lru_cache(maxsize=NAMES_REMEMBERED)
def digest(*parts: str, length: int = 8) -> str:
    """A short, stable hex digest of ``parts``; not a secret, only a disambiguator."""
    joined = "\x00".join(parts).encode()
    return hashlib.sha256(joined).hexdigest()[:length]


def is_dns_label(value: str, max_length: int = 63) -> bool:
    """Tell whether ``value`` is a DNS-1123 label of at most ``max_length`` characters."""
    return len(value) <= max_length and bool(_DNS_LABEL.match(value))


@lru_cache(maxsize=NAMES_REMEMBERED)
def dns_label(*parts: str, max_length: int = 63) -> str:
    """Join ``parts`` with '-' into a DNS-1123 label, shortened with a digest if too long.

    The result is stable: the same parts always give the same label.
    """
    raw = "-".join(p for p in parts if p)
    cleaned = _NOT_IN_DNS_LABEL.sub("-", raw.lower()).strip("-") or "x"
    if len(cleaned) <= max_length:
        return cleaned
    suffix = digest(raw)
    head = cleaned[: max_length - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


@lru_cache(maxsize=NAMES_REMEMBERED)
def label_value(value: str) -> str:
    """Return ``value`` if it is a valid label value, else a stable DNS label of it.

    A value that fits is kept as it is; a longer one (a role naming a 40-character
    model, say) is cut and ends with a digest of the whole, so two values that
    differ only past the cut still get different labels, and every reconcile the
    same one.
    """
    if len(value) <= MAX_LABEL_VALUE and _LABEL_VALUE.match(value):
        return value
    return dns_label(value, max_length=MAX_LABEL_VALUE)


def key(*parts: str) -> str:
    """A composition resource name: the parts joined with '-'."""
    return "-".join(parts)


def bucket_name(platform_uid: str, platform: str, cluster: str) -> str:
    """A globally unique, stable S3/GCS bucket name (3-63 chars, lowercase, no dots).

    The digest covers the XR's uid (or name when no uid is known yet), so two
    claims with the same cluster name never collide, and reconciles agree.
    """
    suffix = digest(platform_uid or platform, cluster, length=10)
    head = dns_label("ollama", platform, cluster, max_length=63 - len(suffix) - 1)
    return f"{head}-{suffix}"


def azure_storage_account_name(platform_uid: str, platform: str, cluster: str) -> str:
    """A storage account name: 3-24 lowercase alphanumerics, globally unique and stable."""
    suffix = digest(platform_uid or platform, cluster, length=10)
    head = _NOT_ALPHANUMERIC.sub("", f"ol{cluster}")[: 24 - len(suffix)]
    return f"{head}{suffix}"


def azure_node_pool_name(platform_uid: str, platform: str, cluster: str) -> str:
    """An AKS Linux node pool name: at most 12 lowercase alphanumerics, starting with a letter."""
    suffix = digest(platform_uid or platform, cluster, length=4)
    head = _NOT_ALPHANUMERIC.sub("", f"gpu{cluster}")[: 12 - len(suffix)]
    return f"{head}{suffix}"


def gcp_service_account_id(
    platform_uid: str, platform: str, cluster: str, purpose: str = ""
) -> str:
    """A GCP service account id: 6-30 chars, lowercase letters, digits and '-'.

    ``purpose`` tells apart the accounts of one cluster (the nodes' has none).
    """
    parts = (
        (platform_uid or platform, cluster, purpose)
        if purpose
        else (
            platform_uid or platform,
            cluster,
        )
    )
    suffix = digest(*parts, length=6)
    head = dns_label("ollama", purpose, cluster, max_length=30 - len(suffix) - 1)
    return f"{head}-{suffix}"


def node_pool_name(platform: str, cluster: str, max_length: int = 63) -> str:
    """An EKS node group or GKE node pool name, stable per claim and cluster."""
    suffix = digest(platform, cluster, length=6)
    head = dns_label("ollama-gpu", cluster, max_length=max_length - len(suffix) - 1)
    return f"{head}-{suffix}"


# Model namespaces carry this label; the Kyverno policies and the fleet agree on it.
MODEL_NAMESPACE_LABEL = f"{LABEL_PREFIX}/model-namespace"
# The Kubernetes ServiceAccount a model's pods run as when they use the model cache;
# the cloud identity chains (clouds/) name it, the fleet creates it.
MODEL_SERVICE_ACCOUNT = "ollama"

# The MinIO tenant (``objectStorage: minio``) and its model cache: the stack
# creates the bucket and the policy, the fleet's pods reach them through the
# MinIO operator's STS (modelcache/minio.py, fleet/cache.py).
MINIO_OPERATOR_NAMESPACE = "minio-operator"
MINIO_TENANT_NAMESPACE = "minio-tenant"
MINIO_CACHE_BUCKET = "ollama-models"
MINIO_CACHE_POLICY = "ollama-model-cache"
# The tenant's S3 API (the operator's ``minio`` Service, TLS on 443) and the
# operator's STS (``sts`` Service, TLS on 4223; the path names the tenant's namespace).
MINIO_ENDPOINT = f"https://minio.{MINIO_TENANT_NAMESPACE}.svc.cluster.local"
MINIO_STS_PORT = 4223
MINIO_STS_ENDPOINT = (
    f"https://sts.{MINIO_OPERATOR_NAMESPACE}.svc.cluster.local:{MINIO_STS_PORT}"
    f"/sts/{MINIO_TENANT_NAMESPACE}"
)


def model_namespace(model: str) -> str:
    """Return the namespace of a served model's objects: ``ollama-<model>`` as a DNS label."""
    return dns_label("ollama", model)


# Model pods carry this label; require-gpu-limits matches on it.
MODEL_POD_LABEL = "app.kubernetes.io/part-of"
MODEL_POD_LABEL_VALUE = "ollama-platform"
