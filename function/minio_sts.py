"""MinIO's STS as seen from a pod: the projected token and CA both cache paths mount.

The MinIO operator (7.1+) accepts ServiceAccount tokens bound to the audience
``sts.min.io``; its certificates and the tenant's are signed through the
cluster's CSR API, so pods trust the cluster CA that Kubernetes publishes in
every namespace (``kube-root-ca.crt``). Used by the model cache's pods
(fleet/cache.py) and by the Job that sets the cache up in the tenant
(modelcache/minio.py).
"""

from __future__ import annotations

from typing import Any

AUDIENCE = "sts.min.io"
MOUNT_PATH = "/var/run/secrets/sts.min.io"
TOKEN_FILE = f"{MOUNT_PATH}/token"
CA_FILE = f"{MOUNT_PATH}/ca.crt"
TOKEN_SECONDS = 3600  # the kubelet renews the token before it expires
CLUSTER_CA_CONFIGMAP = "kube-root-ca.crt"


def identity_volume(name: str) -> dict[str, Any]:
    """Return a projected volume with the STS token and the cluster CA (no Secret)."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": AUDIENCE,
                        "expirationSeconds": TOKEN_SECONDS,
                        "path": "token",
                    }
                },
                {
                    "configMap": {
                        "name": CLUSTER_CA_CONFIGMAP,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
            ]
        },
    }


def identity_mount(name: str) -> dict[str, Any]:
    """Return the read-only mount of ``identity_volume(name)``."""
    return {"name": name, "mountPath": MOUNT_PATH, "readOnly": True}
