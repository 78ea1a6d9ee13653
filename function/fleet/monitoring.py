"""What Prometheus scrapes of a model: the mesh sidecars, through a PodMonitor."""

from __future__ import annotations

from typing import Any

from function.fleet.common import POLLING_INTERVAL, labels, selector
from function.models.common import Mesh, Observability
from function.models.fleet import FleetSpec

POD_MONITOR_NAME = "ollama-mesh"
PROMETHEUS_RELEASE_LABEL = {"release": "kube-prometheus-stack"}


def pod_monitor(ns: str, xr_name: str, spec: FleetSpec) -> dict[str, Any] | None:
    """Return the PodMonitor of the mesh sidecars, or None without observability or a mesh."""
    if spec.observability is Observability.NONE or spec.mesh is Mesh.NONE:
        return None
    endpoint_: dict[str, Any]
    if spec.mesh is Mesh.ISTIO:
        endpoint_ = {"port": "http-envoy-prom", "path": "/stats/prometheus"}
    else:
        endpoint_ = {
            "port": "linkerd-admin",
            "path": "/metrics",
            "relabelings": [
                {
                    "action": "replace",
                    "sourceLabels": ["__meta_kubernetes_pod_label_linkerd_io_proxy_statefulset"],
                    "targetLabel": "statefulset",
                }
            ],
        }
    endpoint_["interval"] = f"{POLLING_INTERVAL}s"
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {
            "name": POD_MONITOR_NAME,
            "namespace": ns,
            "labels": {**labels(xr_name), **PROMETHEUS_RELEASE_LABEL},
        },
        "spec": {
            "selector": {"matchLabels": selector(xr_name)},
            "podMetricsEndpoints": [endpoint_],
        },
    }
