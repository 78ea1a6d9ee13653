"""What one XOllamaFleet composes: keys, manifests, gates, KEDA queries and policy."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import kubernetes_validate
import pytest

from function import fleet, naming
from function.composed import Composed, Gate, Need
from function.context import PROMETHEUS_ADDRESS
from function.errors import ClaimError
from function.fleet import checks, common, routing, workload
from function.models.fleet import FleetSpec
from function.models.input import DEFAULT_OLLAMA_IMAGE, FunctionInput
from function.quantity import is_quantity
from function.stack.serving import KNATIVE_FEATURES

XR = "llama2-x7k2p"
NS = "ollama-llama2-x7k2p"


def spec(**overrides: Any) -> FleetSpec:
    raw: dict[str, Any] = {
        "model": "llama2",
        "target": {"providerConfigName": "pc", "cloud": "aws"},
    }
    for name, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(name), dict):
            raw[name] = {**raw[name], **value}
        else:
            raw[name] = value
    return FleetSpec.model_validate(raw)


def build(
    s: FleetSpec | None = None, xr: str = XR, inputs: FunctionInput | None = None
) -> list[Composed]:
    return fleet.build(xr, s or spec(), inputs or FunctionInput())


def by_key(s: FleetSpec | None = None, xr: str = XR) -> dict[str, Composed]:
    return {c.key: c for c in build(s, xr)}


def manifests(s: FleetSpec | None = None, xr: str = XR) -> dict[str, dict[str, Any]]:
    return {
        k: c.body["spec"]["forProvider"]["manifest"]
        for k, c in by_key(s, xr).items()
        if c.kind == "Object"
    }


EXPOSURE = {
    "host": "llama2.models.example.com",
    "tlsSecretName": "llama2-tls",
    "allowedSourceRanges": ["203.0.113.0/24", "2001:db8::/32"],
}


def pod_of(m: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = m["spec"]["template"]["spec"]
    return pod


def container(m: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = pod_of(m)["containers"][0]
    return first


def trigger_query(s: FleetSpec) -> str:
    trigger = manifests(s)["model-object-scaledobject"]["spec"]["triggers"][0]
    return str(trigger["metadata"]["query"])


# --------------------------------------------------------------------------- keys


def test_deployment_mode_keys() -> None:
    assert [c.key for c in build()] == [
        "model-object-namespace",
        "model-object-statefulset",
        "model-object-service",
        "model-object-scaledobject",
        "model-usage-providerconfig",
        "model-usage-providerconfig-twin",
    ]


def test_knative_mode_has_no_deployment_service_keda_or_httpproxy() -> None:
    keys = [c.key for c in build(spec(serving="knative", ingress="contour"))]
    assert keys == [
        "model-object-namespace",
        "model-object-knative-service",
        "model-usage-providerconfig",
        "model-usage-providerconfig-twin",
    ]


def test_every_variant_uses_only_the_documented_keys() -> None:
    allowed = {
        common.key(n)
        for n in (
            "namespace",
            "serviceaccount",
            "statefulset",
            "service",
            "scaledobject",
            "knative-service",
            "httpproxy",
            "podmonitor",
        )
    } | {"model-usage-providerconfig", "model-usage-providerconfig-twin"}
    for s in all_variants():
        keys = [c.key for c in build(s)]
        assert len(keys) == len(set(keys))
        assert set(keys) <= allowed


def test_objects_use_the_target_provider_config_and_fleet_label() -> None:
    for c in build(spec(mesh="istio", ingress="contour", observability="full")):
        if c.kind == "ClusterUsage":
            continue
        assert c.body["apiVersion"] == "kubernetes.crossplane.io/v1alpha2"
        assert c.body["kind"] == "Object"
        assert c.body["spec"]["providerConfigRef"] == {"name": "pc"}
        assert c.body["metadata"]["labels"][naming.LABEL_FLEET] == XR
        assert "name" not in c.body["metadata"]


def test_target_defaults_and_overrides() -> None:
    t = common.target_for(XR, spec(), FunctionInput())
    assert (t.cluster, t.helm_provider_config, t.kubernetes_provider_config) == (
        "fleet",
        "pc",
        "pc",
    )
    assert t.key_prefix == "model"
    t = common.target_for(
        XR,
        spec(target={"clusterName": "aws-east", "helmProviderConfigName": "helm-pc"}),
        FunctionInput(),
    )
    assert (t.cluster, t.helm_provider_config, t.kubernetes_provider_config) == (
        "aws-east",
        "helm-pc",
        "pc",
    )
    assert t.key_prefix == "model"


def test_long_xr_name_gives_valid_label_values() -> None:
    xr = "a" * 80 + "-x7k2p"
    for c in build(xr=xr):
        value = c.body["metadata"]["labels"][naming.LABEL_FLEET]
        assert naming.is_dns_label(value)
        if c.kind != "Object":
            continue
        manifest = c.body["spec"]["forProvider"]["manifest"]
        for v in manifest["metadata"]["labels"].values():
            assert len(v) <= 63


# --------------------------------------------------------------------------- gates


def test_namespaced_objects_wait_for_the_namespace() -> None:
    ns_gate = Gate("model-object-namespace", Need.EXISTS)
    for s in all_variants():
        for c in build(s):
            if c.key == "model-object-namespace":
                assert c.gates == ()
            else:
                assert ns_gate in c.gates


def test_scaledobject_waits_for_the_statefulset() -> None:
    gates = by_key()["model-object-scaledobject"].gates
    assert Gate("model-object-statefulset", Need.EXISTS) in gates


def test_readiness_policies() -> None:
    keyed = by_key(
        spec(mesh="linkerd", ingress="contour", observability="metrics", exposure=EXPOSURE)
    )
    policy = {k: c.body["spec"]["readiness"] for k, c in keyed.items() if c.kind == "Object"}
    assert policy["model-object-namespace"] == {"policy": "SuccessfulCreate"}
    assert policy["model-object-scaledobject"] == {"policy": "DeriveFromObject"}
    assert policy["model-object-statefulset"]["policy"] == "DeriveFromCelQuery"
    assert "readyReplicas >= 1" in policy["model-object-statefulset"]["celQuery"]
    assert "'Valid'" in policy["model-object-httpproxy"]["celQuery"]
    knative = by_key(spec(serving="knative"))["model-object-knative-service"]
    assert knative.body["spec"]["readiness"] == {"policy": "DeriveFromObject"}


# --------------------------------------------------------------------------- namespace


def test_namespace_name_and_labels_without_mesh() -> None:
    ns = manifests()["model-object-namespace"]
    assert common.namespace_for(XR) == NS
    assert ns["metadata"]["name"] == NS
    assert ns["metadata"]["labels"][naming.MODEL_NAMESPACE_LABEL] == "true"
    assert "istio-injection" not in ns["metadata"]["labels"]
    assert "annotations" not in ns["metadata"]


def test_namespace_istio_injection_label() -> None:
    ns = manifests(spec(mesh="istio"))["model-object-namespace"]
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"
    assert "annotations" not in ns["metadata"]


def test_namespace_linkerd_annotation() -> None:
    ns = manifests(spec(mesh="linkerd"))["model-object-namespace"]
    assert ns["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}
    assert "istio-injection" not in ns["metadata"]["labels"]


def test_namespace_is_a_dns_label_for_long_names() -> None:
    ns = common.namespace_for("x" * 200)
    assert naming.is_dns_label(ns)
    assert ns == common.namespace_for("x" * 200)


def test_every_object_is_in_the_namespace() -> None:
    for s in all_variants():
        for key, m in manifests(s).items():
            if key != "model-object-namespace":
                assert m["metadata"]["namespace"] == NS, key


# --------------------------------------------------------------------------- storage


@pytest.mark.parametrize(
    ("storage", "default", "want"),
    [
        ({"size": "40Gi", "class": "fast-ssd"}, "rook-ceph-block", "fast-ssd"),
        ({"size": "40Gi", "class": ""}, "rook-ceph-block", "rook-ceph-block"),
        ({"size": "40Gi"}, "longhorn", "longhorn"),
        ({"size": "40Gi", "class": ""}, "", None),
    ],
)
def test_claim_template_storage_class_fallback(
    storage: dict[str, str], default: str, want: str | None
) -> None:
    sts = manifests(spec(storage=storage, defaultStorageClass=default))["model-object-statefulset"]
    [pvc] = sts["spec"]["volumeClaimTemplates"]
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert pvc["metadata"]["name"] == "models"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "40Gi"
    assert pvc["spec"].get("storageClassName") == want


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "existing"])
def test_one_volume_per_replica(cloud: str) -> None:
    """Each replica owns its claim: a template, no shared PVC, no pod-level claim."""
    out = manifests(spec(replicas=3, target={"cloud": cloud}, scaling={"maxReplicas": 5}))
    assert all(m["kind"] != "PersistentVolumeClaim" for m in out.values())
    sts = out["model-object-statefulset"]
    assert sts["kind"] == "StatefulSet"
    assert sts["spec"]["replicas"] == 3
    [template] = sts["spec"]["volumeClaimTemplates"]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = pod_of(sts)
    assert "volumes" not in pod  # the template is the only source of the models volume
    assert container(sts)["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]
    assert pod["initContainers"][0]["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]
    # Deleting the model frees its disks; scaling down keeps them for the next scale-up.
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }


def test_knative_pods_keep_the_model_on_their_own_node() -> None:
    kn = manifests(spec(serving="knative", storage={"size": "30Gi"}))[
        "model-object-knative-service"
    ]
    assert pod_of(kn)["volumes"] == [{"name": "models", "emptyDir": {"sizeLimit": "30Gi"}}]
    assert container(kn)["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]


# --------------------------------------------------------------------------- pod template


def test_image_is_pinned_everywhere() -> None:
    assert not DEFAULT_OLLAMA_IMAGE.endswith(":latest")
    for s in (spec(), spec(serving="knative")):
        for m in manifests(s).values():
            if "template" not in m.get("spec", {}):
                continue
            pod = pod_of(m)
            for c in pod["containers"] + pod.get("initContainers", []):
                assert c["image"] == DEFAULT_OLLAMA_IMAGE
                assert not c["image"].endswith(":latest")
                assert ":" in c["image"].rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    "image",
    ["docker.io/ollama/ollama:latest", "ollama/ollama", "localhost:5000/ollama", "ollama"],
)
def test_unpinned_images_are_refused(image: str) -> None:
    inputs = FunctionInput.model_validate({"spec": {"ollamaImage": image}})
    errors = checks.image_errors(inputs)
    assert [e.path for e in errors] == ["input.spec.ollamaImage"]
    with pytest.raises(ClaimError, match="not pinned"):
        fleet.build(XR, spec(), inputs)


@pytest.mark.parametrize(
    "image",
    [
        "docker.io/ollama/ollama:0.32.15",
        "localhost:5000/ollama:0.9.0",
        "ollama/ollama@sha256:" + "a" * 64,
    ],
)
def test_pinned_images_are_used(image: str) -> None:
    inputs = FunctionInput.model_validate({"spec": {"ollamaImage": image}})
    assert checks.image_errors(inputs) == []
    dep = {c.key: c for c in fleet.build(XR, spec(), inputs)}["model-object-statefulset"]
    assert container(dep.body["spec"]["forProvider"]["manifest"])["image"] == image


def test_deployment_container_env_port_and_probes() -> None:
    c = container(manifests()["model-object-statefulset"])
    assert c["name"] == workload.CONTAINER
    assert c["command"] == ["/bin/ollama", "serve"]
    assert c["ports"] == [{"name": "http", "containerPort": 11434, "protocol": "TCP"}]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert env["OLLAMA_MODELS"] == "/models"
    assert env["HOME"] == "/models"
    assert c["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/api/version", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/", "port": "http"}


def test_deployment_pulls_the_model_in_an_init_container() -> None:
    pod = pod_of(manifests(spec(model="llama2:13b"))["model-object-statefulset"])
    [init] = pod["initContainers"]
    assert init["image"] == DEFAULT_OLLAMA_IMAGE
    assert init["command"] == ["/bin/sh", "-c", workload.PULL_SCRIPT]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["OLLAMA_PULL_MODEL"] == "llama2:13b"
    assert env["OLLAMA_HOST"].startswith("127.0.0.1:")
    assert env["OLLAMA_MODELS"] == "/models"
    assert init["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]
    assert "ollama serve &" in workload.PULL_SCRIPT
    assert 'ollama pull "$OLLAMA_PULL_MODEL"' in workload.PULL_SCRIPT
    # The model reaches the script through the environment only.
    assert "llama2" not in workload.PULL_SCRIPT


def test_knative_pulls_in_the_serving_container_then_serves() -> None:
    m = manifests(spec(serving="knative", model="mistral"))["model-object-knative-service"]
    pod = pod_of(m)
    assert "initContainers" not in pod
    [c] = pod["containers"]
    assert c["command"] == ["/bin/sh", "-c", workload.SERVE_AFTER_PULL_SCRIPT]
    assert workload.SERVE_AFTER_PULL_SCRIPT.rstrip().endswith("exec ollama serve")
    assert f"127.0.0.1:{workload.PULL_PORT}" in workload.SERVE_AFTER_PULL_SCRIPT
    assert {e["name"]: e["value"] for e in c["env"]}["OLLAMA_PULL_MODEL"] == "mistral"
    # Knative: one port named http1 or h2c, probes name no port.
    assert c["ports"] == [{"name": "http1", "containerPort": 11434, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert "port" not in c[probe]["httpGet"]
    assert pod["timeoutSeconds"] == workload.KNATIVE_TIMEOUT_SECONDS


def test_pods_carry_the_model_pod_label_and_selectors_match() -> None:
    m = manifests(spec(ingress="contour"))
    labels = m["model-object-statefulset"]["spec"]["template"]["metadata"]["labels"]
    assert labels[naming.MODEL_POD_LABEL] == naming.MODEL_POD_LABEL_VALUE
    assert labels["app.kubernetes.io/name"] == "ollama"
    assert labels["app.kubernetes.io/instance"] == XR
    selector = m["model-object-statefulset"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert m["model-object-service"]["spec"]["selector"].items() <= labels.items()
    kn = manifests(spec(serving="knative"))["model-object-knative-service"]
    kn_labels = kn["spec"]["template"]["metadata"]["labels"]
    assert kn_labels[naming.MODEL_POD_LABEL] == naming.MODEL_POD_LABEL_VALUE


def test_pod_runs_restricted_as_non_root() -> None:
    for s, key in (
        (spec(), "model-object-statefulset"),
        (spec(serving="knative"), "model-object-knative-service"),
    ):
        pod = pod_of(manifests(s)[key])
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["fsGroup"] == 1000
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert sc["runAsNonRoot"] is True


def test_knative_pod_security_context_has_only_fields_knative_allows() -> None:
    pod = pod_of(manifests(spec(serving="knative"))["model-object-knative-service"])
    assert set(pod["securityContext"]) <= {
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "fsGroup",
        "supplementalGroups",
    }


@pytest.mark.parametrize(
    ("cpu", "limit"),
    [
        ("4", "8"),
        ("1", "2"),
        ("500m", "1"),
        ("1500m", "3"),
        ("250m", "500m"),
        ("0.1", "200m"),
        ("1.5", "3"),
        ("1m", "2m"),
        ("100u", "1m"),
        ("2k", "4000"),
    ],
)
def test_cpu_limit_is_twice_the_request(cpu: str, limit: str) -> None:
    assert workload.double_cpu(cpu) == limit
    assert is_quantity(limit)
    c = container(manifests(spec(resources={"cpu": cpu}))["model-object-statefulset"])
    assert c["resources"]["requests"]["cpu"] == cpu
    assert c["resources"]["limits"]["cpu"] == limit


def test_memory_limit_equals_request() -> None:
    c = container(manifests(spec(resources={"memory": "24Gi"}))["model-object-statefulset"])
    assert c["resources"]["requests"]["memory"] == "24Gi"
    assert c["resources"]["limits"]["memory"] == "24Gi"


def test_gpu_limit_toleration_and_node_selector_on_cloud() -> None:
    s = spec(target={"cloud": "gcp", "acceleratorCount": 2}, resources={"gpu": True})
    for key in ("model-object-statefulset",):
        pod = pod_of(manifests(s)[key])
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert pod["tolerations"] == [
            {"key": naming.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
        ]
        assert pod["nodeSelector"] == {naming.GPU_LABEL: "true"}
    kn = pod_of(
        manifests(spec(serving="knative", target={"acceleratorCount": 2}))[
            "model-object-knative-service"
        ]
    )
    assert kn["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert kn["nodeSelector"] == {naming.GPU_LABEL: "true"}


def test_gpu_on_existing_cluster_has_no_node_selector() -> None:
    pod = pod_of(manifests(spec(target={"cloud": "existing"}))["model-object-statefulset"])
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["tolerations"][0]["key"] == naming.GPU_TAINT_KEY
    assert "nodeSelector" not in pod


def test_cpu_only_model_has_no_gpu_limit_toleration_or_selector() -> None:
    for s, key in (
        (spec(resources={"gpu": False}), "model-object-statefulset"),
        (spec(serving="knative", resources={"gpu": False}), "model-object-knative-service"),
    ):
        pod = pod_of(manifests(s)[key])
        assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
        assert "tolerations" not in pod
        assert "nodeSelector" not in pod


def test_init_container_has_no_gpu() -> None:
    pod = pod_of(manifests()["model-object-statefulset"])
    assert "nvidia.com/gpu" not in pod["initContainers"][0]["resources"]["limits"]


@pytest.mark.parametrize(
    ("mesh", "annotation"),
    [
        ("istio", {"traffic.sidecar.istio.io/excludeOutboundPorts": "443"}),
        ("linkerd", {"config.linkerd.io/skip-outbound-ports": "443"}),
        ("none", None),
    ],
)
def test_pull_bypasses_the_mesh_for_the_registry(
    mesh: str, annotation: dict[str, str] | None
) -> None:
    meta = manifests(spec(mesh=mesh))["model-object-statefulset"]["spec"]["template"]["metadata"]
    assert meta.get("annotations") == annotation


# --------------------------------------------------------------------------- deployment


@pytest.mark.parametrize(
    ("replicas", "scaling", "want"),
    [
        (3, {"minReplicas": 1, "maxReplicas": 5}, 3),
        (1, {"minReplicas": 2, "maxReplicas": 5}, 2),  # raised to KEDA's floor
        (9, {"minReplicas": 1, "maxReplicas": 4}, 4),  # capped at KEDA's ceiling
    ],
)
def test_replicas_is_the_starting_count_within_kedas_bounds(
    replicas: int, scaling: dict[str, int], want: int
) -> None:
    s = spec(replicas=replicas, scaling=scaling, observability="metrics")
    out = manifests(s)
    assert out["model-object-statefulset"]["spec"]["replicas"] == want
    so = out["model-object-scaledobject"]["spec"]
    assert so["minReplicaCount"] <= want <= so["maxReplicaCount"]


def test_live_replica_count_wins_once_the_statefulset_exists() -> None:
    """KEDA's HPA owns the count after creation; the function writes back what it observes."""
    observed = {
        "model-object-statefulset": {
            "status": {"atProvider": {"manifest": {"spec": {"replicas": 7}}}}
        }
    }
    out = fleet.build(XR, spec(replicas=2), FunctionInput(), observed)
    sts = {c.key: c for c in out}["model-object-statefulset"]
    assert sts.body["spec"]["forProvider"]["manifest"]["spec"]["replicas"] == 7
    # Without an observed count (not created yet, or nothing reported) the claim's count.
    for seen in ({}, {"model-object-statefulset": {"status": {}}}):
        out = fleet.build(XR, spec(replicas=2), FunctionInput(), seen)
        sts = {c.key: c for c in out}["model-object-statefulset"]
        assert sts.body["spec"]["forProvider"]["manifest"]["spec"]["replicas"] == 2


