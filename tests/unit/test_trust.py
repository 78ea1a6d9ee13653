"""Attack findings on observed state and composition keys, each with the case that found it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner
from scripts.render import desired, load_docs, request
from scripts.stage import walk
from tests.factories import platform_spec

ROOT = Path(__file__).resolve().parents[2]


def fatals(rsp: fnv1.RunFunctionResponse) -> list[str]:
    return [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]


def test_models_whose_resources_share_a_name_on_one_cluster_are_refused() -> None:
    """Before the fix models x and x-objects composed two ClusterUsages with one key.

    The collision check compared keys across clusters only, so one usage
    silently replaced the other. Since no ClusterUsage names the fleet XR (only its
    Namespace Object, ``-objects``), those two models no longer collide; the check
    still refuses keys that do, once per collision (a ClusterUsage's twin, which
    collides with it, is not reported again).
    """
    from function.models.input import FunctionInput
    from function.plan import XrMeta, _collisions_within, plan_platform

    models = [{"name": "x", "model": "llama2"}, {"name": "x-objects", "model": "llama2"}]
    spec = platform_spec(("aws",), models=models)
    plan_platform(XrMeta(name="demo"), spec, FunctionInput(), {})  # accepted: no Fatal raised
    keys = [
        "aws-east-nodepool-used-by-fleet-x-objects",
        "aws-east-nodepool-also-used-by-fleet-x-objects",
        "aws-east-nodepool-used-by-fleet-x-objects",
        "aws-east-nodepool-also-used-by-fleet-x-objects",
    ]
    [error] = _collisions_within(spec, "aws-east", keys)
    assert error.path == "spec.models[1].name"
    assert "'x-objects' and 'x'" in error.message
    assert "used-by-fleet-x-objects" in error.message


GARBAGE = ["a\nb", "caf\u00e9@example.com", "x" * 600, "with space", "\x00"]


@pytest.mark.parametrize("value", GARBAGE)
@pytest.mark.parametrize(
    ("case", "kind", "field"),
    [
        ("gcp", "ServiceAccount", "email"),
        ("gcp", "ServiceAccount", "member"),
        ("azure", "UserAssignedIdentity", "clientId"),
        ("azure", "UserAssignedIdentity", "principalId"),
        ("aws", "Bucket", "arn"),
    ],
)
def test_a_garbage_report_is_no_report(case: str, kind: str, field: str, value: str) -> None:
    """Before the fix a reported e-mail or client id with a newline went into the bodies.

    A report that is no identifier (control characters, non-ASCII, spaces,
    over 512 characters) is unknown: what exists keeps what it carries.
    """
    xr = load_docs(ROOT / "examples" / case / "xr.yaml")[0]
    converged = walk(xr)[-1]
    runner = FunctionRunner(cache_size=0)
    baseline = desired(runner.compose(request(xr, converged))[0])
    keys = [k for k, v in converged.items() if v["kind"] == kind and field in v["status"].get("atProvider", {})]
    assert keys
    observed: dict[str, Any] = copy.deepcopy(converged)
    for key in keys:
        observed[key]["status"]["atProvider"][field] = value
    rsp = runner.compose(request(xr, observed))[0]
    assert not fatals(rsp)
    assert desired(rsp) == baseline
    assert value not in str(desired(rsp))


def test_observed_summaries_are_memoised_within_their_budget() -> None:
    """The decoded summary of an unchanged observed resource is reused, never changed."""
    from google.protobuf import struct_pb2

    from function import codec

    memo = codec.MemoLRU(entries=3, max_bytes=400)
    bodies = [struct_pb2.Struct() for _ in range(5)]
    for i, body in enumerate(bodies):
        body.update({"kind": "Bucket", "metadata": {"name": f"b{i}"}, "status": {"conditions": []}})
        memo.put(body.SerializeToString(deterministic=True), codec.observed_summary(body))
    assert len(memo) == 3  # bounded in entries
    assert memo.bytes <= 400
    assert memo.get(bodies[0].SerializeToString(deterministic=True)) is None  # oldest out
    assert memo.get(bodies[4].SerializeToString(deterministic=True)) == codec.observed_summary(bodies[4])
    small = codec.MemoLRU(entries=100, max_bytes=200)
    for body in bodies:
        small.put(body.SerializeToString(deterministic=True), {})
    assert small.bytes <= 200  # bounded in bytes
    # through the decoder: same summary, and the resource's own body stays readable
    first = codec.observed_resource(bodies[1])
    again = codec.observed_resource(bodies[1])
    assert first == again == codec.observed_summary(bodies[1])
    assert again.carried(("metadata", "name")) == "b1"
