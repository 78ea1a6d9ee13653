"""Conditions a real Crossplane keeps: every one is sent on every call.

Crossplane keeps a custom condition's last value until the function sends that
type again, so a condition sent only in some states goes stale (a converged XR
kept ``Progressing=True ... waiting for`` beside ``Ready=True``). These tests
walk the examples and check that every call sends the same condition types,
that none contradicts the XR's readiness, and that a Fatal reaches the claim.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from scripts.render import load_docs, request, run
from scripts.stage import walk

ROOT = Path(__file__).resolve().parents[2]
TRUE, FALSE = fnv1.STATUS_CONDITION_TRUE, fnv1.STATUS_CONDITION_FALSE


def xr_of(case: str) -> dict[str, Any]:
    return load_docs(ROOT / "examples" / case / "xr.yaml")[0]


def conditions(rsp: fnv1.RunFunctionResponse) -> dict[str, fnv1.Condition]:
    types = [c.type for c in rsp.conditions]
    assert len(types) == len(set(types)), types
    return {c.type: c for c in rsp.conditions}


@pytest.mark.parametrize("case", ["existing", "multicloud", "fleet"])
def test_every_stage_sends_the_same_condition_types(case: str) -> None:
    xr = xr_of(case)
    seen = [set(conditions(run(request(xr, stage)))) for stage in walk(xr)]
    assert "Progressing" in seen[0]
    assert all(s == seen[0] for s in seen), seen


@pytest.mark.parametrize("case", ["existing", "multicloud", "fleet"])
def test_progressing_follows_readiness(case: str) -> None:
    xr = xr_of(case)
    stages = walk(xr)
    first = run(request(xr, stages[0]))
    cond = conditions(first)["Progressing"]
    assert first.desired.composite.ready == fnv1.READY_FALSE
    assert (cond.status, cond.reason) == (TRUE, "Creating")
    assert cond.message.startswith("waiting for ")
    last = run(request(xr, stages[-1]))
    cond = conditions(last)["Progressing"]
    assert last.desired.composite.ready != fnv1.READY_FALSE
    assert (cond.status, cond.reason) == (FALSE, "Converged"), cond
    assert "waiting" not in cond.message
    assert cond.target == fnv1.TARGET_COMPOSITE_AND_CLAIM


def test_removed_model_leaves_no_trace_in_conditions() -> None:
    xr = xr_of("multicloud")
    final = walk(xr)[-1]
    removed = xr["spec"]["models"][0]["name"]
    smaller = copy.deepcopy(xr)
    smaller["spec"]["models"] = smaller["spec"]["models"][1:]
    rsp = run(request(smaller, final))
    assert not rsp.results
    for cond in rsp.conditions:
        assert f"fleet-{removed}" not in cond.message, cond
    assert not any(f"fleet-{removed}" in k for k in rsp.desired.resources)


def test_fatal_reaches_the_claim_as_a_condition() -> None:
    xr = copy.deepcopy(xr_of("existing"))
    xr["spec"]["clusters"][0]["kubeconfig"] = {}
    rsp = run(request(xr))
    fatal = [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(fatal) == 1
    cond = conditions(rsp)["Progressing"]
    assert (cond.status, cond.reason) == (FALSE, "FatalError")
    assert cond.message == fatal[0].message
    assert "spec.clusters[0].kubeconfig" in cond.message
    assert cond.target == fnv1.TARGET_COMPOSITE_AND_CLAIM


def test_fixed_fatal_sends_progressing_again() -> None:
    xr = xr_of("existing")
    broken = copy.deepcopy(xr)
    broken["spec"]["clusters"][0]["kubeconfig"] = {}
    assert conditions(run(request(broken)))["Progressing"].reason == "FatalError"
    cond = conditions(run(request(xr)))["Progressing"]
    assert (cond.status, cond.reason) == (TRUE, "Creating")