def test_rolling_updates_take_one_replica_at_a_time() -> None:
    d = manifests(spec(replicas=3))["model-object-statefulset"]
    assert d["metadata"]["name"] == "ollama"
    # RollingUpdate replaces one pod at a time and waits for it to be Ready (never
    # every replica at once); Parallel only affects scaling.
    assert d["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"partition": 0},
    }
    assert d["spec"]["podManagementPolicy"] == "Parallel"
    assert d["spec"]["serviceName"] == "ollama"
    assert "strategy" not in d["spec"]


def test_service_is_cluster_ip_on_11434() -> None:
    svc = manifests()["model-object-service"]
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"][0]["port"] == 11434
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert svc["metadata"]["name"] == "ollama"


def test_endpoint() -> None:
    assert routing.endpoint(XR, spec()) == f"http://ollama.{NS}.svc.cluster.local:11434"
    assert routing.endpoint(XR, spec(serving="knative")) == f"http://ollama.{NS}.svc.cluster.local"


# --------------------------------------------------------------------------- KEDA


def test_scaledobject_targets_the_statefulset() -> None:
    s = spec(
        scaling={"minReplicas": 2, "maxReplicas": 6, "targetRequestsPerSecond": 40},
        observability="metrics",
        mesh="istio",
    )
    so = manifests(s)["model-object-scaledobject"]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "ollama",
    }
    assert so["spec"]["pollingInterval"] == 15
    assert so["spec"]["cooldownPeriod"] == 300
    assert so["spec"]["minReplicaCount"] == 2
    assert so["spec"]["maxReplicaCount"] == 6
    [trigger] = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["threshold"] == "40"
    assert trigger["metadata"]["serverAddress"] == PROMETHEUS_ADDRESS


