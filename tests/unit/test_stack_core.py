"""In-cluster components, part 1: networking, mesh, policies, GPU operator, serving."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from function import wrap
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.stack import gpu, mesh, networking, policies, serving
from tests import toolchain
from tests.factories import cluster_context

ROOT = Path(__file__).resolve().parents[2]
CHART_SCHEMAS = Path(
    os.environ.get("OLLAMA_PLATFORM_CHART_SCHEMAS", ROOT.parent / "shared" / "chart-schemas")
)
GATEWAY_SCHEMA = CHART_SCHEMAS / "gateway-1.30.3.values.schema.json"

MODULES = (networking, mesh, policies, gpu, serving)
CLOUDS = ("aws", "gcp", "azure", "existing")
PROFILES = ("production", "development")


def ctx_for(cloud: str = "aws", profile: str = "production", **components: str) -> ClusterContext:
    return cluster_context(cloud, profile, components=components or None)


def by_key(items: list[Composed]) -> dict[str, Composed]:
    out = {c.key: c for c in items}
    assert len(out) == len(items), "duplicate composition resource names"
    return out


def release(items: list[Composed], ctx: ClusterContext, component: str) -> Composed:
    return by_key(items)[wrap.release_key(ctx.name, component)]


def obj(items: list[Composed], ctx: ClusterContext, name: str) -> Composed:
    return by_key(items)[wrap.object_key(ctx.name, name)]


def values(c: Composed) -> dict[str, Any]:
    return dict(c.body["spec"]["forProvider"].get("values", {}))


def for_provider(c: Composed) -> dict[str, Any]:
    return dict(c.body["spec"]["forProvider"])


def manifest(c: Composed) -> dict[str, Any]:
    return dict(c.body["spec"]["forProvider"]["manifest"])


def ready(ctx: ClusterContext, component: str) -> Gate:
    return Gate(wrap.release_key(ctx.name, component), Need.READY)


def keys(items: list[Composed]) -> set[str]:
    return {c.key for c in items}


# --- Cilium ------------------------------------------------------------------


def test_cilium_off_when_cni_none() -> None:
    ctx = ctx_for(cni="none", ingress="none")
    assert networking.build(ctx) == []


@pytest.mark.parametrize("cloud", CLOUDS)
def test_cilium_carries_the_seed_values_on_every_cloud(cloud: str) -> None:
    ctx = ctx_for(cloud)
    cilium = release(networking.build(ctx), ctx, "cilium")
    v = values(cilium)
    assert v["kubeProxyReplacement"] == "true"
    assert v["hubble"]["enabled"] is True
    assert v["hubble"]["relay"]["enabled"] is True
    assert v["hubble"]["metrics"]["enabled"] == [
        "dns:query;ignoreAAAA",
        "drop",
        "tcp",
        "flow",
        "icmp",
        "http",
    ]
    assert v["loadBalancer"] == {"algorithm": "maglev", "mode": "snat"}
    assert v["bandwidthManager"] == {"enabled": True}
    assert for_provider(cilium)["namespace"] == "kube-system"
    assert for_provider(cilium)["chart"]["name"] == "cilium"
    # The API server address is a cluster fact: never invented by the function.
    assert "k8sServiceHost" not in v
    assert "k8sServicePort" not in v


@pytest.mark.parametrize(
    ("cloud", "expected"),
    [
        ("aws", {"eni": {"enabled": True}, "ipam": {"mode": "eni"}, "routingMode": "native"}),
        (
            "gcp",
            {"gke": {"enabled": True}, "ipam": {"mode": "kubernetes"}, "routingMode": "native"},
        ),
        (
            "azure",
            {
                "aksbyocni": {"enabled": True},
                # not the chart's 10.0.0.0/8, which holds AKS's Service range
                "ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["192.168.0.0/16"]}},
            },
        ),
        ("existing", {"ipam": {"mode": "kubernetes"}}),
    ],
)
def test_cilium_datapath_per_cloud(cloud: str, expected: dict[str, Any]) -> None:
    ctx = ctx_for(cloud)
    v = values(release(networking.build(ctx), ctx, "cilium"))
    for key, want in expected.items():
        assert v[key] == want, key
    if cloud == "gcp":
        assert v["cni"] == {"binPath": "/home/kubernetes/bin"}
        # node-init switches kubelet to CNI and removes kubenet's bridge.
        assert v["nodeinit"] == {
            "enabled": True,
            "reconfigureKubelet": True,
            "removeCbrBridge": True,
        }
    else:
        assert "gke" not in v
        assert "nodeinit" not in v


@pytest.mark.parametrize("cloud", CLOUDS)
def test_cilium_cluster_values_come_from_a_configmap_required_only_on_gcp(cloud: str) -> None:
    ctx = ctx_for(cloud)
    cilium = release(networking.build(ctx), ctx, "cilium")
    (source,) = for_provider(cilium)["valuesFrom"]
    ref = source["configMapKeyRef"]
    assert ref["namespace"] == networking.VALUES_NAMESPACE == "crossplane-system"
    assert ref["name"] == networking.cilium_values_configmap(ctx)
    # an XR made without a claim: its own name, which its author chose
    unclaimed = dataclasses.replace(
        ctx, platform=dataclasses.replace(ctx.platform, claim_name="", claim_namespace="")
    )
    assert networking.cilium_values_configmap(unclaimed) == f"{ctx.platform.name}.{ctx.name}.cilium-values"
    # a claim's: the claim's namespace and name, known before the claim is applied
    # (the XR's generated name is not, so a ConfigMap named after it could only be
    # created after the claim)
    claimed = dataclasses.replace(
        ctx,
        platform=dataclasses.replace(
            ctx.platform, name="team-x7k2p", claim_name="team", claim_namespace="ml"
        ),
    )
    assert networking.cilium_values_configmap(claimed) == f"ml.team.{ctx.name}.cilium-values"
    assert ref["key"] == "values.yaml"
    assert ref["optional"] is (cloud != "gcp")


def test_cilium_socket_lb_stays_in_host_namespace_with_a_mesh() -> None:
    with_mesh = ctx_for(mesh="istio")
    without = ctx_for(mesh="none")
    assert values(release(networking.build(with_mesh), with_mesh, "cilium"))["socketLB"] == {
        "hostNamespaceOnly": True
    }
    assert "socketLB" not in values(release(networking.build(without), without, "cilium"))


def test_cilium_operator_replicas_fit_development_clusters() -> None:
    dev = ctx_for("existing", "development", cni="cilium")
    prod = ctx_for("existing", "production")
    assert values(release(networking.build(dev), dev, "cilium"))["operator"]["replicas"] == 1
    assert "replicas" not in values(release(networking.build(prod), prod, "cilium"))["operator"]


def test_cilium_is_not_gated_on_anything_but_its_provider_config() -> None:
    ctx = ctx_for()
    cilium = release(networking.build(ctx), ctx, "cilium")
    assert cilium.gates == (Gate(wrap.provider_config_key(ctx.name, "helm"), Need.EXISTS),)


# --- Contour -----------------------------------------------------------------


def test_contour_off_when_ingress_none() -> None:
    ctx = ctx_for(ingress="none")
    assert wrap.release_key(ctx.name, "contour") not in keys(networking.build(ctx))


def test_contour_envoy_load_balancer_and_metrics() -> None:
    ctx = ctx_for()
    contour = release(networking.build(ctx), ctx, "contour")
    v = values(contour)
    assert for_provider(contour)["namespace"] == "projectcontour"
    assert for_provider(contour)["chart"]["name"] == "contour"
    assert for_provider(contour)["wait"] is True
    assert v["envoy"]["service"]["type"] == "LoadBalancer"
    # Metrics stay off the internet-facing Service: the ServiceMonitor scrapes the
    # chart's separate metrics Service (scraped once, /stats not published).
    assert v["envoy"]["service"]["exposeMetrics"] is False
    assert v["contour"]["ingressClass"]["name"] == networking.CONTOUR_INGRESS_CLASS
    # Not the cluster's default IngressClass unless a platform team says so.
    assert v["contour"]["ingressClass"]["default"] is False
    assert v["metrics"]["serviceMonitor"]["enabled"] is True
    assert ready(ctx, "kube-prometheus-stack") in contour.gates


def test_contour_without_prometheus_has_no_service_monitor_nor_gate() -> None:
    ctx = ctx_for(observability="none")
    contour = release(networking.build(ctx), ctx, "contour")
    assert values(contour)["metrics"]["serviceMonitor"]["enabled"] is False
    assert ready(ctx, "kube-prometheus-stack") not in contour.gates


# --- Istio -------------------------------------------------------------------


def test_istio_releases_namespaces_and_gates() -> None:
    ctx = ctx_for(mesh="istio")
    items = mesh.build(ctx)
    expected = {
        "istio-base": ("istio-base", "istio-system", None),
        "istiod": ("istiod", "istio-system", "istio-base"),
        "istio-ingressgateway": ("istio-gateway", "istio-ingress", "istiod"),
        "istio-egressgateway": ("istio-gateway", "istio-egress", "istiod"),
    }
    for component, (chart, namespace, after) in expected.items():
        r = release(items, ctx, component)
        ref = ctx.platform.inputs.chart(chart)
        assert for_provider(r)["chart"]["name"] == ref.chart
        assert for_provider(r)["namespace"] == namespace
        assert r.body["metadata"]["annotations"]["crossplane.io/external-name"] == component
        if after:
            assert ready(ctx, after) in r.gates
    assert for_provider(release(items, ctx, "istio-base"))["wait"] is True
    assert for_provider(release(items, ctx, "istiod"))["wait"] is True


def test_istiod_proxy_resources_and_tracing_provider() -> None:
    ctx = ctx_for(mesh="istio", observability="full")
    v = values(release(mesh.build(ctx), ctx, "istiod"))
    assert v["global"]["proxy"]["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "2000m", "memory": "1024Mi"},
    }
    assert v["meshConfig"]["enableTracing"] is True
    (provider,) = v["meshConfig"]["extensionProviders"]
    assert provider["name"] == mesh.OTEL_TRACING_PROVIDER
    assert provider["opentelemetry"] == {
        "service": "otel-collector.monitoring.svc.cluster.local",
        "port": 4317,
    }


def test_istio_telemetry_only_with_the_collector() -> None:
    full = ctx_for(mesh="istio", observability="full")
    items = mesh.build(full)
    telemetry = obj(items, full, "istio-telemetry")
    m = manifest(telemetry)
    assert m["apiVersion"] == "telemetry.istio.io/v1"
    assert m["kind"] == "Telemetry"
    assert m["metadata"] == {"name": "mesh-default", "namespace": "istio-system"}
    (tracing,) = m["spec"]["tracing"]
    assert tracing["providers"] == [{"name": mesh.OTEL_TRACING_PROVIDER}]
    assert 0 < tracing["randomSamplingPercentage"] <= 100
    assert ready(full, "istiod") in telemetry.gates
    assert telemetry.body["spec"]["readiness"]["policy"] == "SuccessfulCreate"

    for level in ("metrics", "none"):
        ctx = ctx_for(mesh="istio", observability=level)
        built = mesh.build(ctx)
        assert wrap.object_key(ctx.name, "istio-telemetry") not in keys(built)
        # No provider pointing at a collector that is not there.
        assert "extensionProviders" not in values(release(built, ctx, "istiod"))["meshConfig"]
        assert values(release(built, ctx, "istiod"))["meshConfig"]["enableTracing"] is False


def _gateway_validator() -> jsonschema.protocols.Validator:
    if not GATEWAY_SCHEMA.is_file():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"gateway chart schema missing: {GATEWAY_SCHEMA}")
        toolchain.missing(f"gateway chart schema missing: {GATEWAY_SCHEMA}")
    schema = json.loads(GATEWAY_SCHEMA.read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("component", ["istio-ingressgateway", "istio-egressgateway"])
def test_gateway_values_are_valid_for_the_chart_schema(profile: str, component: str) -> None:
    validator = _gateway_validator()
    ctx = ctx_for("aws", profile, mesh="istio")
    v = values(release(mesh.build(ctx), ctx, component))
    errors = [e.message for e in validator.iter_errors(v)]
    assert errors == []


def test_gateway_schema_rejects_unknown_keys() -> None:
    validator = _gateway_validator()
    assert list(validator.iter_errors({"serviceType": "LoadBalancer"}))


def test_gateway_service_types() -> None:
    ctx = ctx_for(mesh="istio")
    items = mesh.build(ctx)
    assert values(release(items, ctx, "istio-ingressgateway"))["service"]["type"] == "LoadBalancer"
    assert values(release(items, ctx, "istio-egressgateway"))["service"]["type"] == "ClusterIP"


# --- Linkerd -----------------------------------------------------------------


def test_linkerd_releases_gate_and_identity_secret() -> None:
    ctx = ctx_for("existing", "development")
    items = mesh.build(ctx)
    assert keys(items) == {
        wrap.release_key(ctx.name, "linkerd-crds"),
        wrap.release_key(ctx.name, "linkerd-control-plane"),
    }
    crds = release(items, ctx, "linkerd-crds")
    cp = release(items, ctx, "linkerd-control-plane")
    assert for_provider(crds)["namespace"] == for_provider(cp)["namespace"] == "linkerd"
    assert for_provider(crds)["wait"] is True
    assert values(crds) == {"installGatewayAPI": True}
    assert ready(ctx, "linkerd-crds") in cp.gates
    assert for_provider(cp)["valuesFrom"] == [
        {
            "secretKeyRef": {
                "name": "linkerd-identity-issuer-values",
                "namespace": "crossplane-system",
                "key": "values.yaml",
            }
        }
    ]
    # No key material is ever generated or inlined.
    assert "identityTrustAnchorsPEM" not in values(cp)
    assert "identity" not in values(cp)


def test_linkerd_production_is_highly_available() -> None:
    ctx = ctx_for(mesh="linkerd")
    v = values(release(mesh.build(ctx), ctx, "linkerd-control-plane"))
    assert v["controllerReplicas"] == 3
    assert v["enablePodAntiAffinity"] is True


def test_no_mesh_no_mesh_resources() -> None:
    assert mesh.build(ctx_for(mesh="none")) == []


# --- Kyverno -----------------------------------------------------------------


def test_policies_none_builds_nothing() -> None:
    assert policies.build(ctx_for(policies="none")) == []


@pytest.mark.parametrize(("choice", "action"), [("enforce", "Enforce"), ("audit", "Audit")])
def test_policies_use_the_rule_level_failure_action(choice: str, action: str) -> None:
    ctx = ctx_for(policies=choice)
    items = policies.build(ctx)
    kyverno = release(items, ctx, "kyverno")
    assert for_provider(kyverno)["namespace"] == "kyverno"
    assert for_provider(kyverno)["wait"] is True
    for name in ("require-gpu-limits", "require-storage-quota"):
        policy = obj(items, ctx, f"clusterpolicy-{name}")
        assert ready(ctx, "kyverno") in policy.gates
        m = manifest(policy)
        assert m["apiVersion"] == "kyverno.io/v1"
        assert m["kind"] == "ClusterPolicy"
        assert m["metadata"]["name"] == name
        assert m["spec"]["background"] is True
        assert "validationFailureAction" not in m["spec"]
        (rule,) = m["spec"]["rules"]
        assert rule["validate"]["failureAction"] == action


def test_gpu_policy_targets_model_pods_in_model_namespaces() -> None:
    ctx = ctx_for()
    m = manifest(obj(policies.build(ctx), ctx, "clusterpolicy-require-gpu-limits"))
    (rule,) = m["spec"]["rules"]
    (match,) = rule["match"]["any"]
    assert match["resources"]["kinds"] == ["Pod"]
    assert match["resources"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/part-of": "ollama-platform"}
    }
    assert match["resources"]["namespaceSelector"] == {
        "matchLabels": {"ollama.openhands.ai/model-namespace": "true"}
    }
    # At least one container carries the GPU limit (sidecars need not).
    assert rule["validate"]["pattern"] == {
        "spec": {"^(containers)": [{"resources": {"limits": {"nvidia.com/gpu": "?*"}}}]}
    }


def test_storage_policy_uses_the_claims_limit() -> None:
    base = ctx_for()
    ctx = dataclasses.replace(
        base, platform=dataclasses.replace(base.platform, max_storage_request="20Gi")
    )
    m = manifest(obj(policies.build(ctx), ctx, "clusterpolicy-require-storage-quota"))
    (rule,) = m["spec"]["rules"]
    (match,) = rule["match"]["any"]
    assert match["resources"]["kinds"] == ["PersistentVolumeClaim"]
    assert match["resources"]["namespaceSelector"] == {
        "matchLabels": policies.model_namespace_labels()
    }
    assert rule["validate"]["pattern"] == {
        "spec": {"resources": {"requests": {"storage": "<= 20Gi"}}}
    }
    default = manifest(obj(policies.build(base), base, "clusterpolicy-require-storage-quota"))
    assert default["spec"]["rules"][0]["validate"]["pattern"]["spec"]["resources"] == {
        "requests": {"storage": "<= 100Gi"}
    }


def test_scoping_label_constants() -> None:
    assert policies.model_namespace_labels() == {"ollama.openhands.ai/model-namespace": "true"}
    assert policies.model_pod_labels() == {"app.kubernetes.io/part-of": "ollama-platform"}


def test_kyverno_production_replicas() -> None:
    prod = ctx_for()
    dev = ctx_for("existing", "development")
    assert values(release(policies.build(prod), prod, "kyverno"))["admissionController"] == {
        "replicas": 3
    }
    assert values(release(policies.build(dev), dev, "kyverno")) == {}


# --- GPU operator ------------------------------------------------------------


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_gpu_operator_without_driver_where_the_image_has_it(cloud: str) -> None:
    ctx = ctx_for(cloud)
    op = release(gpu.build(ctx), ctx, "gpu-operator")
    v = values(op)
    assert v["driver"] == {"enabled": False}
    assert v["toolkit"] == {"enabled": False}
    assert v["devicePlugin"] == {"enabled": True}
    assert for_provider(op)["namespace"] == "gpu-operator"
    assert for_provider(op)["wait"] is True


def test_gpu_operator_absent_on_gcp() -> None:
    assert gpu.build(ctx_for("gcp")) == []


def test_gpu_operator_full_on_existing_clusters() -> None:
    ctx = ctx_for("existing")
    v = values(release(gpu.build(ctx), ctx, "gpu-operator"))
    assert v["driver"] == {"enabled": True}
    assert v["toolkit"] == {"enabled": True}
    assert v["devicePlugin"] == {"enabled": True}


@pytest.mark.parametrize("cloud", ["aws", "azure", "existing"])
def test_gpu_operator_daemonsets_tolerate_the_gpu_taint(cloud: str) -> None:
    ctx = ctx_for(cloud)
    v = values(release(gpu.build(ctx), ctx, "gpu-operator"))
    assert {"key": "nvidia.com/gpu", "operator": "Exists"} in v["daemonsets"]["tolerations"]


def test_gpu_operator_service_monitor_follows_observability() -> None:
    on = ctx_for()
    off = ctx_for(observability="none")
    v_on = values(release(gpu.build(on), on, "gpu-operator"))
    v_off = values(release(gpu.build(off), off, "gpu-operator"))
    assert v_on["dcgmExporter"]["serviceMonitor"]["enabled"] is True
    assert v_off["dcgmExporter"]["serviceMonitor"]["enabled"] is False


# --- Serving -----------------------------------------------------------------


def test_keda_for_deployment_serving() -> None:
    ctx = ctx_for(serving="deployment")
    items = serving.build(ctx)
    keda = release(items, ctx, "keda")
    assert keys(items) == {keda.key}
    assert for_provider(keda)["namespace"] == "keda"
    assert for_provider(keda)["wait"] is True


def test_knative_with_contour() -> None:
    ctx = ctx_for(serving="knative")
    items = serving.build(ctx)
    assert wrap.release_key(ctx.name, "keda") not in keys(items)
    operator = release(items, ctx, "knative-operator")
    assert for_provider(operator)["namespace"] == "knative-operator"
    assert for_provider(operator)["wait"] is True
    namespace = obj(items, ctx, "knative-serving-namespace")
    assert manifest(namespace) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "knative-serving"},
    }
    assert namespace.body["spec"]["readiness"]["policy"] == "SuccessfulCreate"
    ks = obj(items, ctx, "knative-serving")
    assert ready(ctx, "knative-operator") in ks.gates
    assert Gate(wrap.object_key(ctx.name, "knative-serving-namespace"), Need.READY) in ks.gates
    assert ready(ctx, "contour") in ks.gates
    m = manifest(ks)
    assert m["apiVersion"] == "operator.knative.dev/v1beta1"
    assert m["kind"] == "KnativeServing"
    assert m["metadata"]["namespace"] == "knative-serving"
    assert m["spec"]["ingress"] == {"contour": {"enabled": True}}
    assert m["spec"]["config"]["network"] == {
        "ingress-class": "contour.ingress.networking.knative.dev"
    }
    visibility = m["spec"]["config"]["contour"]["visibility"]
    assert "class: contour" in visibility
    assert "service: projectcontour/contour-envoy" in visibility


def test_knative_with_istio_when_there_is_no_contour() -> None:
    ctx = ctx_for(serving="knative", ingress="none", mesh="istio")
    ks = obj(serving.build(ctx), ctx, "knative-serving")
    m = manifest(ks)
    assert m["spec"]["ingress"] == {"istio": {"enabled": True}}
    assert m["spec"]["config"]["network"]["ingress-class"] == (
        "istio.ingress.networking.knative.dev"
    )
    assert ready(ctx, "istiod") in ks.gates
    assert ready(ctx, "contour") not in ks.gates


def test_knative_falls_back_to_kourier() -> None:
    ctx = ctx_for(serving="knative", ingress="none", mesh="linkerd")
    m = manifest(obj(serving.build(ctx), ctx, "knative-serving"))
    assert m["spec"]["ingress"] == {"kourier": {"enabled": True}}


# --- Across modules ----------------------------------------------------------


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("profile", PROFILES)
def test_deterministic_and_well_formed(cloud: str, profile: str) -> None:
    def build() -> list[Composed]:
        ctx = ctx_for(cloud, profile)
        return [c for m in MODULES for c in m.build(ctx)]

    def dump(items: list[Composed]) -> str:
        return json.dumps(
            [[c.key, c.body, [[g.key, g.need.value] for g in c.gates]] for c in items],
            sort_keys=True,
        )

    first = build()
    assert dump(first) == dump(build())
    by_key(first)
    for c in first:
        assert "name" not in c.body["metadata"]
        spec = c.body["spec"]
        assert spec["managementPolicies"] == wrap.IN_CLUSTER_MANAGEMENT_POLICIES
        assert spec["providerConfigRef"]["name"]
        if c.kind == "Release":
            assert spec["rollbackLimit"] == wrap.ROLLBACK_LIMIT
            assert spec["forProvider"]["namespace"] not in {"", "default"}
