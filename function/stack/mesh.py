"""Service mesh: Istio or Linkerd.

Istio
-----
The seed's ``IstioOperator`` is not how Istio is installed today; the Istio Helm
charts are: ``base`` (CRDs), ``istiod`` and two ``gateway`` Releases, the seed's
``istio-ingressgateway`` (namespace ``istio-ingress``, LoadBalancer) and
``istio-egressgateway`` (namespace ``istio-egress``, ClusterIP). The gateway
chart labels its pods ``istio: <release name without "istio-">``, which gives
the seed's ``istio: ingressgateway`` and ``istio: egressgateway``.

istiod carries the seed's proxy resources (requests 100m/128Mi, limits
2000m/1024Mi) and, with the full observability stack, tracing: an
``opentelemetry`` extension provider pointing at the OTel collector's OTLP/gRPC
port (the seed's ``envoyMetricsService`` at ``otel-collector.monitoring:4317``,
replaced by the current tracing provider) and a mesh-wide ``Telemetry`` that
selects it. Without the collector, tracing stays off.

No mesh-wide ``PeerAuthentication`` is composed: with STRICT mTLS the sidecars
would reject the plaintext requests that Contour's Envoy, KEDA and Prometheus
(none of them in the mesh) send to model pods. Istio's default, PERMISSIVE,
already encrypts mesh-to-mesh traffic.

Linkerd
-------
The edge ``linkerd-crds`` and ``linkerd-control-plane`` charts. ``linkerd-crds``
also installs the Gateway API route CRDs the policy controller needs, except
where the model gateway runs: its ``envoy-gateway`` Release installs every Gateway
API CRD (Helm refuses to adopt a CRD another release or installer made, so both
cannot), and the control plane then waits for that Release. Clusters that already
have them from another installer must remove that value.

Linkerd's identity needs a trust anchor and an issuer certificate. The function
never generates key material: the control plane reads them from a Secret on the
control plane, through provider-helm ``valuesFrom``:

    namespace: ``crossplane-system`` (``LINKERD_IDENTITY_SECRET_NAMESPACE``)
    name: ``linkerd-identity-issuer-values`` (``LINKERD_IDENTITY_SECRET``)
    key: ``values.yaml`` (``LINKERD_IDENTITY_SECRET_KEY``), holding Helm values:

    identityTrustAnchorsPEM: |
      -----BEGIN CERTIFICATE----- ...
    identity:
      issuer:
        tls:
          crtPEM: |
            -----BEGIN CERTIFICATE----- ...
          keyPEM: |
            -----BEGIN EC PRIVATE KEY----- ...

(or, with cert-manager, ``identity.externalCA: true`` and
``identity.issuer.scheme: kubernetes.io/tls`` plus the trust anchor). One Secret
serves every cluster, so all clusters share the trust anchor, as Linkerd's
multicluster support requires. The Release fails with a clear error until the
Secret exists.
"""

from __future__ import annotations

from typing import Any

from function import wrap
from function.composed import Composed, Gate, Need
from function.context import OTEL_COLLECTOR_HOST, ClusterContext
from function.models.common import Mesh, Observability, Profile
from function.stack.networking import ingress_service

ISTIO_NAMESPACE = "istio-system"
ISTIO_INGRESS_NAMESPACE = "istio-ingress"
ISTIO_EGRESS_NAMESPACE = "istio-egress"
ISTIO_INGRESS_GATEWAY = "istio-ingressgateway"
ISTIO_EGRESS_GATEWAY = "istio-egressgateway"

# The tracing extension provider istiod defines and the Telemetry selects.
OTEL_TRACING_PROVIDER = "otel-tracing"
OTEL_GRPC_PORT = 4317
# Per cent of requests traced when no upstream decision was made.
TRACE_SAMPLING = {Profile.DEVELOPMENT: 100.0, Profile.PRODUCTION: 1.0}

# The seed's sidecar resources.
PROXY_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "2000m", "memory": "1024Mi"},
}

LINKERD_NAMESPACE = "linkerd"
# The model gateway's Envoy Gateway Release (gateway.py), which brings the Gateway API CRDs.
GATEWAY_API_RELEASE = "envoy-gateway"
LINKERD_IDENTITY_SECRET = "linkerd-identity-issuer-values"  # noqa: S105  # a Secret's name
LINKERD_IDENTITY_SECRET_NAMESPACE = "crossplane-system"  # noqa: S105  # a namespace
LINKERD_IDENTITY_SECRET_KEY = "values.yaml"  # noqa: S105  # a key name


def _ready(ctx: ClusterContext, component: str) -> Gate:
    return Gate(wrap.release_key(ctx.name, component), Need.READY)


def _tracing(ctx: ClusterContext) -> bool:
    """Whether traces have somewhere to go (the OTel collector of the full stack)."""
    return ctx.components.observability is Observability.FULL


def otel_collector_service() -> str:
    """Return the collector's Service as Istio's registry names it (fully qualified)."""
    host = OTEL_COLLECTOR_HOST
    return f"{host}.cluster.local" if host.endswith(".svc") else host


