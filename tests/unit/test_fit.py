"""Fit check at render time: a model must fit one node of its pool's instance type."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import fit, instances
from function.fn import FunctionRunner, to_struct
from function.models.common import Cloud, Profile, Resources
from function.models.input import DEFAULT_NODE_POOLS, FunctionInput
from function.models.platform import PlatformSpec
from tests.factories import cluster_dict

CLOUDS = ("aws", "gcp", "azure")
DEFAULT_TYPES = {"aws": "g6.xlarge", "gcp": "g2-standard-8", "azure": "Standard_NC8as_T4_v3"}


def platform(
    cloud: str, model: dict[str, Any], pool: dict[str, Any] | None = None
) -> dict[str, Any]:
    cluster = cluster_dict(f"{cloud}-1", cloud)
    if pool is not None:
        cluster["gpuNodePool"] = pool
    return {"clusters": [cluster], "models": [{"name": "big", "model": "llama3.1:70b", **model}]}


def run(
    spec: dict[str, Any], kind: str = "XOllamaPlatform", name: str = "demo-x1"
) -> fnv1.RunFunctionResponse:
    xr = {
        "apiVersion": "openhands.ai/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    return run_xr(xr)


def run_xr(xr: dict[str, Any]) -> fnv1.RunFunctionResponse:
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(xr))
    return asyncio.run(FunctionRunner().RunFunction(req, None))


def results(rsp: fnv1.RunFunctionResponse, severity: int) -> list[str]:
    return [r.message for r in rsp.results if r.severity == severity]


def test_every_default_instance_type_is_in_the_table() -> None:
    for (cloud, _profile), (instance_type, _gpu, count) in DEFAULT_NODE_POOLS.items():
        shape = instances.lookup(instance_type)
        assert shape is not None, instance_type
        assert shape.cloud is cloud
        assert shape.gpus >= count


def test_allocatable_is_less_than_capacity() -> None:
    g6 = instances.KNOWN["g6.xlarge"]
    # 16 GiB: 25% of 4 + 20% of 4 + 10% of 8 = 2.6 GiB reserved, plus 100 MiB eviction.
    assert g6.allocatable_memory == Decimal(16 * 1024**3) - Decimal("2.6") * instances.GIB - (
        100 * instances.MIB
    )
    # 4 cores: 6% + 1% + 2 x 0.5% = 80m reserved.
    assert g6.allocatable_cpu == Decimal("3.92")
    for shape in instances.KNOWN.values():
        assert 0 < shape.allocatable_memory < shape.memory_gib * instances.GIB
        assert 0 < shape.allocatable_cpu < shape.vcpus
        assert shape.gpus >= 1


@pytest.mark.parametrize(("cloud", "profile"), sorted(DEFAULT_NODE_POOLS))
def test_the_default_model_fits_every_default_pool(cloud: Cloud, profile: Profile) -> None:
    instance_type = DEFAULT_NODE_POOLS[(cloud, profile)][0]
    spec = PlatformSpec.model_validate({**platform(cloud.value, {}), "profile": profile.value})
    assert fit.errors(spec, FunctionInput()) == []
    shape = instances.KNOWN[instance_type]
    defaults = Resources()
    assert Decimal(defaults.cpu) <= shape.allocatable_cpu


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_model_too_big_for_one_node_is_fatal_with_field_and_type(cloud: str) -> None:
    """llama3.1:70b asking for 80Gi on a named production default node.

    Without a named type the pool is sized for it instead (tests/unit/test_sizing.py).
    """
    pool = {"instanceType": DEFAULT_TYPES[cloud]}
    rsp = run(platform(cloud, {"resources": {"memory": "80Gi", "cpu": "2"}}, pool))
    [fatal] = results(rsp, fnv1.SEVERITY_FATAL)
    assert "spec.models[0].resources.memory: 80Gi does not fit one " in fatal
    assert DEFAULT_TYPES[cloud] in fatal
    assert list(rsp.desired.resources) == []


@pytest.mark.parametrize("cloud", CLOUDS)
def test_too_many_cpus_is_fatal(cloud: str) -> None:
    pool = {"instanceType": DEFAULT_TYPES[cloud]}
    rsp = run(platform(cloud, {"resources": {"memory": "4Gi", "cpu": "64"}}, pool))
    [fatal] = results(rsp, fnv1.SEVERITY_FATAL)
    assert "spec.models[0].resources.cpu: 64 does not fit one " in fatal
    assert DEFAULT_TYPES[cloud] in fatal


def test_more_gpus_than_the_node_has_is_fatal() -> None:
    pool = {"instanceType": "g6.xlarge", "accelerator": {"type": "nvidia-l4", "count": 4}}
    rsp = run(platform("aws", {"resources": {"memory": "4Gi", "cpu": "1"}}, pool))
    [fatal] = results(rsp, fnv1.SEVERITY_FATAL)
    assert "spec.models[0].resources.gpu: the model asks for 4 GPUs" in fatal
    assert "g6.xlarge node" in fatal and "has 1" in fatal
    # The same pool is fine for a model without GPUs (where policies allow it).
    spec = platform("aws", {"resources": {"memory": "4Gi", "cpu": "1", "gpu": False}}, pool)
    spec["components"] = {"policies": "audit"}
    assert results(run(spec), fnv1.SEVERITY_FATAL) == []


def test_a_larger_instance_type_fits() -> None:
    pool = {"instanceType": "g6e.12xlarge", "accelerator": {"type": "nvidia-l40s", "count": 4}}
    rsp = run(platform("aws", {"resources": {"memory": "80Gi", "cpu": "16"}}, pool))
    assert results(rsp, fnv1.SEVERITY_FATAL) == []
    assert results(rsp, fnv1.SEVERITY_WARNING) == []


@pytest.mark.parametrize("cloud", CLOUDS)
def test_an_unknown_instance_type_is_a_warning_not_a_fatal(cloud: str) -> None:
    pool = {"instanceType": "x9-unknown-gpu"}
    rsp = run(platform(cloud, {"resources": {"memory": "80Gi", "cpu": "2"}}, pool))
    assert results(rsp, fnv1.SEVERITY_FATAL) == []
    [warning] = results(rsp, fnv1.SEVERITY_WARNING)
    assert "spec.models[0] (big)" in warning
    assert "x9-unknown-gpu is not in the fit table" in warning
    assert len(rsp.desired.resources) > 0


def test_existing_clusters_are_not_checked() -> None:
    rsp = run(platform("existing", {"resources": {"memory": "900Gi", "cpu": "500"}}))
    assert results(rsp, fnv1.SEVERITY_FATAL) == []
    assert results(rsp, fnv1.SEVERITY_WARNING) == []


# --- a standalone OllamaFleet names its instance type in target.instanceType ---------------


def run_fleet(spec: dict[str, Any]) -> fnv1.RunFunctionResponse:
    return run(spec, kind="XOllamaFleet", name="big")


def fleet(target: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "llama3.1:70b",
        "target": {"providerConfigName": "pc", "cloud": "aws", **target},
        "resources": resources,
    }


def test_a_fleet_too_big_for_its_instance_type_is_fatal() -> None:
    rsp = run_fleet(fleet({"instanceType": "g6.xlarge"}, {"memory": "80Gi", "cpu": "2"}))
    [fatal] = results(rsp, fnv1.SEVERITY_FATAL)
    assert "spec.resources.memory: 80Gi does not fit one g6.xlarge node" in fatal
    assert "spec.target.instanceType" in fatal
    assert list(rsp.desired.resources) == []
    rsp = run_fleet(fleet({"instanceType": "g6.xlarge", "acceleratorCount": 4}, {}))
    [fatal] = results(rsp, fnv1.SEVERITY_FATAL)
    assert "spec.resources.gpu: the model asks for 4 GPUs (spec.target.acceleratorCount)" in fatal


def test_a_fleet_that_fits_or_names_no_type_is_served() -> None:
    fits = run_fleet(fleet({"instanceType": "g6e.12xlarge"}, {"memory": "80Gi", "cpu": "16"}))
    assert results(fits, fnv1.SEVERITY_FATAL) == []
    assert results(fits, fnv1.SEVERITY_WARNING) == []
    assert len(fits.desired.resources) > 0
    untyped = run_fleet(fleet({}, {"memory": "80Gi", "cpu": "2"}))
    assert results(untyped, fnv1.SEVERITY_FATAL) == []
    assert results(untyped, fnv1.SEVERITY_WARNING) == []


def test_a_fleet_with_an_unknown_instance_type_is_warned_about() -> None:
    rsp = run_fleet(fleet({"instanceType": "x9-unknown-gpu"}, {"memory": "80Gi", "cpu": "2"}))
    assert results(rsp, fnv1.SEVERITY_FATAL) == []
    [warning] = results(rsp, fnv1.SEVERITY_WARNING)
    assert warning.startswith("spec.target.instanceType: x9-unknown-gpu is not in the fit table")
    assert len(rsp.desired.resources) > 0


def test_the_platform_names_the_pool_instance_type_on_its_fleets() -> None:
    from function import plan
    from function.models.platform import ModelSpec
    from tests.factories import cluster_context

    ctx = cluster_context("aws")
    assert ctx.node_pool is not None
    model = ModelSpec.model_validate({"name": "m", "model": "llama2"})
    assert plan.fleet_spec(ctx, model)["target"]["instanceType"] == ctx.node_pool.instance_type
    existing = cluster_context("existing")
    assert "instanceType" not in plan.fleet_spec(existing, model)["target"]


def advisory(rsp: fnv1.RunFunctionResponse) -> fnv1.Condition:
    [cond] = [c for c in rsp.conditions if c.type == "Advisories"]
    return cond


def test_a_persistent_warning_is_a_condition_and_one_event_not_one_per_reconcile() -> None:
    """Before the fix the Warning result (an Event) went out on every reconcile."""
    spec = platform("aws", {"resources": {"memory": "80Gi", "cpu": "2"}}, {"instanceType": "x9-unknown-gpu"})
    first = run(spec)
    [warning] = results(first, fnv1.SEVERITY_WARNING)
    cond = advisory(first)
    assert cond.status == fnv1.STATUS_CONDITION_TRUE
    assert cond.reason == "AttentionNeeded"
    assert cond.message == warning
    # Crossplane applied the condition: the next reconcile sends the condition again, no Event
    xr = {
        "apiVersion": "openhands.ai/v1alpha1",
        "kind": "XOllamaPlatform",
        "metadata": {"name": "demo-x1"},
        "spec": spec,
        "status": {"conditions": [{"type": "Advisories", "status": "True", "message": cond.message}]},
    }
    again = run_xr(xr)
    assert results(again, fnv1.SEVERITY_WARNING) == []
    assert advisory(again).message == cond.message
    # a changed situation is announced once more
    xr["status"]["conditions"][0]["message"] = "something else"
    assert results(run_xr(xr), fnv1.SEVERITY_WARNING) == [warning]


def test_advisories_say_false_when_nothing_needs_attention() -> None:
    pool = {"instanceType": "g6e.12xlarge", "accelerator": {"type": "nvidia-l40s", "count": 4}}
    cond = advisory(run(platform("aws", {"resources": {"memory": "80Gi", "cpu": "16"}}, pool)))
    assert cond.status == fnv1.STATUS_CONDITION_FALSE
    assert cond.reason == "NothingToReport"
