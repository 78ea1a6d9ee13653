"""How a model scales: KEDA's ScaledObject (deployment) or Knative's autoscaler annotations.

Scale to zero needs something that can wake the model again. Knative can (its
activator holds the request). KEDA can only through a trigger whose metric
exists while no pod runs: the request-rate metrics here come from the model
pods' mesh sidecars or from Envoy's upstream requests, none of which exist or
grow with zero pods, and KEDA's cpu and memory scalers cannot scale from zero.
So ``minReplicas: 0`` in deployment serving needs an extra trigger of another
type (a queue, a cron, an external metric); see ``checks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from function.context import PROMETHEUS_ADDRESS
from function.fleet.common import POLLING_INTERVAL, PORT, WORKLOAD, meta, namespace_for
from function.models.common import Ingress, Mesh, Observability
from function.models.fleet import FleetSpec

COOLDOWN_PERIOD = 300
RATE_WINDOW = "2m"
REQUEST_RATE_TRIGGER = "requests-per-second"
CPU_TRIGGER = "cpu-utilization"
# Triggers that cannot scale from zero (KEDA needs a running pod to measure them).
RESOURCE_TRIGGERS = frozenset({"cpu", "memory"})
CPU_TARGET_UTILIZATION = "70"
KNATIVE_PROGRESS_DEADLINE = "3600s"

KEDA_TRIGGER_FIELDS = frozenset(
    {"type", "metadata", "name", "metricType", "authenticationRef", "useCachedMetrics"}
)
KEDA_METRIC_TYPES = frozenset({"AverageValue", "Value", "Utilization"})
# KEDA scalers whose metric comes from the pods themselves: no wake from zero.
POD_METRIC_TRIGGERS = frozenset({"cpu", "memory"})


def request_rate_query(xr_name: str, spec: FleetSpec) -> str:
    """Return the PromQL for requests per second into the model, from the mesh's metrics."""
    ns = namespace_for(xr_name)
    if spec.mesh is Mesh.ISTIO:
        selector = (
            f'reporter="destination",destination_service_name="{WORKLOAD}",'
            f'destination_service_namespace="{ns}"'
        )
        return f"sum(rate(istio_requests_total{{{selector}}}[{RATE_WINDOW}]))"
    if spec.mesh is Mesh.LINKERD:
        selector = f'direction="inbound",namespace="{ns}",statefulset="{WORKLOAD}"'
        return f"sum(rate(request_total{{{selector}}}[{RATE_WINDOW}]))"
    cluster = f"{ns}_{WORKLOAD}_{PORT}"
    return (
        f'sum(rate(envoy_cluster_upstream_rq_total{{envoy_cluster_name="{cluster}"}}'
        f"[{RATE_WINDOW}]))"
    )


def _extra_trigger(item: Mapping[str, Any]) -> dict[str, Any]:
    """Pass a user trigger through; scalar settings become the strings KEDA takes."""
    trigger = {k: v for k, v in item.items() if k in KEDA_TRIGGER_FIELDS}
    metadata = item.get("metadata")
    if isinstance(metadata, Mapping):
        trigger["metadata"] = {str(k): _setting(v) for k, v in metadata.items()}
    return trigger


def _setting(value: Any) -> str:  # free-form trigger metadata
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return str(value)


def _primary_trigger(xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    """The request-rate trigger, or CPU utilisation when no request metric exists.

    Without observability and without a prometheusAddress, a Prometheus trigger
    would never become active and the ScaledObject never Ready; without a mesh
    and without an HTTPProxy no proxy counts the model's requests.
    """
    no_prometheus = (
        spec.target.prometheus_address is None and spec.observability is Observability.NONE
    )
    # Without a mesh the request count is Envoy's, and Envoy routes only an exposed model.
    unrouted = spec.mesh is Mesh.NONE and not (
        spec.exposure is not None and spec.ingress is Ingress.CONTOUR
    )
    if no_prometheus or unrouted:
        return {
            "type": "cpu",
            "name": CPU_TRIGGER,
            "metricType": "Utilization",
            "metadata": {"value": CPU_TARGET_UTILIZATION},
        }
    return {
        "type": "prometheus",
        "name": REQUEST_RATE_TRIGGER,
        "metadata": {
            "serverAddress": spec.target.prometheus_address or PROMETHEUS_ADDRESS,
            "query": request_rate_query(xr_name, spec),
            "threshold": str(spec.scaling.target_requests_per_second),
        },
    }


def _min_replicas(wanted: int, triggers: list[dict[str, Any]]) -> int:
    """KEDA's webhook refuses scale-to-zero when every trigger is CPU or memory."""
    resource_only = all(t.get("type") in RESOURCE_TRIGGERS for t in triggers)
    return max(wanted, 1) if resource_only else wanted


def scaled_object(ns: str, xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    """Return the KEDA ScaledObject of the model's StatefulSet."""
    scaling = spec.scaling
    triggers: list[dict[str, Any]] = [_primary_trigger(xr_name, spec)]
    triggers += [_extra_trigger(item) for item in scaling.metrics]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(WORKLOAD, ns, xr_name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": WORKLOAD},
            "pollingInterval": POLLING_INTERVAL,
            "cooldownPeriod": COOLDOWN_PERIOD,
            "minReplicaCount": _min_replicas(scaling.min_replicas, triggers),
            "maxReplicaCount": max(scaling.max_replicas, scaling.min_replicas),
            "triggers": triggers,
        },
    }


def knative_annotations(spec: FleetSpec) -> dict[str, str]:
    """Return the Knative revision's autoscaling annotations (KPA on requests per second)."""
    scaling = spec.scaling
    upper = max(scaling.max_replicas, scaling.min_replicas, 1)
    initial = min(max(spec.replicas, scaling.min_replicas), upper)
    return {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "rps",
        "autoscaling.knative.dev/target": str(scaling.target_requests_per_second),
        "autoscaling.knative.dev/min-scale": str(scaling.min_replicas),
        "autoscaling.knative.dev/max-scale": str(upper),
        "autoscaling.knative.dev/initial-scale": str(initial),
        "serving.knative.dev/progress-deadline": KNATIVE_PROGRESS_DEADLINE,
    }
