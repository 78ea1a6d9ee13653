"""Claims change under a real Crossplane: models removed, settings edited, resources flapping, Fatal errors."""

from __future__ import annotations

import copy
import json
import time

from tests.e2e import claims as c
from tests.e2e.kube import FLEET_XR, Kube, condition, wait_for
from tests.e2e.provider import SimulatedProvider
from tests.e2e.stack import Stack

BOUND_S = 300


def test_removing_a_model_removes_its_fleets_and_their_objects(
    stack: Stack, kube: Kube, ready_claims, figures
) -> None:
    claim = ready_claims["multicloud"]
    xr = claim.xr(kube)
    model = claim.body["spec"]["models"][0]["name"]
    fleets = [
        o for o in c.composed(kube, xr).values()
        if o["kind"] == "XOllamaFleet" and o["spec"]["name"] == model
    ]
    assert fleets
    refs = [r for f in fleets for r in c.all_refs(kube, f)]
    before = {key: o["metadata"]["uid"] for key, o in c.composed(kube, xr).items()}
    smaller = c.without_model(claim, model)
    start = time.monotonic()
    smaller.apply(stack)
    _, took = wait_for(f"{model}'s fleets and their objects to go", lambda: c.gone(kube, refs), BOUND_S)
    figures["model removal s"] = {"objects": len(refs), "gone after": round(took, 1)}
    print(f"\nremoved {model}: {len(refs)} objects gone in {took:.1f}s")
    # What remains is what the function asks for now (the model's fleets, the
    # ClusterUsages for them and anything only that model needed are gone), and
    # nothing that stayed was replaced.
    def settled() -> bool:
        xr = claim.xr(kube)
        return set(c.composed(kube, xr)) == set(c.render_in_process(kube, xr))

    wait_for("the composed set to match the render", settled, BOUND_S)
    now = {key: o["metadata"]["uid"] for key, o in c.composed(kube, claim.xr(kube)).items()}
    assert not any(k.endswith(f"fleet-{model}") for k in now), sorted(now)
    assert set(now) <= set(before), sorted(set(now) - set(before))
    assert all(before[k] == uid for k, uid in now.items()), "an object was replaced"
    # The model's endpoints leave the connection Secret (its keys are fixed).
    def secret_updated() -> bool:
        return model not in json.loads(claim.secret(kube).get("endpoints", "{}"))

    wait_for("the connection Secret to drop the model", secret_updated, BOUND_S)
    # And its status entries and conditions name it no more.
    c.wait_ready(kube, smaller, BOUND_S)
    xr = smaller.xr(kube)
    assert model not in {m["name"] for m in xr["status"]["models"]}
    assert model not in json.dumps(xr["status"]["conditions"])
    ready_claims["multicloud"] = smaller
    assert time.monotonic() - start < BOUND_S


