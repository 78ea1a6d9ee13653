"""Pull the manifests out of provider-kubernetes Objects for validation."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

CORE_GROUPS = {
    "",
    "v1",
    "apps",
    "batch",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "storage.k8s.io",
    "autoscaling",
}


def group_of(api_version: str) -> str:
    return api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""


def wrapped_manifests(
    docs: Iterable[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(custom resources, core Kubernetes objects) wrapped in Objects, deduplicated."""
    crds: dict[str, dict[str, Any]] = {}
    core: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc.get("kind") != "Object" or not doc.get("apiVersion", "").startswith(
            "kubernetes.crossplane.io/"
        ):
            continue
        manifest = doc["spec"]["forProvider"]["manifest"]
        ident = json.dumps(manifest, sort_keys=True)
        target = core if group_of(manifest["apiVersion"]) in CORE_GROUPS else crds
        target[ident] = manifest
    return [crds[k] for k in sorted(crds)], [core[k] for k in sorted(core)]
