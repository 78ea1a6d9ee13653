"""The model cache: restore the model's blobs from the cluster's bucket, save them after a pull.

With ``spec.cache`` (the platform sets it on cloud clusters with a bucket) the
pod (StatefulSet or Knative) runs three init containers on its model volume:

1. ``restore-model`` (rclone): copies the model's manifest from the bucket and,
   if it is there, the blobs it lists. Best effort: a miss or an unreachable
   bucket only means the pull below fetches from the registry.
2. ``pull-model`` (Ollama, as before): ``ollama pull``, which only checks the
   manifest when the blobs are already on the volume.
3. ``save-model`` (rclone): copies the model's blobs, then its manifest, to the
   bucket (blobs are content-addressed, so names compare by size only and an
   existing blob is never uploaded twice; the manifest last, so a reader never
   sees a manifest whose blobs are missing). Best effort too: serving never
   waits on a broken cache.

The bucket holds Ollama's own layout under ``ollama/`` (``manifests/<registry>/
<namespace>/<model>/<tag>`` and ``blobs/sha256-<digest>``), so a blob shared by
two models is stored once.

Credentials are never keys: the pod runs as the model's ServiceAccount
``ollama`` and rclone's ``env_auth`` takes what the cloud's workload identity
puts in the pod: EKS Pod Identity's container-credentials endpoint and token
(AWS SDK default chain), GKE's metadata server (Application Default
Credentials), AKS workload identity's federated token (azidentity). The
ServiceAccount carries the GKE and AKS annotations, the pod the AKS label.

With ``provider: minio`` (clusters with ``objectStorage: minio``) the store is
the tenant's ``ollama-models`` bucket and the identity is the MinIO operator's
STS, Kubernetes' own workload identity for MinIO: the pod mounts a token of the
ServiceAccount bound to the audience ``sts.min.io`` and the cluster's CA
(``kube-root-ca.crt``, which signs the operator's and the tenant's automatic
certificates); the AWS SDK in rclone exchanges the token at the operator's STS
(``AssumeRoleWithWebIdentity``) for short-lived keys limited to the policy the
tenant's ``PolicyBinding`` names (that bucket only; see modelcache/minio.py).
MinIO ignores the role ARN the SDK insists on.

Under a mesh, init containers run before the proxy, so the link-local
credential endpoints (EKS Pod Identity 169.254.170.23, the GCE/GKE metadata
server 169.254.169.254) bypass it, like the registry's port 443 does, and with
MinIO the tenant's and the STS's ports.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from function import minio_sts, naming
from function.fleet.common import labels
from function.fleet.storage import MODELS_PATH, mount
from function.models.fleet import Cache, CacheProvider, FleetSpec
from function.models.input import FunctionInput

SERVICE_ACCOUNT = naming.MODEL_SERVICE_ACCOUNT  # the model's Kubernetes ServiceAccount
RESTORE_CONTAINER = "restore-model"
SAVE_CONTAINER = "save-model"
SCRATCH_VOLUME = "cache-scratch"  # rclone's HOME and file lists
SCRATCH_PATH = "/tmp"  # noqa: S108  # an emptyDir of the pod's own
SCRATCH_SIZE = "64Mi"
PREFIX = "ollama"  # the store's folder in the bucket
REMOTE = "cache"  # rclone remote name; configured by RCLONE_CONFIG_CACHE_* variables

DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

GKE_ANNOTATION = "iam.gke.io/gcp-service-account"
AZURE_CLIENT_ANNOTATION = "azure.workload.identity/client-id"
AZURE_USE_LABEL = "azure.workload.identity/use"

# Link-local credential endpoints the init containers reach before any mesh proxy runs.
CREDENTIAL_ENDPOINTS = ("169.254.169.254/32", "169.254.170.23/32")

IDENTITY_VOLUME = "cache-identity"  # MinIO: the STS token and the cluster CA
MINIO_REGION = "us-east-1"  # MinIO's default region
# The AWS SDK refuses web identity without a role ARN; MinIO's STS ignores it.
MINIO_ROLE_ARN = "arn:aws:iam::000000000000:role/ollama-model-cache"

# rclone's remote settings per provider (RCLONE_CONFIG_CACHE_<KEY>).
_REMOTE: dict[CacheProvider, dict[str, str]] = {
    CacheProvider.S3: {
        "TYPE": "s3",
        "PROVIDER": "AWS",
        "ENV_AUTH": "true",
        # The platform owns the bucket: never try to create it (that would need more rights).
        "NO_CHECK_BUCKET": "true",
    },
    CacheProvider.GCS: {
        "TYPE": "google cloud storage",
        "ENV_AUTH": "true",
        "BUCKET_POLICY_ONLY": "true",  # uniform bucket-level access: no object ACLs
    },
    CacheProvider.AZURE_BLOB: {"TYPE": "azureblob", "ENV_AUTH": "true"},
    CacheProvider.MINIO: {
        "TYPE": "s3",
        "PROVIDER": "Minio",
        "ENV_AUTH": "true",
        "REGION": MINIO_REGION,
        # The operator creates the bucket with the tenant; the policy grants no more.
        "NO_CHECK_BUCKET": "true",
    },
}

# The manifest's digests -> blob paths (rclone --files-from), from busybox in the rclone image.
_BLOBS = (
    "grep -o 'sha256:[0-9a-f]\\{64\\}' \"$OLLAMA_MODELS/$manifest\" "
    "| sed 's|^sha256:|blobs/sha256-|' | sort -u"
)

RESTORE_SCRIPT = f"""\
set -u
manifest="manifests/$OLLAMA_MANIFEST"
if ! rclone copyto "$CACHE_URL/$manifest" "$OLLAMA_MODELS/$manifest"; then
  echo "$OLLAMA_PULL_MODEL is not in the cache (or the cache is unreachable); pulling it"
  exit 0
