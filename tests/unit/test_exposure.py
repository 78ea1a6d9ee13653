"""Private by default: what reaches a model, per cloud, and what public exposure requires."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from function import fleet
from function.fleet import checks
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.stack import mesh, networking
from scripts.render import desired, load_docs, request, run
from scripts.stage import walk
from tests.factories import cluster_context

ROOT = Path(__file__).resolve().parents[2]
CLOUDS = ("aws", "gcp", "azure", "existing")
EXPOSURE = {
    "host": "llama2.models.example.com",
    "tlsSecretName": "llama2-tls",
    "allowedSourceRanges": ["203.0.113.0/24", "198.51.100.7"],
}
INTERNAL = {
    "aws": {
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    },
    "gcp": {"networking.gke.io/load-balancer-type": "Internal"},
    "azure": {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
}


def fleet_spec(cloud: str = "aws", **extra: Any) -> FleetSpec:
    raw = {"model": "llama2", "target": {"providerConfigName": "pc", "cloud": cloud}, **extra}
    return FleetSpec.model_validate(raw)


def manifests(spec: FleetSpec) -> dict[str, dict[str, Any]]:
    return {
        c.key: c.body["spec"]["forProvider"]["manifest"]
        for c in fleet.build("llama2", spec, FunctionInput())
        if c.kind == "Object"
    }


# --------------------------------------------------------------------------- default: private


@pytest.mark.parametrize("cloud", CLOUDS)
def test_ingress_load_balancers_are_internal_or_absent_by_default(cloud: str) -> None:
    ctx = cluster_context(cloud, components={"ingress": "contour", "mesh": "istio"})
    envoy = networking.contour_values(ctx)["envoy"]["service"]
    gateway = mesh.ingress_gateway_values(ctx)["service"]
    for service in (envoy, gateway):
        if cloud == "existing":  # no cloud load balancer we know of: none at all
            assert service["type"] == "ClusterIP"
            assert "annotations" not in service
        else:
            assert service["type"] == "LoadBalancer"
            assert service["annotations"] == INTERNAL[cloud]
        assert "loadBalancerSourceRanges" not in service


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("serving", ["deployment", "knative"])
def test_an_unexposed_model_is_reachable_only_inside_the_cluster(cloud: str, serving: str) -> None:
    out = manifests(fleet_spec(cloud, serving=serving, ingress="contour", mesh="istio"))
    assert "model-object-httpproxy" not in out
    if serving == "deployment":
        assert out["model-object-service"]["spec"]["type"] == "ClusterIP"
    else:
        labels = out["model-object-knative-service"]["metadata"]["labels"]
        assert labels["networking.knative.dev/visibility"] == "cluster-local"
    # No LoadBalancer, NodePort or placeholder host anywhere in what the model composes.
    text = json.dumps(out)
    assert "LoadBalancer" not in text and "NodePort" not in text
    assert "ollama.local" not in text


def test_no_example_uses_a_placeholder_host() -> None:
    for path in sorted((ROOT / "examples").glob("*/observed-*.yaml")):
        assert "ollama.local" not in path.read_text(), path
    for path in sorted((ROOT / "tests" / "golden").glob("*.yaml")):
        assert "ollama.local" not in path.read_text(), path


# --------------------------------------------------------------------------- public, explicitly


def test_public_exposure_serves_the_claims_host_over_tls_to_its_callers_only() -> None:
    hp = manifests(fleet_spec(ingress="contour", exposure=EXPOSURE))["model-object-httpproxy"]
    vhost = hp["spec"]["virtualhost"]
    assert vhost["fqdn"] == "llama2.models.example.com"
    assert vhost["tls"] == {"secretName": "llama2-tls"}
    assert vhost["ipAllowPolicy"] == [
        {"source": "Peer", "cidr": "203.0.113.0/24"},
        {"source": "Peer", "cidr": "198.51.100.7"},
    ]


@pytest.mark.parametrize(
    "missing", ["host", "tlsSecretName", "allowedSourceRanges"], ids=lambda m: f"no-{m}"
)
def test_public_exposure_requires_host_tls_and_callers(missing: str) -> None:
    exposure = {k: v for k, v in EXPOSURE.items() if k != missing}
    with pytest.raises(ValidationError, match=missing):
        fleet_spec(ingress="contour", exposure=exposure)
    with pytest.raises(ValidationError, match="allowedSourceRanges"):
        fleet_spec(ingress="contour", exposure={**EXPOSURE, "allowedSourceRanges": []})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"ingress": "none"}, "public exposure is served by Contour"),
        ({"ingress": "contour", "serving": "knative"}, "serving deployment only"),
    ],
)
def test_exposure_nothing_would_serve_is_refused(extra: dict[str, str], message: str) -> None:
    [error] = checks.exposure_errors(fleet_spec(exposure=EXPOSURE, **extra))
    assert error.path == "spec.exposure"
    assert message in error.message


def test_a_public_model_makes_its_clusters_load_balancer_public_for_its_callers_only() -> None:
    xr = load_docs(ROOT / "examples" / "azure" / "xr.yaml")[0]
    assert xr["spec"]["models"][0]["exposure"]["allowedSourceRanges"] == ["203.0.113.0/24"]
    final = walk(xr)[-1]
    [contour] = [b for k, b in final.items() if k.endswith("release-contour")]
    service = contour["spec"]["forProvider"]["values"]["envoy"]["service"]
    assert service["type"] == "LoadBalancer"
    assert service["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert "annotations" not in service
    # Without the exposure the same cluster's load balancer is internal.
    del xr["spec"]["models"][0]["exposure"]
    wanted = desired(run(request(xr, final)))
    [contour] = [b for k, b in wanted.items() if k.endswith("release-contour")]
    service = contour["spec"]["forProvider"]["values"]["envoy"]["service"]
    assert service["annotations"] == INTERNAL["azure"]
    assert "loadBalancerSourceRanges" not in service


def test_platform_refuses_exposure_under_knative() -> None:
    xr = load_docs(ROOT / "examples" / "azure" / "xr.yaml")[0]
    xr["spec"]["components"] = {"serving": "knative"}
    rsp = run(request(xr, {}))
    fatal = [r.message for r in rsp.results if r.severity == 1]
    assert fatal
    assert (
        "spec.models[0].exposure: public exposure is supported for serving deployment" in (fatal[0])
    )
