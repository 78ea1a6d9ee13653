"""Cluster networking: Cilium (CNI) and Contour (ingress).

Cilium
------
The seed's ``CiliumConfig`` is not how Cilium is installed today; the Cilium
Helm chart carries the seed's settings: kube-proxy replacement
(``kubeProxyReplacement: "true"``, the seed's ``strict`` under its current
name), Hubble with Relay and the seed's metrics list, Maglev load balancing in
SNAT mode and the bandwidth manager.

The datapath depends on the cloud (values from the Cilium install guides):

- ``aws``: ENI mode (``eni.enabled``, ``ipam.mode: eni``, ``routingMode: native``):
  pods get VPC addresses, as with the VPC CNI. Prerequisites: the ``aws-node``
  DaemonSet is kept off the nodes (patch its nodeSelector to
  ``io.cilium/aws-node-enabled: "true"``) and the cilium-operator may call the EC2
  ENI APIs (node role or ``eni.iamRole`` in the cluster values below).
- ``gcp``: the GKE integration (``gke.enabled``, ``ipam.mode: kubernetes``,
  node-init to switch kubelet to CNI mode, ``cni.binPath`` of GKE nodes). Native
  routing needs the cluster's pod CIDR, which the function cannot know: the
  cluster values ConfigMap must set ``ipv4NativeRoutingCIDR`` (the
  ``clusterIpv4Cidr`` of the GKE cluster), so on GCP that ConfigMap is required.
  GKE Dataplane V2 clusters already run a Google-managed Cilium; use ``cni: none``
  there.
- ``azure``: AKS Bring-your-own-CNI (``aksbyocni.enabled``): the cluster must have
  been created with ``--network-plugin none``. Clusters using Azure CNI (or
  Azure CNI Powered by Cilium) take ``cni: none``.
- ``existing``: IPAM from the nodes' pod CIDRs (``ipam.mode: kubernetes``), which
  kubeadm and K3s assign, so Cilium never hands out overlapping addresses.

Kube-proxy replacement talks to the API server directly, and there is no way to
know its address from here: on EKS, GKE and AKS it is the cluster endpoint, on
K3s the server's address. Until kube-proxy is removed, Cilium reaches the API
server through the ``kubernetes`` Service as usual. To run without kube-proxy,
put ``k8sServiceHost`` and ``k8sServicePort`` (and any other cluster fact) in the
cluster values ConfigMap on the control plane:

    namespace: ``crossplane-system`` (``VALUES_NAMESPACE``)
    name: ``<claim namespace>.<claim name>.<cluster name>.cilium-values`` for a claim,
        ``<XR name>.<cluster name>.cilium-values`` for an XR made without one
        (``cilium_values_configmap``): names the user knows before applying the
        claim, so the ConfigMap can be prepared first. The dots keep the parts
        apart (namespaces and cluster names have none).
    key: ``values.yaml``

provider-helm merges ``valuesFrom`` first and the inline values over them, so the
ConfigMap supplies keys the function leaves unset and cannot override the
function's own settings. It is optional except on GCP.

With the Prometheus Operator installed, the agent's and operator's metrics
Services are on and three ServiceMonitors (agent, operator, Hubble) are
composed as Objects after kube-prometheus-stack, so the CNI does not wait for
the monitoring stack (on AKS BYOCNI nothing runs before the CNI).

Contour
-------
The projectcontour chart: Envoy behind an internal load balancer (a public one,
limited to the callers the claim lists, only when a model is exposed; no load
balancer on existing clusters; see ``ingress_service``), and a ServiceMonitor
for Contour and Envoy when the Prometheus Operator is installed (observability
``metrics`` or ``full``), which scrapes Envoy through the chart's separate
metrics Service. The IngressClass is ``contour`` and not the cluster default;
Knative's net-contour and the fleet's HTTPProxies name it.
"""

from __future__ import annotations

from typing import Any

from function import wrap
from function.composed import Composed, Gate, Need
from function.context import CONTOUR_INGRESS_CLASS, ClusterContext
from function.models.common import Cloud, Cni, Ingress, Mesh, Observability, Profile

CILIUM_NAMESPACE = "kube-system"
CONTOUR_NAMESPACE = "projectcontour"
# The chart names Envoy's Service "<release>-envoy"; the Release is "contour".
CONTOUR_ENVOY_SERVICE = f"{CONTOUR_NAMESPACE}/contour-envoy"

# Where user-supplied Helm values live on the control plane (read by provider-helm).
VALUES_NAMESPACE = "crossplane-system"
VALUES_KEY = "values.yaml"