def test_changing_a_setting_updates_in_place(stack: Stack, kube: Kube, ready_claims) -> None:
    claim = ready_claims["existing"]
    xr = claim.xr(kube)
    fleet = next(o for o in c.composed(kube, xr).values() if o["kind"] == "XOllamaFleet")
    inner = c.composed(kube, fleet)
    before = {k: (o["metadata"]["uid"], o["metadata"]["generation"]) for k, o in inner.items()}
    changed = copy.deepcopy(claim.body)
    memory = "20Gi"
    original = changed["spec"]["models"][0]["resources"]["memory"]
    assert original != memory
    changed["spec"]["models"][0]["resources"]["memory"] = memory
    claim = c.Claim(changed)
    claim.apply(stack)

    def updated() -> bool:
        now = kube.get(FLEET_XR, fleet["metadata"]["name"])
        return now is not None and now["spec"]["resources"]["memory"] == memory

    wait_for("the fleet's memory to change", updated, BOUND_S)
    now = kube.get(FLEET_XR, fleet["metadata"]["name"])
    assert now["metadata"]["uid"] == fleet["metadata"]["uid"]

    def memory_of(sts: dict) -> tuple[str, str] | None:
        """(request, limit) of the model container's memory in a StatefulSet Object."""
        manifest = sts["spec"]["forProvider"]["manifest"]
        containers = {x["name"]: x for x in manifest["spec"]["template"]["spec"]["containers"]}
        res = containers["ollama"]["resources"]
        return res["requests"]["memory"], res["limits"]["memory"]

    key = "model-object-statefulset"
    assert memory_of(inner[key]) == (original, original), memory_of(inner[key])

    def statefulset_updated() -> dict | None:
        sts = c.composed(kube, now).get(key)
        return sts if sts is not None and memory_of(sts) == (memory, memory) else None

    # The new value reaches the StatefulSet the Object applies (request and limit).
    sts, _ = wait_for(f"the StatefulSet to ask for {memory}", statefulset_updated, BOUND_S)
    assert sts["metadata"]["uid"] == before[key][0], "the StatefulSet Object was replaced"
    assert sts["metadata"]["generation"] > before[key][1]
    after = c.composed(kube, now)
    assert set(after) == set(before)
    assert all(after[k]["metadata"]["uid"] == before[k][0] for k in before), "an object was replaced"
    edited = sorted(k for k in after if after[k]["metadata"]["generation"] > before[k][1])
    print(f"\nupdated in place: {edited}; {key} asks for {memory_of(sts)}")
    ready_claims["existing"] = claim
    c.wait_ready(kube, claim, BOUND_S)


def test_a_flapping_resource_is_kept_and_reported(
    kube: Kube, provider: SimulatedProvider, ready_claims
) -> None:
    claim = ready_claims["existing"]
    xr = claim.xr(kube)
    have = c.composed(kube, xr)
    key = next(k for k, o in have.items() if o["kind"] == "Release")
    target = have[key]
    name = target["metadata"]["name"]
    count = len(have)
    provider.fail(name, "simulated: release failed")
    try:
        def reported() -> bool:
            now = claim.xr(kube)
            prog = condition(now, "Progressing")
            return (
                condition(now, "Ready").get("status") == "False"
                and condition(now, "StackReady").get("status") == "False"
                and prog.get("status") == "True"
                and key in prog.get("message", "")
            )

        wait_for(f"the XR to report {key}", reported, BOUND_S)
        after = c.composed(kube, claim.xr(kube))
        assert len(after) == count, "a resource was withdrawn while it flapped"
        assert after[key]["metadata"]["uid"] == target["metadata"]["uid"]
        # The claim copies its XR's conditions on its own reconcile: wait, do not race it.
        wait_for(
            "the claim to say Progressing",
            lambda: condition(claim.get(kube), "Progressing").get("status") == "True",
            BOUND_S,
        )
    finally:
        provider.recover(name)
    c.wait_ready(kube, claim, BOUND_S)
    assert condition(claim.xr(kube), "Progressing")["reason"] == "Converged"


def test_a_fatal_error_is_visible_on_the_claim(stack: Stack, kube: Kube, ready_claims) -> None:
    """The render-time policy refuses an oversized model: the claim's owner sees why."""
    claim = ready_claims["existing"]
    good = copy.deepcopy(claim.body)
    bad = copy.deepcopy(good)
    bad["spec"].setdefault("components", {})["policies"] = "enforce"
    bad["spec"]["policy"] = {"maxStorageRequest": "10Gi"}
    c.Claim(bad).apply(stack)

    def fatal_on_claim() -> dict:
        cond = condition(claim.get(kube), "Progressing")
        return cond if cond.get("reason") == "FatalError" else {}

    cond, took = wait_for("the Fatal to reach the claim", fatal_on_claim, BOUND_S)
    assert cond["status"] == "False"
    assert "cannot compose XOllamaPlatform" in cond["message"]
    assert "maxStorageRequest" in cond["message"] or "10Gi" in cond["message"], cond
    xr = claim.xr(kube)
    assert condition(xr, "Synced")["status"] == "False"
    assert "fatal result" in condition(xr, "Synced")["message"]
    print(f"\nFatal on the claim after {took:.1f}s: {cond['message'][:200]}")
    # Fixed: the condition is sent again and nothing stale stays.
    c.Claim(good).apply(stack)

    def fixed() -> bool:
        now = claim.get(kube)
        prog = condition(now, "Progressing")
        return prog.get("reason") == "Converged" and condition(now, "Ready").get("status") == "True"

    wait_for("the claim to recover", fixed, BOUND_S)
    conds = claim.get(kube)["status"]["conditions"]
    assert not [x for x in conds if x.get("status") == "Unknown" or x.get("reason") == "FatalError"], conds


