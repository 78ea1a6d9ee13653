"""Where a model is kept: its PersistentVolumeClaim."""

from __future__ import annotations

from typing import Any

from function.fleet.common import meta
from function.models.fleet import FleetSpec

PVC_NAME = "ollama-models"
VOLUME = "models"
MODELS_PATH = "/models"


def storage_class(spec: FleetSpec) -> str:
    """Return the PVC's StorageClass: the fleet's, else the profile's, else '' (default)."""
    return spec.storage.storage_class or spec.storage_class


def pvc(ns: str, xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    """Return the PersistentVolumeClaim the model is kept on."""
    pvc_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    sc = storage_class(spec)
    if sc:
        pvc_spec["storageClassName"] = sc
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(PVC_NAME, ns, xr_name),
        "spec": pvc_spec,
    }


def volume() -> dict[str, Any]:
    """Return the pod volume that mounts the PVC."""
    return {"name": VOLUME, "persistentVolumeClaim": {"claimName": PVC_NAME, "readOnly": False}}


def mount() -> list[dict[str, Any]]:
    """Return the containers' mount of the model volume."""
    return [{"name": VOLUME, "mountPath": MODELS_PATH}]