# The component that installs the Prometheus Operator CRDs (stack.observability).
PROMETHEUS_STACK = "kube-prometheus-stack"

# The pod pool Cilium's install guide uses on AKS: clear of AKS's default
# Service range (10.0.0.0/16) and of the default VNet (10.224.0.0/12).
AKS_POD_CIDR = "192.168.0.0/16"

# The seed's Hubble metrics, in its order.
HUBBLE_METRICS = ["dns:query;ignoreAAAA", "drop", "tcp", "flow", "icmp", "http"]


def cilium_values_configmap(ctx: ClusterContext) -> str:
    """Name of the ConfigMap with this cluster's Cilium values (see module doc).

    Built from what the user chooses (claim namespace and name, or the XR's own
    name, and the cluster), never from the generated XR name.
    """
    p = ctx.platform
    owner = f"{p.claim_namespace}.{p.claim_name}" if p.claim_name and p.claim_namespace else p.name
    return f"{owner}.{ctx.name}.cilium-values"


def cilium_cloud_values(cloud: Cloud) -> dict[str, Any]:
    """Return the datapath settings for ``cloud`` (a fresh dict each call)."""
    if cloud is Cloud.AWS:
        return {
            "eni": {"enabled": True},
            "ipam": {"mode": "eni"},
            "routingMode": "native",
        }
    if cloud is Cloud.GCP:
        return {
            "gke": {"enabled": True},
            "ipam": {"mode": "kubernetes"},
            "routingMode": "native",
            # node-init switches kubelet to CNI mode and removes kubenet's cbr0
            # bridge (the chart's startup script does neither unless asked).
            "nodeinit": {"enabled": True, "reconfigureKubelet": True, "removeCbrBridge": True},
            "cni": {"binPath": "/home/kubernetes/bin"},
        }
    if cloud is Cloud.AZURE:
        # The chart's default pod pool, 10.0.0.0/8, contains AKS's default
        # Service range (10.0.0.0/16): pods would shadow Services.
        return {
            "aksbyocni": {"enabled": True},
            "ipam": {"operator": {"clusterPoolIPv4PodCIDRList": [AKS_POD_CIDR]}},
        }
    return {"ipam": {"mode": "kubernetes"}}


def cilium_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the Cilium chart: the seed's settings on the cloud's datapath."""
    monitored = ctx.components.observability is not Observability.NONE
    values: dict[str, Any] = {
        "kubeProxyReplacement": "true",
        "hubble": {
            "enabled": True,
            "relay": {"enabled": True},
            "metrics": {"enabled": list(HUBBLE_METRICS)},
        },
        "loadBalancer": {"algorithm": "maglev", "mode": "snat"},
        "bandwidthManager": {"enabled": True},
        # Metrics Services only: the ServiceMonitors are separate Objects
        # (``cilium_service_monitors``) created once the Prometheus Operator
        # exists, so the CNI never waits for the monitoring stack.
        "prometheus": {"enabled": monitored, "metricsService": monitored},
        "operator": {"prometheus": {"enabled": monitored, "metricsService": monitored}},
        **cilium_cloud_values(ctx.cloud),
    }
    if ctx.components.mesh is not Mesh.NONE:
        # Socket-level load balancing would bypass the sidecars' traffic
        # redirection; Istio and Linkerd both require it off in pod namespaces.
        values["socketLB"] = {"hostNamespaceOnly": True}
    if ctx.platform.profile is Profile.DEVELOPMENT:
        # One operator fits single-node development clusters.
        values["operator"]["replicas"] = 1
    return values


# (Object name, Service selector, port) of each Cilium metrics endpoint; the
# Services are the chart's own (cilium-agent, cilium-operator, hubble-metrics,
# cilium-envoy).
CILIUM_MONITORS = (
    ("cilium-agent", {"app.kubernetes.io/name": "cilium-agent"}, "metrics"),
    ("cilium-operator", {"app.kubernetes.io/name": "cilium-operator"}, "metrics"),
    ("hubble", {"k8s-app": "hubble"}, "hubble-metrics"),
    ("cilium-envoy", {"k8s-app": "cilium-envoy"}, "envoy-metrics"),
)


def cilium_service_monitor(name: str, selector: dict[str, str], port: str) -> dict[str, Any]:
    """A ServiceMonitor for one of Cilium's metrics Services."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": name, "namespace": CILIUM_NAMESPACE},
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "namespaceSelector": {"matchNames": [CILIUM_NAMESPACE]},
            "endpoints": [{"port": port, "path": "/metrics", "honorLabels": True}],
        },
    }