def test_prometheus_address_override() -> None:
    s = spec(target={"prometheusAddress": "http://prom.obs.svc:9090"}, mesh="linkerd")
    so = manifests(s)["model-object-scaledobject"]
    assert so["spec"]["triggers"][0]["metadata"]["serverAddress"] == "http://prom.obs.svc:9090"


def test_istio_query() -> None:
    assert trigger_query(spec(mesh="istio", observability="metrics")) == (
        'sum(rate(istio_requests_total{reporter="destination",destination_service_name="ollama",'
        f'destination_service_namespace="{NS}"}}[2m]))'
    )


def test_linkerd_query() -> None:
    assert trigger_query(spec(mesh="linkerd", observability="metrics")) == (
        f'sum(rate(request_total{{direction="inbound",namespace="{NS}",statefulset="ollama"}}[2m]))'
    )


def test_no_mesh_query_reads_contour_envoy() -> None:
    exposed = spec(mesh="none", observability="metrics", ingress="contour", exposure=EXPOSURE)
    assert trigger_query(exposed) == (
        f'sum(rate(envoy_cluster_upstream_rq_total{{envoy_cluster_name="{NS}_ollama_11434"}}[2m]))'
    )


def test_no_mesh_and_no_route_scales_on_cpu() -> None:
    """A private model without a mesh: no proxy counts its requests, so KEDA uses CPU."""
    for s in (spec(mesh="none", observability="metrics", ingress="contour"), spec(mesh="none")):
        first = manifests(s)["model-object-scaledobject"]["spec"]["triggers"][0]
        assert first["type"] == "cpu"


