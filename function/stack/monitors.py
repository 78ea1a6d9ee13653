"""ServiceMonitors for the metrics Services the stack's charts render but do not scrape.

Each chart below renders a metrics Service by default and either has no
ServiceMonitor of its own or would need the Prometheus Operator's CRDs at
install. The function composes the ServiceMonitor as a separate Object,
created once both the chart's Release and kube-prometheus-stack are ready, so
no Release waits for the monitoring stack (as with Cilium's, in
``networking``). Only with observability on, and only for Releases the cluster
has. The chart tests check that every metrics Service a chart renders is
scraped exactly once by a monitor the Prometheus selects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from function import wrap
from function.composed import Composed, Gate, Need
from function.context import MONITORING_NAMESPACE, ClusterContext
from function.models.common import Observability
from function.stack.mesh import ISTIO_NAMESPACE
from function.stack.networking import PROMETHEUS_STACK
from function.stack.observability import OTEL_OPERATOR_NAMESPACE
from function.stack.policies import KYVERNO_NAMESPACE
from function.stack.serving import KEDA_NAMESPACE, KNATIVE_OPERATOR_NAMESPACE

# The controller-runtime metrics server of the OpenTelemetry operator serves
# HTTPS and authorises the caller's token (the chart's --metrics-secure=true);
# Prometheus' ClusterRole may GET /metrics. The chart's own ServiceMonitor
# values say the same.
_SECURE = {
    "scheme": "https",
    "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "tlsConfig": {"insecureSkipVerify": True},
}


@dataclass(frozen=True)
class Monitor:
    """One ServiceMonitor: the Release whose Services it selects, and how."""

    component: str  # the Release (external name)
    name: str
    namespace: str
    match_labels: dict[str, str]
    ports: tuple[str, ...]
    endpoint: dict[str, Any] = field(default_factory=dict)
    match_expressions: tuple[dict[str, Any], ...] = ()


MONITORS = (
    Monitor("istiod", "istiod", ISTIO_NAMESPACE, {"app": "istiod"}, ("http-monitoring",)),
    Monitor(
        "keda",
        "keda-operator-metrics-apiserver",
        KEDA_NAMESPACE,
        {"app": "keda-operator-metrics-apiserver"},
        ("metrics",),
    ),
    Monitor(
        "knative-operator",
        "knative-operator-webhook",
        KNATIVE_OPERATOR_NAMESPACE,
        {"role": "operator-webhook"},
        ("http-metrics",),
    ),
    # The admission, background, cleanup and reports controllers' metrics Services.
    Monitor(
        "kyverno",
        "kyverno",
        KYVERNO_NAMESPACE,
        {"app.kubernetes.io/instance": "kyverno", "app.kubernetes.io/part-of": "kyverno"},
        ("metrics-port",),
    ),
    Monitor(
        "grafana-operator",
        "grafana-operator",
        MONITORING_NAMESPACE,
        {
            "app.kubernetes.io/name": "grafana-operator",
            "app.kubernetes.io/instance": "grafana-operator",
        },
        ("metrics",),
    ),
    # The all-in-one's own telemetry. Its ``span-metrics`` port (8889) serves
    # only a span-metrics pipeline, which Jaeger's built-in all-in-one config
    # lacks: scraping it would be a target always down (and a TargetDown alert).
    Monitor(
        "jaeger",
        "jaeger",
        MONITORING_NAMESPACE,
        {"app.kubernetes.io/name": "jaeger", "app.kubernetes.io/component": "all-in-one"},
        ("internal-metrics",),
    ),
    # Loki and its gateway's exporter; the chart marks the headless twin
    # ``prometheus.io/service-monitor: "false"`` so its pods are scraped once.
    Monitor(
        "loki",
        "loki",
        MONITORING_NAMESPACE,
        {"app.kubernetes.io/name": "loki", "app.kubernetes.io/instance": "loki"},
        ("http-metrics",),
        match_expressions=(
            {"key": "prometheus.io/service-monitor", "operator": "NotIn", "values": ["false"]},
        ),
    ),
    Monitor(
        "opentelemetry-operator",
        "opentelemetry-operator",
        OTEL_OPERATOR_NAMESPACE,
        {
            "app.kubernetes.io/name": "opentelemetry-operator",
            "app.kubernetes.io/component": "controller-manager",
        },
        ("metrics",),
        endpoint=_SECURE,
    ),
)


def service_monitor(monitor: Monitor) -> dict[str, Any]:
    """The ServiceMonitor manifest of ``monitor``."""
    selector: dict[str, Any] = {"matchLabels": dict(monitor.match_labels)}
    if monitor.match_expressions:
        selector["matchExpressions"] = [dict(e) for e in monitor.match_expressions]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": monitor.name, "namespace": monitor.namespace},
        "spec": {
            "selector": selector,
            "namespaceSelector": {"matchNames": [monitor.namespace]},
            "endpoints": [
                {"port": port, "path": "/metrics", **monitor.endpoint} for port in monitor.ports
            ],
        },
    }


def build(ctx: ClusterContext, releases: Iterable[str]) -> list[Composed]:
    """The ServiceMonitor Objects for the Releases in ``releases`` (observability on)."""
    if ctx.components.observability is Observability.NONE:
        return []
    have = set(releases)
    if PROMETHEUS_STACK not in have:
        return []
    return objects(ctx, [m for m in MONITORS if m.component in have])


def objects(ctx: ClusterContext, monitors: Iterable[Monitor]) -> list[Composed]:
    """The ServiceMonitor Objects of ``monitors``, after their Release and Prometheus.

    Observability on means kube-prometheus-stack is installed; off, there are none.
    """
    if ctx.components.observability is Observability.NONE:
        return []
    out = []
    for monitor in monitors:
        after = (
            Gate(wrap.release_key(ctx.name, monitor.component), Need.READY),
            Gate(wrap.release_key(ctx.name, PROMETHEUS_STACK), Need.READY),
        )
        out.append(
            wrap.k8s_object(
                ctx,
                f"servicemonitor-{monitor.name}",
                service_monitor(monitor),
                after=after,
                # The Prometheus Operator writes no status on ServiceMonitors.
                readiness="SuccessfulCreate",
            )
        )
    return out