def _cilium_monitors(ctx: ClusterContext) -> list[Composed]:
    after = (
        Gate(wrap.release_key(ctx.name, "cilium"), Need.READY),
        Gate(wrap.release_key(ctx.name, PROMETHEUS_STACK), Need.READY),
    )
    return [
        wrap.k8s_object(
            ctx,
            f"servicemonitor-{name}",
            cilium_service_monitor(name, selector, port),
            after=after,
            # The Prometheus Operator writes no status on ServiceMonitors.
            readiness="SuccessfulCreate",
        )
        for name, selector, port in CILIUM_MONITORS
    ]


def _cilium(ctx: ClusterContext) -> Composed:
    source = {
        "configMapKeyRef": {
            "name": cilium_values_configmap(ctx),
            "namespace": VALUES_NAMESPACE,
            "key": VALUES_KEY,
            # Only GKE's native routing CIDR cannot be defaulted.
            "optional": ctx.cloud is not Cloud.GCP,
        }
    }
    return wrap.release(
        ctx,
        "cilium",
        chart="cilium",
        namespace=CILIUM_NAMESPACE,
        values=cilium_values(ctx),
        values_from=(source,),
    )


# Each cloud's annotations for a load balancer inside the VPC/VNet only.
INTERNAL_LB_ANNOTATIONS: dict[Cloud, dict[str, str]] = {
    # AWS Load Balancer Controller, and the in-tree cloud provider.
    Cloud.AWS: {
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    },
    Cloud.GCP: {"networking.gke.io/load-balancer-type": "Internal"},
    Cloud.AZURE: {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
}


def ingress_service(ctx: ClusterContext) -> dict[str, Any]:
    """The Service of an ingress proxy (Envoy, Istio's gateway): private unless a model is public.

    Private: an internal load balancer on aws, gcp and azure; on an existing
    cluster, whose load balancers we know nothing about, no load balancer
    (ClusterIP). Public (some model on the cluster has ``exposure``): a public
    load balancer that admits only the exposed models' callers.
    """
    if ctx.public_sources:
        return {"type": "LoadBalancer", "loadBalancerSourceRanges": list(ctx.public_sources)}
    annotations = INTERNAL_LB_ANNOTATIONS.get(ctx.cloud)
    if annotations is None:
        # Charts default externalTrafficPolicy to Local (Contour's) or leave it
        # empty (Istio's gateway); the API server refuses it on a ClusterIP
        # Service, and both charts omit it when empty.
        return {"type": "ClusterIP", "externalTrafficPolicy": ""}
    return {"type": "LoadBalancer", "annotations": dict(annotations)}


def contour_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the Contour chart: Envoy private unless a model is public, metrics on.

    Envoy's metrics port stays off the LoadBalancer Service (the chart's
    ``exposeMetrics``): the ServiceMonitor scrapes the chart's separate
    ``contour-envoy-metrics`` Service, so Envoy is scraped once and ``/stats``
    (admin data) is not published on the load balancer. The
    IngressClass is not the cluster's default: only routes that name
    ``contour`` (the fleet's HTTPProxies do) are Contour's.
    """
    monitored = ctx.components.observability is not Observability.NONE
    return {
        "contour": {
            "ingressClass": {"name": CONTOUR_INGRESS_CLASS, "create": True, "default": False},
        },
        "envoy": {
            "service": {**ingress_service(ctx), "exposeMetrics": False},
        },
        "metrics": {"serviceMonitor": {"enabled": monitored}},
    }


def _contour(ctx: ClusterContext) -> Composed:
    after: tuple[Gate, ...] = ()
    if ctx.components.observability is not Observability.NONE:
        # ServiceMonitors need the Prometheus Operator CRDs.
        after = (Gate(wrap.release_key(ctx.name, PROMETHEUS_STACK), Need.READY),)
    return wrap.release(
        ctx,
        "contour",
        chart="contour",
        namespace=CONTOUR_NAMESPACE,
        values=contour_values(ctx),
        wait=True,
        after=after,
    )


def build(ctx: ClusterContext) -> list[Composed]:
    """Build the CNI and ingress Releases of one cluster ([] when both are off)."""
    out: list[Composed] = []
    if ctx.components.cni is Cni.CILIUM:
        out.append(_cilium(ctx))
        if ctx.components.observability is not Observability.NONE:
            out.extend(_cilium_monitors(ctx))
    if ctx.components.ingress is Ingress.CONTOUR:
        out.append(_contour(ctx))
    return out