def test_extra_triggers_pass_through_with_string_settings() -> None:
    metrics = [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": 70}},
        {
            "type": "kafka",
            "name": "queue",
            "metadata": {"topic": "prompts", "lagThreshold": "50", "tls": True, "ratio": 2.0},
            "authenticationRef": {"name": "kafka-auth"},
        },
    ]
    so = manifests(spec(scaling={"metrics": metrics}))["model-object-scaledobject"]
    triggers = so["spec"]["triggers"]
    assert len(triggers) == 3
    assert triggers[1] == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
    assert triggers[2] == {
        "type": "kafka",
        "name": "queue",
        "metadata": {"topic": "prompts", "lagThreshold": "50", "tls": "true", "ratio": "2"},
        "authenticationRef": {"name": "kafka-auth"},
    }


def test_max_below_min_is_clamped_and_reported() -> None:
    s = spec(scaling={"minReplicas": 4, "maxReplicas": 2})
    assert manifests(s)["model-object-scaledobject"]["spec"]["maxReplicaCount"] == 4
    errors = checks.spec_errors(s)
    assert [(e.path, e.message) for e in errors] == [
        ("spec.scaling.maxReplicas", "2 is less than minReplicas 4")
    ]


def test_spec_errors_for_bad_triggers() -> None:
    s = spec(
        scaling={
            "metrics": [
                {"metadata": {"a": "b"}},
                {"type": "cpu", "metadata": {"value": {"nested": 1}}, "extra": 1},
                {"type": "cpu", "metricType": "Bogus"},
            ]
        }
    )
    paths = sorted(e.path for e in checks.spec_errors(s))
    assert paths == [
        "spec.scaling.metrics[0].type",
        "spec.scaling.metrics[1]",
        "spec.scaling.metrics[1].metadata.value",
        "spec.scaling.metrics[2].metadata",
        "spec.scaling.metrics[2].metricType",
    ]
    assert checks.spec_errors(spec()) == []


