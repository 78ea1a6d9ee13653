"""GPU metrics on GKE: the DCGM exporter the function composes where no GPU operator runs."""

from __future__ import annotations

import dataclasses

import yaml

from function.stack import gpu, gpumetrics
from tests.charts import helm
from tests.factories import cluster_context


def _kinds(cloud: str, **kw: object) -> list[str]:
    ctx = cluster_context(cloud, **kw)  # type: ignore[arg-type]
    return [c.body["spec"]["forProvider"]["manifest"]["kind"] for c in gpumetrics.build(ctx)]


def test_the_image_is_the_one_the_pinned_gpu_operator_deploys() -> None:
    values = yaml.safe_load((helm.find_chart("gpu-operator", "v26.7.0").path / "values.yaml").read_text())
    exporter = values["dcgmExporter"]
    assert gpumetrics.IMAGE == f"{exporter['repository']}/{exporter['image']}:{exporter['version']}"


def test_only_gke_gets_the_exporter_and_the_operator_everywhere_else() -> None:
    assert _kinds("gcp") == ["DaemonSet", "Service", "ServiceMonitor"]
    for cloud in ("aws", "azure", "existing"):
        assert _kinds(cloud) == [], cloud
        operator = gpu.build(cluster_context(cloud))
        assert operator and operator[0].body["spec"]["forProvider"]["values"]["dcgmExporter"]["enabled"] is True
    assert gpu.build(cluster_context("gcp")) == []


def test_no_exporter_where_nothing_scrapes_or_no_gpu_is_asked() -> None:
    assert _kinds("gcp", components={"observability": "none"}) == []
    ctx = dataclasses.replace(cluster_context("gcp"), gpu_models=False)
    assert gpumetrics.build(ctx) == []


def test_the_exporter_reads_gkes_driver_and_waits_only_for_prometheus() -> None:
    ctx = cluster_context("gcp")
    built = gpumetrics.build(ctx)
    ds = built[0].body["spec"]["forProvider"]["manifest"]
    pod = ds["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LD_LIBRARY_PATH"] == "/usr/local/nvidia/lib64"
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert mounts["/usr/local/nvidia"] == "/home/kubernetes/bin/nvidia"
    assert mounts["/var/lib/kubelet/pod-resources"] == "/var/lib/kubelet/pod-resources"
    # it asks for no GPU (that would take one from the models) and tolerates the pool's taint
    assert "nvidia.com/gpu" not in str(container["resources"])
    assert {"key": "nvidia.com/gpu", "operator": "Exists"} in pod["tolerations"]
    for item in built:
        assert [g.key for g in item.gates if g.key.endswith("kube-prometheus-stack")], item.key
        assert item.body["spec"]["readiness"] == {"policy": "SuccessfulCreate"}
