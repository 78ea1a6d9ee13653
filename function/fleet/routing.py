"""How a model is reached: its Service, the Contour HTTPProxy, and the endpoint it reports."""

from __future__ import annotations

from typing import Any

from function.context import CONTOUR_INGRESS_CLASS
from function.fleet.common import PORT, WORKLOAD, instance_for, meta, namespace_for, selector
from function.models.common import Serving
from function.models.fleet import FleetSpec

RESPONSE_TIMEOUT = "15m"
FQDN_SUFFIX = "ollama.local"


def fqdn_for(xr_name: str) -> str:
    """Return the HTTPProxy's virtual host (a placeholder domain until it is configurable)."""
    return f"{instance_for(xr_name)}.{FQDN_SUFFIX}"


def endpoint(xr_name: str, spec: FleetSpec) -> str:
    """Return the in-cluster URL the model answers on.

    The Service's port for a Deployment; for Knative, the Service's
    cluster-local address, which listens on port 80.
    """
    host = f"{WORKLOAD}.{namespace_for(xr_name)}.svc.cluster.local"
    if spec.serving is Serving.KNATIVE:
        return f"http://{host}"
    return f"http://{host}:{PORT}"


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


def http_proxy(ns: str, xr_name: str) -> dict[str, Any]:
    """Return the Contour HTTPProxy routing the model's host to its Service."""
    return {
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": meta(WORKLOAD, ns, xr_name),
        "spec": {
            # Contour serves only proxies of the class it watches.
            "ingressClassName": CONTOUR_INGRESS_CLASS,
            "virtualhost": {"fqdn": fqdn_for(xr_name)},
            "routes": [
                {
                    "conditions": [{"prefix": "/"}],
                    "services": [{"name": WORKLOAD, "port": PORT}],
                    "timeoutPolicy": {"response": RESPONSE_TIMEOUT, "idle": RESPONSE_TIMEOUT},
                }
            ],
        },
    }
