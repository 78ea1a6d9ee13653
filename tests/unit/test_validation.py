"""Invalid XRs get one Fatal result naming the field path; earlier state survives."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner, to_struct
from tests.factories import cluster_dict


def xr(spec: dict[str, Any], kind: str = "XOllamaPlatform") -> dict[str, Any]:
    return {
        "apiVersion": "openhands.ai/v1alpha1",
        "kind": kind,
        "metadata": {"name": "demo-x1"},
        "spec": spec,
    }


def valid_spec() -> dict[str, Any]:
    return {
        "clusters": [cluster_dict("aws-1", "aws"), cluster_dict("gcp-1", "gcp")],
        "models": [{"name": "llama2", "model": "llama2"}],
    }


def run(body: dict[str, Any], earlier: dict[str, Any] | None = None) -> fnv1.RunFunctionResponse:
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(body))
    if earlier:
        req.desired.resources["from-earlier-step"].resource.CopyFrom(to_struct(earlier))
    return asyncio.run(FunctionRunner().RunFunction(req, None))


def mutate(path: str, value: Any) -> dict[str, Any]:
    """valid_spec() with ``value`` set at a dotted path (ints index lists)."""
    spec = valid_spec()
    node: Any = spec
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    for part in parts[:-1]:
        node = node[part]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return spec


DELETE = object()

CASES = [
    # (reason, spec, expected substring: path and message)
    (
        "missing cloud block",
        mutate("clusters.0.aws", DELETE),
        "spec.clusters[0].aws: required when cloud is aws",
    ),
    (
        "unknown cloud",
        mutate("clusters.1.cloud", "mars"),
        "spec.clusters[1].cloud: 'mars' is not one of",
    ),
    ("bad profile", {**valid_spec(), "profile": "prod"}, "spec.profile: 'prod' is not one of"),
    (
        "duplicate cluster names",
        mutate("clusters.1", cluster_dict("aws-1", "gcp")),
        "spec.clusters[1].name: duplicate cluster name 'aws-1'",
    ),
    (
        "duplicate model names",
        mutate("models", [{"name": "m", "model": "a"}, {"name": "m", "model": "b"}]),
        "spec.models[1].name: duplicate model name 'm'",
    ),
    (
        "model targets an unknown cluster",
        mutate("models.0.clusters", ["aws-1", "nope"]),
        "spec.models[0].clusters[1]: unknown cluster 'nope'",
    ),
    (
        "storage above policy.maxStorageRequest",
        mutate("models.0.storage", {"size": "200Gi"}),
        "spec.models[0].storage.size: 200Gi is more than policy.maxStorageRequest 100Gi",
    ),
    (
        "malformed quantity",
        mutate("models.0.resources", {"memory": "sixteen"}),
        "spec.models[0].resources.memory: 'sixteen' must be a Kubernetes quantity",
    ),
    (
        "cluster name not a DNS label",
        mutate("clusters.0.name", "AWS_1"),
        "spec.clusters[0].name: 'AWS_1' must be a DNS-1123 label",
    ),
    (
        "cluster name too long",
        mutate("clusters.0.name", "a" * 21),
        "spec.clusters[0].name: '" + "a" * 21 + "' is too long: at most 20 characters",
    ),
    (
        "minNodes above maxNodes",
        mutate("clusters.0.gpuNodePool", {"minNodes": 5, "maxNodes": 2}),
        "spec.clusters[0].gpuNodePool.minNodes: minNodes (5) must not exceed maxNodes (2)",
    ),
    ("replicas below one", mutate("models.0.replicas", 0), "spec.models[0].replicas: "),
    (
        "minReplicas above maxReplicas",
        mutate("models.0.scaling", {"minReplicas": 4, "maxReplicas": 2}),
        "spec.models[0].scaling.minReplicas: minReplicas (4) must not exceed maxReplicas (2)",
    ),
    (
        "both kubeconfig options",
        mutate(
            "clusters.0.kubeconfig",
            {"secretRef": {"name": "a", "namespace": "b"}, "providerConfigName": "c"},
        ),
        "spec.clusters[0].kubeconfig: set exactly one of secretRef or providerConfigName",
    ),
    (
        "neither kubeconfig option",
        mutate("clusters.0.kubeconfig", {}),
        "spec.clusters[0].kubeconfig: set exactly one of secretRef or providerConfigName",
    ),
    ("wrong type: clusters", {"clusters": "aws"}, "spec.clusters: "),
    ("wrong type: replicas", mutate("models.0.replicas", "three"), "spec.models[0].replicas: "),
    (
        "wrong type: spot",
        mutate("clusters.0.gpuNodePool", {"spot": "maybe"}),
        "spec.clusters[0].gpuNodePool.spot",
    ),
    (
        "empty subnets",
        mutate("clusters.0.aws.subnetIds", []),
        "spec.clusters[0].aws.subnetIds: at least one subnet is required",
    ),
    ("no clusters", {"clusters": []}, "spec.clusters: at least one cluster is required"),
    ("spec not an object", "garbage", "spec: "),
    (
        "contradictory components",
        {**valid_spec(), "components": {"objectStorage": "rook-ceph", "blockStorage": "longhorn"}},
        "spec.components.objectStorage: rook-ceph object storage needs blockStorage rook-ceph",
    ),
    (
        "missing region",
        mutate("clusters.0.region", DELETE),
        "spec.clusters[0].region: required when cloud is aws",
    ),
    (
        "gpuNodePool on existing",
        mutate("clusters.0", cluster_dict("k3s", "existing", gpuNodePool={"minNodes": 1})),
        "spec.clusters[0].gpuNodePool: not supported when cloud is existing",
    ),
]


@pytest.mark.parametrize(("reason", "spec", "want"), CASES, ids=[c[0] for c in CASES])
def test_invalid_xr_gets_fatal_with_path(reason: str, spec: Any, want: str) -> None:
    earlier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}}
    rsp = run(xr(spec), earlier=earlier)
    fatals = [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(fatals) == 1, reason
    assert want in fatals[0].message, f"{reason}: {fatals[0].message}"
    assert fatals[0].message.startswith("cannot compose XOllamaPlatform demo-x1: ")
    # earlier pipeline state is passed through untouched, nothing else added
    assert list(rsp.desired.resources) == ["from-earlier-step"]


def test_valid_spec_has_no_fatal() -> None:
    rsp = run(xr(valid_spec()))
    assert [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL] == []
    assert len(rsp.desired.resources) > 0


def test_storage_limit_is_not_fatal_under_audit() -> None:
    spec = mutate("models.0.storage", {"size": "200Gi"})
    spec["components"] = {"policies": "audit"}
    rsp = run(xr(spec))
    assert not [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]


def test_unknown_kind_is_fatal() -> None:
    rsp = run(xr(valid_spec(), kind="XSomethingElse"))
    assert rsp.results[0].severity == fnv1.SEVERITY_FATAL
    assert "unsupported composite kind 'XSomethingElse'" in rsp.results[0].message


def test_missing_composite_is_fatal_not_a_crash() -> None:
    rsp = asyncio.run(FunctionRunner().RunFunction(fnv1.RunFunctionRequest(), None))
    assert rsp.results[0].severity == fnv1.SEVERITY_FATAL


def test_bad_input_is_fatal_with_input_path() -> None:
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(xr(valid_spec())))
    req.input.CopyFrom(to_struct({"spec": {"charts": {"kyverno": {"chart": "kyverno"}}}}))
    rsp = asyncio.run(FunctionRunner().RunFunction(req, None))
    assert (
        "input.spec.charts.kyverno.repository: required field is missing" in rsp.results[0].message
    )


def test_invalid_fleet_gets_fatal() -> None:
    spec = {"model": "llama2", "target": {"providerConfigName": "pc"}, "replicas": 0}
    rsp = run(xr(spec, kind="XOllamaFleet"))
    assert "spec.replicas: " in rsp.results[0].message
    spec = {"target": {"providerConfigName": "pc"}}
    rsp = run(xr(spec, kind="XOllamaFleet"))
    assert "spec.model: required field is missing" in rsp.results[0].message


def test_platform_scale_to_zero_needs_knative() -> None:
    spec = mutate("models.0.scaling", {"minReplicas": 0, "maxReplicas": 2})
    fatals = [r for r in run(xr(spec)).results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(fatals) == 1
    assert "spec.models[0].scaling.minReplicas: 0 would scale the model to zero" in (
        fatals[0].message
    )
    spec["components"] = {"serving": "knative", "ingress": "contour"}
    assert not [r for r in run(xr(spec)).results if r.severity == fnv1.SEVERITY_FATAL]


def test_every_error_is_reported_at_once() -> None:
    spec = mutate("clusters.0.aws", DELETE)
    spec["models"] = [{"name": "a", "model": "x", "clusters": ["zzz"]}]
    msg = run(xr(spec)).results[0].message
    assert "spec.clusters[0].aws" in msg
    assert "spec.models[0].clusters[0]" in msg


def test_valid_spec_is_not_mutated() -> None:
    spec = valid_spec()
    before = copy.deepcopy(spec)
    run(xr(spec))
    assert spec == before


def test_response_cache_answers_repeats_with_identical_bytes() -> None:
    runner = FunctionRunner(cache_size=2)
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(xr(valid_spec())))
    first = asyncio.run(runner.RunFunction(req, None))
    second = asyncio.run(runner.RunFunction(req, None))
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(
        deterministic=True
    )
    assert len(runner.cache._items) == 1
    uncached = asyncio.run(FunctionRunner(cache_size=0).RunFunction(req, None))
    assert uncached.SerializeToString(deterministic=True) == first.SerializeToString(
        deterministic=True
    )


def test_response_cache_is_bounded_and_keyed_by_the_whole_request() -> None:
    runner = FunctionRunner(cache_size=2)
    for tag in ("a", "b", "c"):
        req = fnv1.RunFunctionRequest(meta=fnv1.RequestMeta(tag=tag))
        req.observed.composite.resource.CopyFrom(to_struct(xr(valid_spec())))
        rsp = asyncio.run(runner.RunFunction(req, None))
        assert rsp.meta.tag == tag
    assert len(runner.cache._items) == 2
