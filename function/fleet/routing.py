"""How a model is reached: its Service, the Contour HTTPProxy, and the endpoint it reports.

Private by default: without ``exposure`` a model has a ClusterIP Service (and, in
Knative mode, a ``cluster-local`` Knative Service) and nothing else, so it is
reachable only inside its cluster and mesh. With ``exposure`` (deployment serving
behind Contour) an HTTPProxy serves the claim's host over TLS with the Secret the
claim names, and Contour's IP allow list admits only the claim's CIDRs, matched
on the peer address (Envoy's Service keeps client addresses with
``externalTrafficPolicy: Local``).
"""

from __future__ import annotations

from typing import Any

from function.context import CONTOUR_INGRESS_CLASS
from function.fleet.common import PORT, WORKLOAD, meta, namespace_for, selector
from function.models.common import Exposure, Ingress, Serving
from function.models.fleet import FleetSpec

RESPONSE_TIMEOUT = "15m"
KNATIVE_VISIBILITY_LABEL = "networking.knative.dev/visibility"
# A cluster-local Knative Service listens on port 80.
KNATIVE_PORT = 80


def address(xr_name: str, serving: Serving) -> tuple[str, int]:
    """Return the in-cluster host and port the model answers on.

    The Service's port for a Deployment; for Knative, the Service's
    cluster-local address, which listens on port 80.
    """
    host = f"{WORKLOAD}.{namespace_for(xr_name)}.svc.cluster.local"
    return host, KNATIVE_PORT if serving is Serving.KNATIVE else PORT


def endpoint(xr_name: str, spec: FleetSpec) -> str:
    """Return the in-cluster URL the model answers on (see ``address``)."""
    host, port = address(xr_name, spec.serving)
    return f"http://{host}" if port == KNATIVE_PORT else f"http://{host}:{port}"


def service(ns: str, xr_name: str) -> dict[str, Any]:
    """Return the ClusterIP Service in front of the model's pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(WORKLOAD, ns, xr_name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(xr_name),
            "ports": [
                {
                    "name": "http",
                    "port": PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }


def exposed(spec: FleetSpec) -> bool:
    """Return whether the model gets an HTTPProxy (exposure, Contour, deployment serving)."""
    return (
        spec.exposure is not None
        and spec.ingress is Ingress.CONTOUR
        and spec.serving is Serving.DEPLOYMENT
    )


def http_proxy(ns: str, xr_name: str, exposure: Exposure) -> dict[str, Any]:
    """Return the Contour HTTPProxy: the claim's host, TLS, and its callers only."""
    return {
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": meta(WORKLOAD, ns, xr_name),
        "spec": {
            # Contour serves only proxies of the class it watches.
            "ingressClassName": CONTOUR_INGRESS_CLASS,
            "virtualhost": {
                "fqdn": exposure.host,
                "tls": {"secretName": exposure.tls_secret_name},
                "ipAllowPolicy": [
                    {"source": "Peer", "cidr": cidr} for cidr in exposure.allowed_source_ranges
                ],
            },
            "routes": [
                {
                    "conditions": [{"prefix": "/"}],
                    "services": [{"name": WORKLOAD, "port": PORT}],
                    "timeoutPolicy": {"response": RESPONSE_TIMEOUT, "idle": RESPONSE_TIMEOUT},
                }
            ],
        },
    }
