"""Model serving infrastructure: KEDA (serving ``deployment``) or Knative (``knative``).

Knative has no ``keda.autoscaling.knative.dev`` class (the seed's annotation): in
``deployment`` mode KEDA scales each model's Deployment, in ``knative`` mode
Knative's own autoscaler scales on the request rate. The two never run together.

Knative Serving is installed through the Knative operator: its Helm chart, then a
``KnativeServing`` in the ``knative-serving`` namespace (created here, as the
operator requires it to exist). The networking layer follows the other choices:

- ingress ``contour``: ``net-contour``, pointed at the platform's Contour (its
  IngressClass and Envoy Service) for both public and cluster-local visibility,
  so no second Contour pair is needed.
- otherwise mesh ``istio``: ``net-istio``, with Knative's ingress gateway pointed at
  the platform's ``istio-ingressgateway`` in ``istio-ingress``.
- otherwise: Kourier, which the operator ships whole.
"""

from __future__ import annotations

from typing import Any

from function import wrap
from function.composed import Composed, Gate, Need
from function.context import CONTOUR_INGRESS_CLASS, ClusterContext
from function.models.common import Ingress, Mesh, Profile, Serving
from function.stack.mesh import ISTIO_INGRESS_GATEWAY, ISTIO_INGRESS_NAMESPACE
from function.stack.networking import CONTOUR_ENVOY_SERVICE

KEDA_NAMESPACE = "keda"
KNATIVE_OPERATOR_NAMESPACE = "knative-operator"
KNATIVE_SERVING_NAMESPACE = "knative-serving"

# What a Knative Service of a model needs switched on in KnativeServing's
# config.features (all disabled by default); the fleet's pods rely on them.
KNATIVE_FEATURES: dict[str, str] = {
    "kubernetes.podspec-init-containers": "enabled",  # the model cache's restore and save
    "kubernetes.podspec-nodeselector": "enabled",
    "kubernetes.podspec-securitycontext": "enabled",
    "kubernetes.podspec-tolerations": "enabled",
    "kubernetes.podspec-volumes-emptydir": "enabled",
}

INGRESS_CLASSES = {
    "contour": "contour.ingress.networking.knative.dev",
    "istio": "istio.ingress.networking.knative.dev",
    "kourier": "kourier.ingress.networking.knative.dev",
}


def _ready(ctx: ClusterContext, component: str) -> Gate:
    return Gate(wrap.release_key(ctx.name, component), Need.READY)


def knative_ingress(ctx: ClusterContext) -> str:
    """Which Knative networking layer the cluster uses: contour, istio or kourier."""
    if ctx.components.ingress is Ingress.CONTOUR:
        return "contour"
    if ctx.components.mesh is Mesh.ISTIO:
        return "istio"
    return "kourier"


def _contour_visibility() -> str:
    target = f"  class: {CONTOUR_INGRESS_CLASS}\n  service: {CONTOUR_ENVOY_SERVICE}\n"
    return f"ExternalIP:\n{target}ClusterLocal:\n{target}"


def knative_serving_manifest(ctx: ClusterContext) -> dict[str, Any]:
    """Build the KnativeServing the operator reconciles into Knative Serving."""
    layer = knative_ingress(ctx)
    config: dict[str, dict[str, str]] = {"network": {"ingress-class": INGRESS_CLASSES[layer]}}
    if layer == "contour":
        config["contour"] = {"visibility": _contour_visibility()}
    elif layer == "istio":
        gateway = f"{ISTIO_INGRESS_GATEWAY}.{ISTIO_INGRESS_NAMESPACE}.svc.cluster.local"
        config["istio"] = {"gateway.knative-serving.knative-ingress-gateway": gateway}
    # The features the model pods need (PVC volumes, tolerations, ...), as the fleet states them.
    config["features"] = dict(sorted(KNATIVE_FEATURES.items()))
    spec: dict[str, Any] = {"ingress": {layer: {"enabled": True}}, "config": config}
    if ctx.platform.profile is Profile.PRODUCTION:
        spec["high-availability"] = {"replicas": 2}
    return {
        "apiVersion": "operator.knative.dev/v1beta1",
        "kind": "KnativeServing",
        "metadata": {"name": "knative-serving", "namespace": KNATIVE_SERVING_NAMESPACE},
        "spec": spec,
    }


def _knative(ctx: ClusterContext) -> list[Composed]:
    operator = wrap.release(
        ctx,
        "knative-operator",
        chart="knative-operator",
        namespace=KNATIVE_OPERATOR_NAMESPACE,
        wait=True,
    )
    namespace = wrap.k8s_object(
        ctx,
        "knative-serving-namespace",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KNATIVE_SERVING_NAMESPACE}},
        # A Namespace has no Ready condition; created is ready.
        readiness="SuccessfulCreate",
    )
    after = [
        _ready(ctx, "knative-operator"),
        Gate(wrap.object_key(ctx.name, "knative-serving-namespace"), Need.READY),
    ]
    layer = knative_ingress(ctx)
    if layer == "contour":
        after.append(_ready(ctx, "contour"))
    elif layer == "istio":
        after.append(_ready(ctx, "istiod"))
    serving = wrap.k8s_object(
        ctx, "knative-serving", knative_serving_manifest(ctx), after=tuple(after)
    )
    return [operator, namespace, serving]


def _keda(ctx: ClusterContext) -> list[Composed]:
    return [wrap.release(ctx, "keda", chart="keda", namespace=KEDA_NAMESPACE, wait=True)]


def build(ctx: ClusterContext) -> list[Composed]:
    """KEDA or Knative on one cluster, by serving mode."""
    if ctx.components.serving is Serving.KNATIVE:
        return _knative(ctx)
    if ctx.components.serving is Serving.DEPLOYMENT:
        return _keda(ctx)
    return []
