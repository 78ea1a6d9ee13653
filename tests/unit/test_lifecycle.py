"""Bring-up order, readiness, status and teardown protection, walked stage by stage."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import readiness
from function.composed import Composed, Gate, Need
from scripts.render import desired, load_docs, observed_map, request, run
from scripts.stage import observe, walk
from tests.factories import GATEWAY_ROUTING

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "xr.yaml").exists())


def xr_of(case: str) -> dict[str, Any]:
    return load_docs(ROOT / "examples" / case / "xr.yaml")[0]


@pytest.fixture(scope="module")
def walks() -> dict[str, list[dict[str, dict[str, Any]]]]:
    return {case: walk(xr_of(case)) for case in EXAMPLES}


def test_committed_stages_are_current() -> None:
    for case in EXAMPLES:
        files = sorted((ROOT / "examples" / case).glob("observed-*.yaml"))
        assert files, f"{case} has no observed-*.yaml stages; run scripts/stage.py"
    from scripts.stage import main

    assert main(["--check"]) == 0


def test_nothing_disappears_between_stages(walks) -> None:
    for case, stages in walks.items():
        for before, after in itertools.pairwise(stages):
            assert set(before) <= set(after), case


@pytest.mark.parametrize("case", EXAMPLES)
def test_final_stage_is_ready_with_status(case: str, walks) -> None:
    final = walks[case][-1]
    rsp = run(request(xr_of(case), final))
    assert not rsp.results, [r.message for r in rsp.results]
    assert rsp.desired.composite.ready != fnv1.READY_FALSE
    assert all(r.ready == fnv1.READY_TRUE for r in rsp.desired.resources.values())
    conditions = {c.type: c.status for c in rsp.conditions}
    assert conditions.pop("Progressing") == fnv1.STATUS_CONDITION_FALSE
    assert conditions.pop("Advisories") == fnv1.STATUS_CONDITION_FALSE  # nothing to act on
    assert conditions and all(s == fnv1.STATUS_CONDITION_TRUE for s in conditions.values()), (
        conditions
    )
    status = dict(rsp.desired.composite.resource["status"])
    if "clusters" in status:
        for cluster in status["clusters"]:
            assert cluster["ready"] is True
            if "nodePool" in cluster:
                assert cluster["nodePool"]["ready"] is True
                assert cluster["nodePool"]["name"]
            if "bucket" in cluster:
                assert cluster["bucket"]["url"]
        for model in status["models"]:
            assert model["ready"] is True
            assert model["endpoint"].startswith("http://")
    else:
        assert status["ready"] is True
        assert status["endpoint"].startswith("http://")


def test_first_stage_holds_in_cluster_work_until_provider_configs_exist(walks) -> None:
    first = walks["aws"][0]
    kinds = {body["kind"] for body in first.values()}
    assert "ProviderConfig" in kinds
    assert "Role" in kinds  # the node group itself waits for its policy attachments
    assert "Release" not in kinds
    assert "Object" not in kinds
    assert "XOllamaFleet" not in kinds


def test_releases_appear_after_provider_configs_and_fleets_after_node_pool(walks) -> None:
    stages = walks["aws"]

    def first_seen(predicate) -> int:
        return min(i for i, s in enumerate(stages) if any(predicate(k, b) for k, b in s.items()))

    pcs = first_seen(lambda k, b: b["kind"] == "ProviderConfig")
    releases = first_seen(lambda k, b: b["kind"] == "Release")
    pool_ready = min(
        i for i, s in enumerate(stages) if readiness.is_ready(s.get("aws-east-nodepool"))
    )
    fleets = first_seen(lambda k, b: b["kind"] == "XOllamaFleet")
    chart_objects = first_seen(
        lambda k, b: (
            b["kind"] == "Object"
            and b["spec"]["forProvider"]["manifest"]["kind"] == "ClusterPolicy"
        )
    )
    kyverno_ready = min(
        i for i, s in enumerate(stages) if readiness.is_ready(s.get("aws-east-release-kyverno"))
    )
    assert pcs < releases
    assert fleets > pool_ready
    assert chart_objects > kyverno_ready


def test_flapping_readiness_never_withdraws(walks) -> None:
    """Every resource turning not Ready at once changes no desired body, only readiness."""
    ready = walks["multicloud"][-1]
    steady = desired(run(request(xr_of("multicloud"), copy.deepcopy(ready))))
    final = copy.deepcopy(ready)
    for obj in final.values():
        assert obj["status"]["conditions"][0]["type"] == "Ready"
        obj["status"]["conditions"][0]["status"] = "False"
    rsp = run(request(xr_of("multicloud"), final))
    flapped = desired(rsp)
    assert set(flapped) == set(final)
    changed = sorted(k for k in flapped if flapped[k] != steady[k])
    assert not changed, [(k, flapped[k], steady[k]) for k in changed[:3]]
    # and what is desired is what exists: nothing the provider would re-apply
    for key, body in flapped.items():
        assert body["spec"] == ready[key]["spec"], key
    # only readiness changed: every resource with a Ready condition goes to Crossplane as not ready
    unready = {k for k, r in rsp.desired.resources.items() if r.ready == fnv1.READY_FALSE}
    assert unready == {k for k, b in final.items() if b["kind"] not in readiness.CONDITIONLESS_KINDS}
    assert rsp.desired.composite.ready == fnv1.READY_FALSE
    msg = next(c.message for c in rsp.conditions if c.type == "Progressing")
    assert msg.startswith("waiting for ")


def test_unready_keeps_creating_with_a_message(walks) -> None:
    stage = walks["aws"][1]
    rsp = run(request(xr_of("aws"), stage))
    assert rsp.desired.composite.ready == fnv1.READY_FALSE
    cond = {c.type: c for c in rsp.conditions}
    assert cond["Progressing"].reason == "Creating"
    assert "waiting for" in cond["Progressing"].message
    assert cond["NodePoolsReady"].status == fnv1.STATUS_CONDITION_FALSE


def test_usages_protect_node_pool_and_role(walks) -> None:
    final = walks["aws"][-1]
    usages = {k: b for k, b in final.items() if b["kind"] == "ClusterUsage"}
    assert "aws-east-nodepool-used-by-fleet-llama2-objects" in usages
    assert "aws-east-node-role-used-by-nodepool" in usages
    assert "aws-east-node-role-also-used-by-nodepool" in usages
    spec = usages["aws-east-nodepool-used-by-fleet-llama2-objects"]["spec"]
    assert spec["of"]["kind"] == "NodeGroup"
    assert spec["by"]["kind"] == "Object"
    assert spec["of"]["resourceSelector"]["matchControllerRef"] is True




def test_in_cluster_resources_cannot_block_deletion(walks) -> None:
    routing = 0
    for key, body in walks["multicloud"][-1].items():
        if body["kind"] in {"Release", "Object"}:
            assert "*" not in body["spec"]["managementPolicies"]
            if any(r in key for r in GATEWAY_ROUTING):
                routing += 1
                continue
            assert "Delete" not in body["spec"]["managementPolicies"]
    assert routing


def test_connection_details_have_no_secret_values(walks) -> None:
    rsp = run(request(xr_of("multicloud"), walks["multicloud"][-1]))
    details = dict(rsp.desired.composite.connection_details)
    assert set(details) == {"buckets", "endpoints"}
    for value in details.values():
        text = value.decode()
        assert "BEGIN" not in text and "password" not in text.lower()


def test_gate_on_uncomposed_resource_is_ignored() -> None:
    item = Composed("a", {"kind": "X", "apiVersion": "v1"}, gates=(Gate("absent", Need.READY),))
    assert readiness.select([item], {}).emitted == [item]


def test_gate_waits_for_ready_not_just_existence() -> None:
    dep = Composed("dep", {"kind": "X", "apiVersion": "v1"})
    item = Composed("a", {"kind": "X", "apiVersion": "v1"}, gates=(Gate("dep", Need.READY),))
    exists = {"dep": observe("dep", dep.body, "xr", ready=False)}
    assert readiness.select([dep, item], exists).held == {"a": ["dep"]}
    ready = {"dep": observe("dep", dep.body, "xr", ready=True)}
    assert {c.key for c in readiness.select([dep, item], ready).emitted} == {"dep", "a"}


def test_observed_files_round_trip() -> None:
    files = sorted((ROOT / "examples" / "aws").glob("observed-*.yaml"))
    observed = observed_map(load_docs(files[-1]))
    rsp = run(request(xr_of("aws"), observed))
    assert set(desired(rsp)) == set(observed)


def test_cluster_status_counts_only_its_own_resources() -> None:
    """A cluster named 'aws' must not claim the resources of a cluster named 'aws-east'."""
    xr = copy.deepcopy(xr_of("multicloud"))
    first = copy.deepcopy(xr["spec"]["clusters"][0])  # aws-east
    first["name"] = "aws"
    first["kubeconfig"] = {"secretRef": {"name": "aws-kc", "namespace": "crossplane-system"}}
    first["aws"] = {**first["aws"], "clusterName": "eks-other"}  # another cluster
    xr["spec"]["clusters"].append(first)
    final = walk(xr)[-1]
    final["aws-east-release-cilium"]["status"]["conditions"][0]["status"] = "False"
    rsp = run(request(xr, final))
    assert not rsp.results
    status = resource.struct_to_dict(rsp.desired.composite.resource)["status"]
    by_name = {c["name"]: c for c in status["clusters"]}
    assert by_name["aws-east"]["ready"] is False
    assert by_name["aws-east"]["components"]["cilium"] is False
    assert by_name["aws"]["ready"] is True
    assert by_name["aws"]["components"]["cilium"] is True
    assert by_name["aws"]["nodePool"]["name"] != by_name["aws-east"]["nodePool"]["name"]
