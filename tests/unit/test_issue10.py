"""K3s distribution, values overrides, one platform per cluster, and the stack defects the
chart tests found, each pinned by a test that failed before its fix."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import overrides, wrap
from function.composed import Composed
from function.fleet.scaling import scaled_object
from function.fn import FunctionRunner, to_struct
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.stack import gpu, networking, observability, storage
from scripts.render import composition_input, load_docs
from tests import toolchain
from tests.charts import wiring
from tests.factories import cluster_context

EXAMPLES = toolchain.ROOT / "examples"


def values(items: list[Composed], component: str) -> dict[str, Any]:
    for item in items:
        if item.key.endswith(f"-release-{component}"):
            return dict(item.body["spec"]["forProvider"].get("values") or {})
    msg = f"no Release {component}"
    raise AssertionError(msg)


def run(xr: dict[str, Any], others: list[dict[str, Any]] | None = None) -> fnv1.RunFunctionResponse:
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(xr))
    req.input.CopyFrom(to_struct(composition_input(xr["kind"])))
    for other in others or []:
        req.required_resources["other-xollamaplatforms"].items.add().resource.CopyFrom(to_struct(other))
    return asyncio.run(FunctionRunner(cache_size=0).RunFunction(req, None))


def fatals(rsp: fnv1.RunFunctionResponse) -> list[str]:
    return [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]


# --- K3s ---------------------------------------------------------------------------


def test_k3s_gpu_toolkit_uses_k3s_containerd() -> None:
    ctx = cluster_context("existing", distribution="k3s")
    toolkit = gpu.gpu_operator_values(ctx)["toolkit"]
    env = {e["name"]: e["value"] for e in toolkit["env"]}
    assert env["CONTAINERD_CONFIG"] == "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
    assert env["CONTAINERD_SOCKET"] == "/run/k3s/containerd/containerd.sock"
    generic = gpu.gpu_operator_values(cluster_context("existing"))["toolkit"]
    assert generic == {"enabled": True}


def test_k3s_control_plane_is_not_scraped() -> None:
    k3s = observability.kube_prometheus_stack_values(cluster_context("existing", distribution="k3s"))
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert k3s[component] == {"enabled": False}, component
    generic = observability.kube_prometheus_stack_values(cluster_context("existing", components={"cni": "none"}))
    assert "kubeScheduler" not in generic


def _existing_xr(**cluster: Any) -> dict[str, Any]:
    xr = copy.deepcopy(load_docs(EXAMPLES / "existing" / "xr.yaml")[0])
    xr["spec"]["clusters"][0].update(cluster)
    return xr


def test_cilium_on_k3s_needs_flannel_off() -> None:
    xr = _existing_xr(distribution="k3s")
    xr["spec"]["components"] = {"cni": "cilium"}
    [message] = fatals(run(xr))
    assert "spec.clusters[0].k3s.flannelDisabled" in message
    assert "--flannel-backend=none" in message
    xr["spec"]["clusters"][0]["k3s"] = {"flannelDisabled": True}
    assert fatals(run(xr)) == []


def test_distribution_is_for_existing_clusters_only() -> None:
    xr = copy.deepcopy(load_docs(EXAMPLES / "aws" / "xr.yaml")[0])
    xr["spec"]["clusters"][0]["distribution"] = "k3s"
    [message] = fatals(run(xr))
    assert "spec.clusters[0].distribution" in message


# --- values overrides ------------------------------------------------------------------


def test_overrides_deep_merge_over_computed_values() -> None:
    merged = overrides.deep_merge(
        {"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3], "e": True}, "d": None}
    )
    assert merged == {"a": {"b": 1, "c": [3], "e": True}, "d": None}


def test_input_values_reach_the_release() -> None:
    inputs = FunctionInput.model_validate(
        {"spec": {"values": {"contour": {"envoy": {"service": {"annotations": {"x": "y"}}}}}}}
    )
    ctx = cluster_context(inputs=inputs)
    v = values(networking.build(ctx), "contour")
    computed = values(networking.build(cluster_context()), "contour")["envoy"]["service"]
    # merged key by key: the computed settings stay, the override's key is added
    assert v["envoy"]["service"] == {
        **computed,
        "annotations": {**(computed.get("annotations") or {}), "x": "y"},
    }
    assert "x" not in (computed.get("annotations") or {})
    assert wrap.release_key("c", "x") == "c-release-x"


# --- one platform per cluster ----------------------------------------------------------


def _platform(name: str, created: str, claim: str) -> dict[str, Any]:
    xr = copy.deepcopy(load_docs(EXAMPLES / "existing" / "xr.yaml")[0])
    xr["metadata"]["name"] = name
    xr["metadata"]["creationTimestamp"] = created
    xr["metadata"]["labels"] = {"crossplane.io/claim-name": claim, "crossplane.io/claim-namespace": "team"}
    return xr


def test_second_platform_on_a_cluster_is_refused_naming_both_claims() -> None:
    old = _platform("first-aaaaa", "2026-01-01T00:00:00Z", "first")
    new = _platform("second-bbbbb", "2026-02-01T00:00:00Z", "second")
    [message] = fatals(run(new, [old, new]))
    assert "spec.clusters[0]" in message
    assert "team/first" in message and "team/second" in message
    assert "ProviderConfig k3s-dev" in message
    # the older platform keeps working
    assert fatals(run(old, [old, new])) == []


def test_platforms_on_different_clusters_coexist_and_ask_for_each_other() -> None:
    old = _platform("first-aaaaa", "2026-01-01T00:00:00Z", "first")
    new = _platform("second-bbbbb", "2026-02-01T00:00:00Z", "second")
    new["spec"]["clusters"][0]["kubeconfig"] = {"providerConfigName": "other"}
    rsp = run(new, [old])
    assert fatals(rsp) == []
    selector = rsp.requirements.resources["other-xollamaplatforms"]
    assert (selector.api_version, selector.kind) == ("openhands.ai/v1alpha1", "XOllamaPlatform")


# --- defects -------------------------------------------------------------------------


def test_keda_cpu_only_never_scales_to_zero() -> None:
    spec = FleetSpec.model_validate(
        {
            "model": "llama2",
            "target": {"providerConfigName": "pc", "cloud": "existing"},
            "observability": "none",
            "mesh": "none",
            "scaling": {"minReplicas": 0, "maxReplicas": 2},
        }
    )
    so = scaled_object("ns", "x", spec)
    assert {t["type"] for t in so["spec"]["triggers"]} == {"cpu"}
    assert so["spec"]["minReplicaCount"] == 1
    # and the wiring check catches the rule being broken
    broken = copy.deepcopy(so)
    broken["spec"]["minReplicaCount"] = 0
    cluster = wiring.Cluster("t", "existing", "generic", [], [broken], [])
    assert wiring.check_keda(cluster)[1]


def test_gpu_operator_and_longhorn_tolerate_azure_spot_taint() -> None:
    ctx = cluster_context("azure", gpuNodePool={"spot": True})
    taints = [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"},
        {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"},
    ]
    gpu_values = gpu.gpu_operator_values(ctx)
    longhorn = storage.longhorn_values(ctx)
    for tolerations in (
        gpu_values["daemonsets"]["tolerations"],
        gpu_values["node-feature-discovery"]["worker"]["tolerations"],
        longhorn["longhornManager"]["tolerations"],
        longhorn["longhornDriver"]["tolerations"],
        storage.ceph_csi_drivers_values(ctx)["operatorConfig"]["driverSpecDefaults"]["nodePlugin"]["tolerations"],
    ):
        assert all(wiring.tolerates(tolerations, t) for t in taints), tolerations
    assert longhorn["defaultSettings"]["taintToleration"] == (
        "nvidia.com/gpu:NoSchedule;kubernetes.azure.com/scalesetpriority:NoSchedule"
    )
    # what the operator had before: the GPU taint only
    assert not wiring.tolerates([{"key": "nvidia.com/gpu", "operator": "Exists"}], taints[1])


def test_rook_osds_on_cloud_volumes_or_filtered_devices() -> None:
    aws = storage.ceph_cluster_spec(cluster_context("aws"))["storage"]
    [device_set] = aws["storageClassDeviceSets"]
    [claim] = device_set["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "gp2"
    assert claim["spec"]["volumeMode"] == "Block"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert device_set["count"] == 3
    inputs = FunctionInput.model_validate({"spec": {"rook": {"deviceFilter": "^sd[b-z]", "osdSize": "1Ti"}}})
    metal = storage.ceph_cluster_spec(cluster_context("existing", inputs=inputs))["storage"]
    assert metal["deviceFilter"] == "^sd[b-z]"
    assert "storageClassDeviceSets" not in metal
    # before: useAllDevices false, no filter, no device sets: no OSD at all
    assert storage.ceph_cluster_spec(cluster_context("existing"))["storage"]["useAllDevices"] is True


def test_cilium_monitors_are_composed_after_prometheus() -> None:
    ctx = cluster_context("aws")
    kinds = [c.body["spec"]["forProvider"]["manifest"]["kind"] for c in networking.build(ctx) if c.body["kind"] == "Object"]
    assert kinds.count("ServiceMonitor") == 4  # agent, operator, Hubble, Envoy
    assert values(networking.build(ctx), "cilium")["prometheus"]["metricsService"] is True


def test_stack_monitors_follow_their_release_and_prometheus() -> None:
    """Every chart metrics Service gets a ServiceMonitor Object, gated, only with observability."""
    from function import stack
    from function.models.input import COMPONENT_CHARTS
    from function.stack import monitors

    assert {m.component for m in monitors.MONITORS} <= set(COMPONENT_CHARTS)
    ctx = cluster_context("aws", components={"serving": "knative", "observability": "full"})
    built = stack.build(ctx)
    releases = {i.key for i in built if i.body["kind"] == "Release"}
    objects = {
        i.body["spec"]["forProvider"]["manifest"]["metadata"]["name"]: i
        for i in built
        if i.body["kind"] == "Object" and i.body["spec"]["forProvider"]["manifest"]["kind"] == "ServiceMonitor"
    }
    for monitor in monitors.MONITORS:
        item = objects.get(monitor.name)
        if wrap.release_key(ctx.name, monitor.component) not in releases:
            assert item is None, monitor.name
            continue
        assert item is not None, monitor.name
        gates = {g.key for g in item.gates}
        assert gates >= {
            wrap.release_key(ctx.name, monitor.component),
            wrap.release_key(ctx.name, "kube-prometheus-stack"),
        }
    assert "knative-operator-webhook" in objects
    off = cluster_context("aws", components={"observability": "none"})
    assert not [i for i in stack.build(off) if i.key.endswith(tuple(f"servicemonitor-{m.name}" for m in monitors.MONITORS))]


# --- EKS: the EBS CSI driver add-on ---------------------------------------------------


def test_ebs_csi_driver_where_eks_volumes_are_claimed() -> None:
    """Rook's OSDs on gp2 and default-class volumes need the add-on; Longhorn does not."""
    from function.clouds import aws

    def keys(**components: str) -> dict[str, Composed]:
        ctx = cluster_context("aws", components=components or None)
        return {c.key: c for c in aws.build(ctx)}

    rook = keys(blockStorage="rook-ceph", objectStorage="none")
    assert rook["aws-1-ebs-csi-driver"].body["spec"]["forProvider"]["addonName"] == "aws-ebs-csi-driver"
    assert rook["aws-1-ebs-csi-driver"].body["spec"]["forProvider"]["preserve"] is True
    assert "aws-1-pod-identity-agent" in rook  # Pod Identity, even without the cache bucket
    identity = rook["aws-1-ebs-csi-identity"].body["spec"]["forProvider"]
    assert (identity["namespace"], identity["serviceAccount"]) == ("kube-system", "ebs-csi-controller-sa")
    role_labels = rook["aws-1-ebs-csi-role"].body["metadata"]["labels"]
    assert identity["roleArnSelector"]["matchLabels"].items() <= role_labels.items()
    policy = rook["aws-1-ebs-csi-policy"].body["spec"]["forProvider"]["policyArn"]
    assert policy == "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    trust = rook["aws-1-ebs-csi-role"].body["spec"]["forProvider"]["assumeRolePolicy"]
    assert "pods.eks.amazonaws.com" in trust
    assert "ec2.amazonaws.com" not in trust
    # the association before the add-on, the agent before the association
    assert [g.key for g in rook["aws-1-ebs-csi-identity"].gates] == ["aws-1-pod-identity-agent"]
    assert {g.key for g in rook["aws-1-ebs-csi-driver"].gates} == {"aws-1-ebs-csi-identity", "aws-1-ebs-csi-policy"}
    assert "aws-1-ebs-csi-driver" in keys(blockStorage="none", objectStorage="none")
    longhorn = keys(blockStorage="longhorn", objectStorage="none")
    assert not [k for k in longhorn if "ebs" in k or "pod-identity" in k]
    assert aws.needs_ebs(cluster_context("gcp")) is False
