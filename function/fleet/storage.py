"""Where a model is kept: one volume per replica.

In ``deployment`` serving the StatefulSet gives every replica its own
ReadWriteOnce claim from ``volumeClaimTemplates``, so replicas spread across GPU
nodes (one shared ReadWriteOnce claim cannot attach to two nodes). Claims are
deleted with the StatefulSet (removing the model frees its disks) and kept when
it scales down (scaling back up finds the model on disk).

Knative cannot mount per-replica claims, so a Knative pod keeps the model on an
``emptyDir`` of the same size on its node: every new pod restores or pulls it.
"""

from __future__ import annotations

from typing import Any

from function.fleet.common import labels
from function.models.fleet import FleetSpec

VOLUME = "models"  # the pod volume, and the claim template's name
MODELS_PATH = "/models"

# PVCs of a StatefulSet are named <template>-<statefulset>-<ordinal>.
RETENTION = {"whenDeleted": "Delete", "whenScaled": "Retain"}


def storage_class(spec: FleetSpec) -> str:
    """Return the claims' StorageClass: the fleet's, else the profile's, else '' (default)."""
    return spec.storage.storage_class or spec.storage_class


def claim_template(xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    """Return the StatefulSet's claim template: one ReadWriteOnce volume per replica."""
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    sc = storage_class(spec)
    if sc:
        claim["storageClassName"] = sc
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": VOLUME, "labels": labels(xr_name)},
        "spec": claim,
    }


def pod_volumes(spec: FleetSpec, *, knative: bool) -> list[dict[str, Any]]:
    """Return the pod's volumes: none for a StatefulSet (its template adds the claim)."""
    if not knative:
        return []
    return [{"name": VOLUME, "emptyDir": {"sizeLimit": spec.storage.size}}]


def mount() -> list[dict[str, Any]]:
    """Return the containers' mount of the model volume."""
    return [{"name": VOLUME, "mountPath": MODELS_PATH}]