fi
{_BLOBS} > "$HOME/blobs"
if ! rclone copy "$CACHE_URL" "$OLLAMA_MODELS" --files-from "$HOME/blobs" --size-only; then
  echo "restore of $OLLAMA_PULL_MODEL incomplete; the pull fetches the rest"
fi
"""

SAVE_SCRIPT = f"""\
set -u
manifest="manifests/$OLLAMA_MANIFEST"
{_BLOBS} > "$HOME/blobs"
echo "$manifest" > "$HOME/manifest"
if rclone copy "$OLLAMA_MODELS" "$CACHE_URL" --files-from "$HOME/blobs" --size-only &&
   rclone copy "$OLLAMA_MODELS" "$CACHE_URL" --files-from "$HOME/manifest"; then
  echo "$OLLAMA_PULL_MODEL saved to the cache"
else
  echo "saving $OLLAMA_PULL_MODEL to the cache failed; serving anyway" >&2
fi
"""


def manifest_path(model: str) -> str:
    """Return where Ollama keeps ``model``'s manifest, under ``manifests/``.

    ``llama3.1:8b`` -> ``registry.ollama.ai/library/llama3.1/8b``;
    ``user/model`` -> ``registry.ollama.ai/user/model/latest``;
    ``hf.co/org/repo:Q4_K_M`` -> ``hf.co/org/repo/Q4_K_M``.
    """
    name, tag = model, DEFAULT_TAG
    head, _, last = model.rpartition("/")
    if ":" in last:
        last, tag = last.split(":", 1)
        name = f"{head}/{last}" if head else last
    parts = name.split("/")
    if len(parts) == 1:
        parts = [DEFAULT_REGISTRY, DEFAULT_NAMESPACE, *parts]
    elif len(parts) == 2:  # namespace/model
        parts = [DEFAULT_REGISTRY, *parts]
    return "/".join([*parts, tag])


def cache_url(cache: Cache) -> str:
    """Return the rclone path of the store: ``cache:<bucket>/ollama``."""
    return f"{REMOTE}:{cache.bucket}/{PREFIX}"


def remote_env(cache: Cache) -> list[dict[str, Any]]:
    """Return rclone's remote settings for ``cache``: environment variables, never keys."""
    settings = dict(_REMOTE[cache.provider])
    if cache.provider is CacheProvider.S3 and cache.region:
        settings["REGION"] = cache.region
    if cache.provider is CacheProvider.AZURE_BLOB and cache.account:
        settings["ACCOUNT"] = cache.account
    if cache.provider is CacheProvider.MINIO:
        settings["ENDPOINT"] = minio_endpoint(cache)
    return [
        {"name": f"RCLONE_CONFIG_{REMOTE.upper()}_{key}", "value": value}
        for key, value in sorted(settings.items())
    ]


def minio_endpoint(cache: Cache) -> str:
    """Return the MinIO tenant's S3 endpoint: the cache's, else the platform's tenant."""
    return cache.endpoint or naming.MINIO_ENDPOINT


def minio_sts_endpoint(cache: Cache) -> str:
    """Return the MinIO operator's STS endpoint for the tenant: the cache's, else the platform's."""
    return cache.sts_endpoint or naming.MINIO_STS_ENDPOINT


def identity_env(cache: Cache) -> list[dict[str, Any]]:
    """Return the AWS SDK's web identity settings (MinIO only): paths and endpoints, no keys."""
    if cache.provider is not CacheProvider.MINIO:
        return []
    settings = {
        "AWS_ENDPOINT_URL_STS": minio_sts_endpoint(cache),
        "AWS_REGION": MINIO_REGION,
        "AWS_ROLE_ARN": MINIO_ROLE_ARN,
        "AWS_WEB_IDENTITY_TOKEN_FILE": minio_sts.TOKEN_FILE,
        # Go's TLS trusts this file: the cluster CA that signs the operator's certificates.
        "SSL_CERT_FILE": minio_sts.CA_FILE,
    }
    return [{"name": name, "value": value} for name, value in sorted(settings.items())]