def test_an_invalid_fleet_claim_fails_on_the_claim(stack: Stack, kube: Kube, ready_claims) -> None:
    """A claim CEL cannot judge (the function's own rules) reaches the claim as the Fatal."""
    body = copy.deepcopy(ready_claims["fleet"].body)
    body["metadata"]["name"] = "too-big"
    body["spec"]["writeConnectionSecretToRef"] = {"name": "too-big-conn"}
    body["spec"]["policies"] = "enforce"
    body["spec"]["policy"] = {"maxStorageRequest": "10Gi"}
    claim = c.Claim(body)
    claim.apply(stack)
    try:
        def fatal_on_claim() -> dict:
            cond = condition(claim.get(kube), "Progressing")
            return cond if cond.get("reason") == "FatalError" else {}

        cond, _ = wait_for("the Fatal to reach the new claim", fatal_on_claim, BOUND_S)
        assert "cannot compose XOllamaFleet" in cond["message"], cond
        assert condition(claim.get(kube), "Ready").get("status") != "True"
    finally:
        stack.kubectl("delete", "-n", claim.namespace, "ollamafleet", claim.name, "--wait=false", check=False)


def test_a_second_platform_on_the_same_cluster_is_refused_naming_both(
    stack: Stack, kube: Kube, ready_claims, figures
) -> None:
    """One platform per cluster, through a real Crossplane's required resources.

    A second claim that targets examples/existing's cluster (ProviderConfig
    k3s-dev) gets a Fatal naming both claims and composes nothing; the first keeps
    working.
    """
    first = ready_claims["existing"]
    c.wait_ready(kube, first, BOUND_S)
    body = copy.deepcopy(first.body)
    body["metadata"]["name"] = "existing-twin"
    body["spec"]["writeConnectionSecretToRef"] = {"name": "existing-twin-conn"}
    twin = c.Claim(body)
    twin.apply(stack)
    try:
        def fatal_on_claim() -> dict:
            cond = condition(twin.get(kube), "Progressing")
            return cond if cond.get("reason") == "FatalError" else {}

        cond, took = wait_for("the one-platform-per-cluster Fatal", fatal_on_claim, BOUND_S)
        figures["second platform on a cluster: Fatal on the claim s"] = round(took, 1)
        message = cond["message"]
        ns = first.namespace
        assert "spec.clusters[0]: cluster 'k3s-dev' (ProviderConfig k3s-dev)" in message, message
        assert f"already served by claim {ns}/{first.name} " in message, message
        assert f"claim {ns}/{twin.name} " in message and "one platform per cluster" in message, message
        assert condition(twin.get(kube), "Ready").get("status") != "True"
        assert not (twin.xr(kube)["spec"].get("resourceRefs") or []), "the second platform composed"
        # The first platform is untouched: still Ready and converged.
        assert c.ready(first.get(kube))
        assert condition(first.xr(kube), "Progressing")["reason"] == "Converged"
        print(f"\none platform per cluster: Fatal on the second claim after {took:.1f}s")
    finally:
        stack.kubectl("delete", "-n", twin.namespace, "ollamaplatform", twin.name, "--wait=false", check=False)
    wait_for("the second claim to go", lambda: twin.get(kube) is None, BOUND_S)
