"""GPU metrics where no GPU operator runs: the DCGM exporter on GKE's GPU nodes.

On AWS, Azure and existing clusters the GPU operator brings NVIDIA's DCGM
exporter and its ServiceMonitor (``gpu``). GKE manages the driver and the
device plugin itself and gets no operator, so its GPU nodes would export
nothing to the stack's Prometheus. This module composes the exporter there as
three Objects in the monitoring namespace:

- a DaemonSet of NVIDIA's exporter image (the version the pinned gpu-operator
  chart deploys), on the nodes GKE labels ``cloud.google.com/gke-accelerator``,
  tolerating every taint of the GPU pool. GKE installs the driver's user-space
  libraries under ``/home/kubernetes/bin/nvidia`` on the node (COS and Ubuntu
  images alike); the exporter reads NVML from there (mounted read-only at
  ``/usr/local/nvidia``, on the loader's path). It runs privileged to open
  every GPU device without requesting one (a request would take the GPU away
  from the models), and reads the kubelet's pod-resources socket to label each
  GPU's series with the pod using it. ``NODE_NAME`` makes the ``Hostname``
  label the node's, as the operator's exporter does, so the dashboard's
  panels read the same series on every cloud.
- a Service over its metrics port and a ServiceMonitor the stack's Prometheus
  selects (every ServiceMonitor of the cluster).

Only with observability on (nothing would scrape it otherwise) and only where a
model asks for a GPU. The Objects wait for kube-prometheus-stack, whose Release
creates the namespace and the ServiceMonitor kind; no model waits for them.
"""

from __future__ import annotations

from typing import Any

from function import wrap
from function.composed import Composed, Gate, Need
from function.context import MONITORING_NAMESPACE, ClusterContext
from function.models.common import Cloud, Observability
from function.stack.gpu import gpu_tolerations
from function.stack.networking import PROMETHEUS_STACK

NAME = "dcgm-exporter"
# The exporter image of gpu-operator v26.7.0's values (dcgmExporter.version); a test
# holds the two together.
IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3-distroless"
PORT = 9400
PORT_NAME = "metrics"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "ollama-platform"}

# Where GKE puts the driver's libraries on the node, and where GPU containers see them.
GKE_DRIVER_DIR = "/home/kubernetes/bin/nvidia"
DRIVER_MOUNT = "/usr/local/nvidia"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
POD_RESOURCES = "/var/lib/kubelet/pod-resources"

# Clouds whose GPU nodes need this exporter (the operator brings its own elsewhere).
EXPORTER_CLOUDS = frozenset({Cloud.GCP})


def _on_gpu_nodes() -> dict[str, Any]:
    """Required node affinity to the nodes GKE labels with their accelerator."""
    term = {"matchExpressions": [{"key": GKE_ACCELERATOR_LABEL, "operator": "Exists"}]}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


# (volume name, host path, where the container sees it or None: at the same path)
_HOST_PATHS = (
    ("nvidia-driver", GKE_DRIVER_DIR, DRIVER_MOUNT),
    ("pod-resources", POD_RESOURCES, None),
)


def _container() -> dict[str, Any]:
    probe = {"httpGet": {"path": "/health", "port": PORT}, "initialDelaySeconds": 45}
    node_name = {"fieldRef": {"fieldPath": "spec.nodeName"}}
    return {
        "name": NAME,
        "image": IMAGE,
        "env": [
            {"name": "DCGM_EXPORTER_LISTEN", "value": f":{PORT}"},
            {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
            {"name": "LD_LIBRARY_PATH", "value": f"{DRIVER_MOUNT}/lib64"},
            {"name": "NODE_NAME", "valueFrom": node_name},
        ],
        "ports": [{"name": PORT_NAME, "containerPort": PORT}],
        "livenessProbe": probe,
        "readinessProbe": probe,
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {"privileged": True},
        "volumeMounts": [
            {"name": name, "mountPath": mount or path, "readOnly": True}
            for name, path, mount in _HOST_PATHS
        ],
    }


def daemonset(ctx: ClusterContext) -> dict[str, Any]:
    """The exporter DaemonSet on the cluster's GPU nodes."""
    pod = {
        "affinity": _on_gpu_nodes(),
        "tolerations": gpu_tolerations(ctx),
        "containers": [_container()],
        "volumes": [
            {"name": name, "hostPath": {"path": path, "type": "Directory"}}
            for name, path, _ in _HOST_PATHS
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata(),
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod},
        },
    }


def _metadata() -> dict[str, Any]:
    return {"name": NAME, "namespace": MONITORING_NAMESPACE, "labels": dict(LABELS)}


def service() -> dict[str, Any]:
    """The Service over the exporters' metrics port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(LABELS),
            "ports": [
                {"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def service_monitor() -> dict[str, Any]:
    """The ServiceMonitor the stack's Prometheus scrapes the exporters by."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(),
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "namespaceSelector": {"matchNames": [MONITORING_NAMESPACE]},
            "endpoints": [{"port": PORT_NAME, "path": "/metrics"}],
        },
    }


def build(ctx: ClusterContext) -> list[Composed]:
    """The exporter's Objects on a GKE cluster serving GPU models ([] elsewhere)."""
    if (
        ctx.cloud not in EXPORTER_CLOUDS
        or not ctx.gpu_models
        or ctx.components.observability is Observability.NONE
    ):
        return []
    after = (Gate(wrap.release_key(ctx.name, PROMETHEUS_STACK), Need.READY),)
    # Nothing waits on the exporter: each Object is ready once created.
    return [
        wrap.k8s_object(
            ctx, f"gpu-metrics-{kind}", manifest, after=after, readiness="SuccessfulCreate"
        )
        for kind, manifest in (
            ("daemonset", daemonset(ctx)),
            ("service", service()),
            ("servicemonitor", service_monitor()),
        )
    ]