def identity_volume(cache: Cache) -> dict[str, Any] | None:
    """Return the projected volume with the STS token and the cluster CA (MinIO only).

    The token is bound to the audience ``sts.min.io`` and expires within the
    hour (the kubelet renews it); it cannot call the Kubernetes API.
    """
    if cache.provider is not CacheProvider.MINIO:
        return None
    return minio_sts.identity_volume(IDENTITY_VOLUME)


def _port(url: str) -> str:
    parts = urlsplit(url)
    return str(parts.port or (443 if parts.scheme == "https" else 80))


def outbound_ports(cache: Cache | None) -> tuple[str, ...]:
    """Return the ports the cache's init containers reach past a mesh proxy (MinIO's)."""
    if cache is None or cache.provider is not CacheProvider.MINIO:
        return ()
    return tuple(sorted({_port(minio_endpoint(cache)), _port(minio_sts_endpoint(cache))}))


def credential_subnets(cache: Cache | None) -> tuple[str, ...]:
    """Return the link-local credential endpoints the cache reaches past a mesh (clouds)."""
    if cache is None or cache.provider is CacheProvider.MINIO:
        return ()
    return CREDENTIAL_ENDPOINTS


def _env(spec: FleetSpec, cache: Cache) -> list[dict[str, Any]]:
    return [
        {"name": "CACHE_URL", "value": cache_url(cache)},
        {"name": "HOME", "value": SCRATCH_PATH},
        {"name": "OLLAMA_MANIFEST", "value": manifest_path(spec.model)},
        {"name": "OLLAMA_MODELS", "value": MODELS_PATH},
        {"name": "OLLAMA_PULL_MODEL", "value": spec.model},
        *remote_env(cache),
        *identity_env(cache),
    ]


def _container(
    name: str,
    script: str,
    *,
    spec: FleetSpec,
    cache: Cache,
    inputs: FunctionInput,
    security: dict[str, Any],
) -> dict[str, Any]:
    return {
        "name": name,
        "image": inputs.spec.cache_image,
        "command": ["/bin/sh", "-c", script],
        "env": _env(spec, cache),
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "volumeMounts": [
            *mount(),
            {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_PATH},
            *([minio_sts.identity_mount(IDENTITY_VOLUME)] if identity_volume(cache) else []),
        ],
        "securityContext": security,
    }


def restore_container(
    spec: FleetSpec, cache: Cache, inputs: FunctionInput, security: dict[str, Any]
) -> dict[str, Any]:
    """Return the init container that restores the model from the bucket (before the pull)."""
    return _container(
        RESTORE_CONTAINER, RESTORE_SCRIPT, spec=spec, cache=cache, inputs=inputs, security=security
    )


def save_container(
    spec: FleetSpec, cache: Cache, inputs: FunctionInput, security: dict[str, Any]
) -> dict[str, Any]:
    """Return the init container that saves the model to the bucket (after the pull)."""
    return _container(
        SAVE_CONTAINER, SAVE_SCRIPT, spec=spec, cache=cache, inputs=inputs, security=security
    )


def scratch_volume() -> dict[str, Any]:
    """Return the rclone containers' scratch space (HOME, file lists)."""
    return {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": SCRATCH_SIZE}}


def pod_volumes(cache: Cache) -> list[dict[str, Any]]:
    """Return the volumes the cache adds to the pod: scratch space, and MinIO's identity."""
    identity = identity_volume(cache)
    return [scratch_volume(), *([identity] if identity else [])]


def service_account_annotations(cache: Cache) -> dict[str, str]:
    """Return the ServiceAccount annotations that bind it to the cloud identity."""
    if cache.provider is CacheProvider.GCS and cache.gcp_service_account:
        return {GKE_ANNOTATION: cache.gcp_service_account}
    if cache.provider is CacheProvider.AZURE_BLOB and cache.azure_client_id:
        return {AZURE_CLIENT_ANNOTATION: cache.azure_client_id}
    return {}


def pod_labels(cache: Cache) -> dict[str, str]:
    """Return the pod labels the cloud's identity webhook needs (AKS only)."""
    if cache.provider is CacheProvider.AZURE_BLOB:
        return {AZURE_USE_LABEL: "true"}
    return {}


def service_account(ns: str, xr_name: str, cache: Cache) -> dict[str, Any]:
    """Return the model's ServiceAccount: the identity its pods reach the bucket with.

    No token is mounted by default (pods set ``automountServiceAccountToken:
    false``); the identity webhooks (EKS, AKS) project their own audience-bound token.
    """
    metadata: dict[str, Any] = {"name": SERVICE_ACCOUNT, "namespace": ns, "labels": labels(xr_name)}
    annotations = service_account_annotations(cache)
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata,
        "automountServiceAccountToken": False,
    }