def istiod_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the istiod chart: the seed's proxy resources and tracing."""
    mesh_config: dict[str, Any] = {"enableTracing": _tracing(ctx)}
    if _tracing(ctx):
        # Only where the collector exists: a provider naming a Service that is
        # not there would be one Telemetry away from failing every trace export.
        mesh_config["extensionProviders"] = [
            {
                "name": OTEL_TRACING_PROVIDER,
                "opentelemetry": {"service": otel_collector_service(), "port": OTEL_GRPC_PORT},
            }
        ]
    values: dict[str, Any] = {
        "meshConfig": mesh_config,
        "global": {"proxy": {"resources": PROXY_RESOURCES}},
    }
    if ctx.platform.profile is Profile.PRODUCTION:
        values["autoscaleMin"] = 2
    return values


def ingress_gateway_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the ingress ``gateway`` Release (checked against the chart's schema)."""
    values: dict[str, Any] = {"service": ingress_service(ctx)}
    if ctx.platform.profile is Profile.PRODUCTION:
        values["autoscaling"] = {"enabled": True, "minReplicas": 2, "maxReplicas": 5}
    return values


def egress_gateway_values() -> dict[str, Any]:
    """Values of the egress ``gateway`` Release: reachable inside the cluster only."""
    return {"service": {"type": "ClusterIP"}}


def telemetry_manifest(ctx: ClusterContext) -> dict[str, Any]:
    """Build the mesh-wide Telemetry that sends traces to the OTel collector."""
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {"name": "mesh-default", "namespace": ISTIO_NAMESPACE},
        "spec": {
            "tracing": [
                {
                    "providers": [{"name": OTEL_TRACING_PROVIDER}],
                    "randomSamplingPercentage": TRACE_SAMPLING[ctx.platform.profile],
                }
            ]
        },
    }


def _istio(ctx: ClusterContext) -> list[Composed]:
    base = wrap.release(ctx, "istio-base", chart="istio-base", namespace=ISTIO_NAMESPACE, wait=True)
    istiod = wrap.release(
        ctx,
        "istiod",
        chart="istiod",
        namespace=ISTIO_NAMESPACE,
        values=istiod_values(ctx),
        wait=True,
        after=(_ready(ctx, "istio-base"),),
    )
    ingress = wrap.release(
        ctx,
        ISTIO_INGRESS_GATEWAY,
        chart="istio-gateway",
        namespace=ISTIO_INGRESS_NAMESPACE,
        values=ingress_gateway_values(ctx),
        after=(_ready(ctx, "istiod"),),
    )
    egress = wrap.release(
        ctx,
        ISTIO_EGRESS_GATEWAY,
        chart="istio-gateway",
        namespace=ISTIO_EGRESS_NAMESPACE,
        values=egress_gateway_values(),
        after=(_ready(ctx, "istiod"),),
    )
    out = [base, istiod, ingress, egress]
    if _tracing(ctx):
        out.append(
            wrap.k8s_object(
                ctx,
                "istio-telemetry",
                telemetry_manifest(ctx),
                after=(_ready(ctx, "istiod"),),
                # Istio writes no Ready condition on its config resources.
                readiness="SuccessfulCreate",
            )
        )
    return out


def linkerd_identity_source() -> dict[str, Any]:
    """Return the ``valuesFrom`` entry that brings Linkerd's identity certificates."""
    return {
        "secretKeyRef": {
            "name": LINKERD_IDENTITY_SECRET,
            "namespace": LINKERD_IDENTITY_SECRET_NAMESPACE,
            "key": LINKERD_IDENTITY_SECRET_KEY,
        }
    }


def linkerd_control_plane_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of linkerd-control-plane; identity comes from the Secret, not from here."""
    if ctx.platform.profile is not Profile.PRODUCTION:
        return {}
    # The chart's high-availability settings (its values-ha.yaml, in short).
    return {
        "controllerReplicas": 3,
        "enablePodAntiAffinity": True,
        "enablePodDisruptionBudget": True,
    }


def _linkerd(ctx: ClusterContext) -> list[Composed]:
    crds = wrap.release(
        ctx,
        "linkerd-crds",
        chart="linkerd-crds",
        namespace=LINKERD_NAMESPACE,
        values={"installGatewayAPI": not ctx.gateway},
        wait=True,
    )
    after = [_ready(ctx, "linkerd-crds")]
    if ctx.gateway:  # the Gateway API CRDs come with Envoy Gateway
        after.append(_ready(ctx, GATEWAY_API_RELEASE))
    control_plane = wrap.release(
        ctx,
        "linkerd-control-plane",
        chart="linkerd-control-plane",
        namespace=LINKERD_NAMESPACE,
        values=linkerd_control_plane_values(ctx),
        values_from=(linkerd_identity_source(),),
        wait=True,
        after=tuple(after),
    )
    return [crds, control_plane]


def build(ctx: ClusterContext) -> list[Composed]:
    """Build the mesh's Releases and Objects on one cluster ([] without a mesh)."""
    if ctx.components.mesh is Mesh.ISTIO:
        return _istio(ctx)
    if ctx.components.mesh is Mesh.LINKERD:
        return _linkerd(ctx)
    return []
