"""GPU only where needed: no GPU operator and no idle GPU nodes without a GPU model."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.stage import walk
from tests.factories import cluster_dict


def xr(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "openhands.ai/v1alpha1",
        "kind": "XOllamaPlatform",
        "metadata": {"name": "gpu-x1", "uid": "00000000-0000-4000-8000-000000000042"},
        "spec": {"components": {"policies": "audit"}, **spec},
    }


def final(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return walk(xr(spec))[-1]


def pool_min(state: dict[str, dict[str, Any]], cluster: str) -> int:
    body = state[f"{cluster}-nodepool"]["spec"]["forProvider"]
    if "scalingConfig" in body:  # EKS
        return int(body["scalingConfig"]["minSize"])
    if "autoscaling" in body:  # GKE
        return int(body["autoscaling"]["totalMinNodeCount"])
    return int(body["minCount"])  # AKS


CPU_MODEL = {"name": "small", "model": "tinyllama", "resources": {"gpu": False}}
GPU_MODEL = {"name": "llama2", "model": "llama2"}
SUBNETS = ["subnet-0a1b2c3d4e5f60718"]


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_a_cluster_without_gpu_models_gets_no_operator_and_no_idle_gpu_node(cloud: str) -> None:
    name = f"{cloud}-1"
    for models in ([], [CPU_MODEL]):
        state = final({"clusters": [cluster_dict(name, cloud)], "models": models})
        assert f"{name}-release-gpu-operator" not in state
        assert pool_min(state, name) == 0  # production would keep one GPU node


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_a_gpu_model_brings_the_operator_and_the_profiles_minimum(cloud: str) -> None:
    name = f"{cloud}-1"
    state = final({"clusters": [cluster_dict(name, cloud)], "models": [GPU_MODEL]})
    assert f"{name}-release-gpu-operator" in state
    assert pool_min(state, name) == 1


def test_gke_never_gets_the_operator_but_its_pool_still_scales_to_zero() -> None:
    state = final({"clusters": [cluster_dict("gcp-1", "gcp")], "models": [CPU_MODEL]})
    assert "gcp-1-release-gpu-operator" not in state
    assert pool_min(state, "gcp-1") == 0


def test_only_the_clusters_a_gpu_model_targets_get_gpus() -> None:
    spec = {
        "clusters": [
            cluster_dict("aws-1", "aws"),
            cluster_dict("aws-2", "aws", aws={"clusterName": "eks-2", "subnetIds": SUBNETS}),
        ],
        "models": [{**GPU_MODEL, "clusters": ["aws-1"]}],
    }
    state = final(spec)
    assert "aws-1-release-gpu-operator" in state
    assert "aws-2-release-gpu-operator" not in state
    assert (pool_min(state, "aws-1"), pool_min(state, "aws-2")) == (1, 0)


def test_an_explicit_minimum_is_kept() -> None:
    cluster = cluster_dict("aws-1", "aws", gpuNodePool={"minNodes": 2, "maxNodes": 4})
    state = final({"clusters": [cluster], "models": []})
    assert pool_min(state, "aws-1") == 2