def test_spec_errors_for_duplicate_trigger_names() -> None:
    s = spec(
        scaling={
            "metrics": [
                {"type": "cpu", "name": "requests-per-second", "metadata": {"value": "1"}},
                {"type": "cpu", "name": "a", "metadata": {"value": "1"}},
                {"type": "memory", "name": "a", "metadata": {"value": "1"}},
            ]
        }
    )
    assert [str(e) for e in checks.spec_errors(s)] == [
        "spec.scaling.metrics[0].name: trigger name requests-per-second is already used",
        "spec.scaling.metrics[2].name: trigger name a is already used",
    ]


def test_scale_to_zero_without_a_wake_up_is_refused() -> None:
    """minReplicas 0 in deployment serving: nothing would bring the model back."""
    for metrics in ([], [{"type": "cpu", "metadata": {"value": "50"}}]):
        s = spec(scaling={"minReplicas": 0, "maxReplicas": 3, "metrics": metrics})
        [error] = checks.spec_errors(s)
        assert error.path == "spec.scaling.minReplicas"
        assert "nothing to wake it" in error.message
        assert "serving knative" in error.message


@pytest.mark.parametrize(
    "overrides",
    [
        {"serving": "knative"},
        {"scaling": {"minReplicas": 0, "metrics": [{"type": "cron", "metadata": {"start": "x"}}]}},
        {"scaling": {"minReplicas": 1}},
    ],
)
def test_scale_to_zero_with_a_wake_up_is_allowed(overrides: dict[str, Any]) -> None:
    s = spec(**{"scaling": {"minReplicas": 0}, **overrides})
    assert checks.scale_to_zero_errors(s) == []


# --------------------------------------------------------------------------- knative


def test_knative_service_autoscaling_annotations() -> None:
    s = spec(
        serving="knative",
        replicas=2,
        scaling={"minReplicas": 0, "maxReplicas": 5, "targetRequestsPerSecond": 25},
    )
    kn = manifests(s)["model-object-knative-service"]
    assert kn["apiVersion"] == "serving.knative.dev/v1"
    assert kn["metadata"]["name"] == "ollama"
    ann = kn["spec"]["template"]["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert ann["autoscaling.knative.dev/metric"] == "rps"
    assert ann["autoscaling.knative.dev/target"] == "25"
    assert ann["autoscaling.knative.dev/min-scale"] == "0"
    assert ann["autoscaling.knative.dev/max-scale"] == "5"
    assert ann["autoscaling.knative.dev/initial-scale"] == "2"
    assert "keda" not in json.dumps(kn)


def test_knative_initial_scale_stays_within_bounds() -> None:
    s = spec(serving="knative", replicas=9, scaling={"minReplicas": 1, "maxReplicas": 3})
    ann = manifests(s)["model-object-knative-service"]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert ann["autoscaling.knative.dev/initial-scale"] == "3"


def test_knative_features_cover_what_the_pod_uses() -> None:
    pod = pod_of(manifests(spec(serving="knative"))["model-object-knative-service"])
    assert "kubernetes.podspec-volumes-emptydir" in KNATIVE_FEATURES
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    if "securityContext" in pod:
        assert "kubernetes.podspec-securitycontext" in KNATIVE_FEATURES
    if "tolerations" in pod:
        assert "kubernetes.podspec-tolerations" in KNATIVE_FEATURES
    if "nodeSelector" in pod:
        assert "kubernetes.podspec-nodeselector" in KNATIVE_FEATURES
    assert "initContainers" not in pod


# --------------------------------------------------------------------------- ingress


def test_contour_httpproxy_routes_to_the_service() -> None:
    hp = manifests(spec(ingress="contour", exposure=EXPOSURE))["model-object-httpproxy"]
    assert hp["apiVersion"] == "projectcontour.io/v1"
    assert hp["spec"]["virtualhost"]["fqdn"] == "llama2.models.example.com"
    [route] = hp["spec"]["routes"]
    assert route["services"] == [{"name": "ollama", "port": 11434}]
    assert route["timeoutPolicy"]["response"] == "15m"


def test_no_httpproxy_without_contour_or_exposure() -> None:
    assert "model-object-httpproxy" not in manifests(spec(ingress="none"))
    assert "model-object-httpproxy" not in manifests(spec(ingress="contour"))


# --------------------------------------------------------------------------- observability


def test_istio_podmonitor_scrapes_envoy() -> None:
    pm = manifests(spec(mesh="istio", observability="full"))["model-object-podmonitor"]
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["kind"] == "PodMonitor"
    [ep] = pm["spec"]["podMetricsEndpoints"]
    assert (ep["port"], ep["path"]) == ("http-envoy-prom", "/stats/prometheus")
    assert pm["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "ollama",
        "app.kubernetes.io/instance": XR,
    }


def test_linkerd_podmonitor_scrapes_the_proxy_with_statefulset_label() -> None:
    pm = manifests(spec(mesh="linkerd", observability="metrics"))["model-object-podmonitor"]
    [ep] = pm["spec"]["podMetricsEndpoints"]
    assert (ep["port"], ep["path"]) == ("linkerd-admin", "/metrics")
    assert ep["relabelings"][0]["targetLabel"] == "statefulset"
    assert ep["relabelings"][0]["sourceLabels"] == [
        "__meta_kubernetes_pod_label_linkerd_io_proxy_statefulset"
    ]


@pytest.mark.parametrize(
    ("mesh", "observability"), [("none", "full"), ("istio", "none"), ("linkerd", "none")]
)
def test_no_podmonitor(mesh: str, observability: str) -> None:
    assert "model-object-podmonitor" not in manifests(spec(mesh=mesh, observability=observability))


def test_knative_mode_also_gets_the_podmonitor() -> None:
    assert "model-object-podmonitor" in manifests(
        spec(serving="knative", mesh="istio", observability="full")
    )


# --------------------------------------------------------------------------- policy


GPU_MESSAGE = (
    "spec.resources.gpu: policy require-gpu-limits (enforce) needs GPU limits on model pods; "
    "set resources.gpu: true or policies: audit"
)
STORAGE_MESSAGE = (
    "spec.storage.size: 200Gi is more than policy.maxStorageRequest 100Gi, which policy "
    "require-storage-quota (enforce) refuses; request at most 100Gi, raise "
    "policy.maxStorageRequest, or set policies: audit"
)


def test_enforce_refuses_cpu_only_models() -> None:
    errors = checks.policy_errors(spec(policies="enforce", resources={"gpu": False}))
    assert [str(e) for e in errors] == [GPU_MESSAGE]
    assert errors[0].path == "spec.resources.gpu"


def test_enforce_refuses_storage_above_the_limit() -> None:
    errors = checks.policy_errors(spec(policies="enforce", storage={"size": "200Gi"}))
    assert [str(e) for e in errors] == [STORAGE_MESSAGE]
    assert errors[0].path == "spec.storage.size"


def test_enforce_reports_both() -> None:
    s = spec(policies="enforce", resources={"gpu": False}, storage={"size": "200Gi"})
    assert [str(e) for e in checks.policy_errors(s)] == [GPU_MESSAGE, STORAGE_MESSAGE]


@pytest.mark.parametrize(
    ("size", "limit", "refused"),
    [
        ("100Gi", "100Gi", False),
        ("0.1Ti", "100Gi", True),  # 102.4Gi
        ("107374182400", "100Gi", False),  # exactly 100Gi in bytes
        ("101G", "100Gi", False),  # 101e9 bytes < 100 * 2**30
        ("108G", "100Gi", True),
    ],
)
def test_storage_comparison_uses_quantities(size: str, limit: str, refused: bool) -> None:
    s = spec(policies="enforce", storage={"size": size}, policy={"maxStorageRequest": limit})
    assert bool(checks.policy_errors(s)) == refused


@pytest.mark.parametrize("policies", ["audit", "none"])
def test_audit_and_none_never_refuse(policies: str) -> None:
    s = spec(policies=policies, resources={"gpu": False}, storage={"size": "900Gi"})
    assert checks.policy_errors(s) == []


def test_enforce_with_compliant_spec_has_no_errors() -> None:
    assert checks.policy_errors(spec(policies="enforce")) == []


# --------------------------------------------------------------------------- determinism


def test_build_is_deterministic_and_does_not_share_state() -> None:
    for s in all_variants():
        first = [(c.key, json.dumps(c.body, sort_keys=True), c.gates) for c in build(s)]
        again = [(c.key, json.dumps(c.body, sort_keys=True), c.gates) for c in build(s)]
        assert first == again
    a, b = build(), build()
    a[1].body["spec"]["forProvider"]["manifest"]["spec"]["template"]["spec"]["containers"][0][
        "env"
    ].clear()
    assert b[1].body == build()[1].body


def test_build_does_not_mutate_the_spec() -> None:
    s = spec(scaling={"metrics": [{"type": "cpu", "metadata": {"value": 70}}]})
    before = s.model_dump()
    build(s)
    assert s.model_dump() == before


# --------------------------------------------------------------------------- schemas


def all_variants() -> list[FleetSpec]:
    out = []
    for serving, mesh, ingress, observability, gpu, cloud, storage_class in itertools.product(
        ("deployment", "knative"),
        ("istio", "linkerd", "none"),
        ("contour", "none"),
        ("full", "none"),
        (True, False),
        ("aws", "existing"),
        ("", "fast"),
    ):
        out.append(
            spec(
                serving=serving,
                mesh=mesh,
                ingress=ingress,
                observability=observability,
                resources={"gpu": gpu, "cpu": "1500m", "memory": "8Gi"},
                target={"cloud": cloud, "acceleratorCount": 2},
                storage={"size": "40Gi", "class": storage_class},
                defaultStorageClass="rook-ceph-block" if cloud == "aws" else "",
                # a model cache on half the cloud variants (test_cache covers each provider)
                cache=(
                    {"provider": "s3", "bucket": "ollama-cache-0123456789", "region": "us-east-1"}
                    if (cloud, storage_class) == ("aws", "fast")
                    else None
                ),
                exposure=EXPOSURE if (ingress, serving) == ("contour", "deployment") else None,
                scaling={
                    "minReplicas": 0,
                    "maxReplicas": 3,
                    "metrics": [
                        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": 80}},
                        {
                            "type": "cron",
                            "metadata": {
                                "timezone": "Etc/UTC",
                                "start": "0 8 * * 1-5",
                                "end": "0 18 * * 1-5",
                                "desiredReplicas": 1,
                            },
                        },
                    ],
                },
            )
        )
    return out


CORE_API_VERSIONS = {"v1", "apps/v1"}


def variant_objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(named Object wrappers, core manifests, custom-resource manifests) of every variant."""
    wrappers: list[dict[str, Any]] = []
    core: dict[str, dict[str, Any]] = {}
    custom: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(all_variants()):
        for c in build(s):
            if c.kind != "Object":
                continue
            body = copy.deepcopy(c.body)
            body["metadata"]["name"] = f"v{i}-{c.key}"
            wrappers.append(body)
            m = body["spec"]["forProvider"]["manifest"]
            (core if m["apiVersion"] in CORE_API_VERSIONS else custom)[
                json.dumps(m, sort_keys=True)
            ] = m
    return wrappers, list(core.values()), list(custom.values())


def test_core_manifests_validate_against_kubernetes_schemas() -> None:
    _, core, _ = variant_objects()
    assert {m["kind"] for m in core} == {
        "Namespace",
        "ServiceAccount",
        "StatefulSet",
        "Service",
    }
    for m in core:
        kubernetes_validate.validate(m, "1.33", strict=True)
        for c in m.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for value in (*c["resources"]["requests"].values(), *c["resources"]["limits"].values()):
                assert is_quantity(value)


def test_knative_pod_is_a_valid_kubernetes_pod() -> None:
    services = {
        json.dumps(m, sort_keys=True): m
        for s in all_variants()
        if s.serving.value == "knative"
        for m in [manifests(s)["model-object-knative-service"]]
    }
    assert services
    for kn in services.values():
        pod_spec = copy.deepcopy(pod_of(kn))
        pod_spec.pop("timeoutSeconds")  # a Knative field
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            # Knative's defaulting fills in the container port.
            pod_spec["containers"][0][probe]["httpGet"]["port"] = common.PORT
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", **kn["spec"]["template"]["metadata"]},
            "spec": pod_spec,
        }
        kubernetes_validate.validate(pod, "1.33", strict=True)


def test_without_prometheus_keda_scales_on_cpu() -> None:
    so = manifests(spec(observability="none"))["model-object-scaledobject"]
    first = so["spec"]["triggers"][0]
    assert first["type"] == "cpu"
    assert first["metricType"] == "Utilization"
    assert first["metadata"] == {"value": "70"}
    with_address = spec(
        observability="none",
        target={"prometheusAddress": "http://prom.example:9090"},
        mesh="istio",
    )
    first = manifests(with_address)["model-object-scaledobject"]["spec"]["triggers"][0]
    assert first["type"] == "prometheus"
    assert first["metadata"]["serverAddress"] == "http://prom.example:9090"


def test_azure_pods_tolerate_spot_pools() -> None:
    s = spec(target={"cloud": "azure"})
    pod = manifests(s)["model-object-statefulset"]["spec"]["template"]["spec"]
    assert {
        "key": "kubernetes.azure.com/scalesetpriority",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    } in pod["tolerations"]
