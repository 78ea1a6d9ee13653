"""Deleting each claim removes everything it composed, within a measured bound, in order.

Crossplane runs with its Usage webhook (stack.WEBHOOKS), so each composed
ClusterUsage holds what it protects until its user is gone: the test records when
each object disappears and checks every ClusterUsage's order held. The webhook
is only called for objects labelled ``crossplane.io/in-use``, so before the
deletion every object a ClusterUsage holds must carry that label, and every edge
must be composed twice (``function.usages`` says why: without the twin,
Crossplane 2.1.4 could drop the label while another ClusterUsage still held
the object, and the object then went before its user).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.e2e import claims as c
from tests.e2e.kube import SECRET, Kube, wait_for
from tests.e2e.stack import WEBHOOKS, Stack

DELETE_BOUND_S = 120

# The ClusterUsages each claim composes (its fleets' included), as (held kind, holder kind),
# when test_3_change has removed multicloud's first model (mistral still runs on the
# three cloud clusters). A fleet's Namespace Object holds its ProviderConfig; on the
# clouds, the node pool is held by the fleets' Namespace Objects, and EKS's node role
# by the node group. Each edge by two ClusterUsages (function.usages.pair).
EXPECTED_EDGES: dict[str, set[tuple[str, str]]] = {
    "existing": {("ProviderConfig", "Object")},
    "fleet": {("ProviderConfig", "Object")},
    "onprem": {("ProviderConfig", "Object")},
    "multicloud": {
        ("ProviderConfig", "Object"),
        ("Role", "NodeGroup"),
        ("NodeGroup", "Object"),
        ("NodePool", "Object"),
        ("KubernetesClusterNodePool", "Object"),
    },
}

Ref = tuple[str, str, str]  # apiVersion, kind, name
IN_USE = "crossplane.io/in-use"


def _ref(obj: dict[str, Any]) -> Ref:
    return (obj["apiVersion"], obj["kind"], obj.get("name") or obj["metadata"]["name"])


def _usage_edges(kube: Kube, xr: dict[str, Any]) -> list[tuple[Ref, Ref, str]]:
    """(held, holder, usage name) for every ClusterUsage under ``xr``, as Crossplane resolved them."""
    edges = []
    for obj in c.tree(kube, xr):
        if obj["kind"] != "ClusterUsage":
            continue
        spec = obj["spec"]
        of, by = spec["of"], spec["by"]
        assert of.get("resourceRef") and by.get("resourceRef"), obj["metadata"]["name"]
        held = (of["apiVersion"], of["kind"], of["resourceRef"]["name"])
        holder = (by["apiVersion"], by["kind"], by["resourceRef"]["name"])
        edges.append((held, holder, obj["metadata"]["name"]))
    return edges


def _watch_gone(
    kube: Kube, refs: list[Ref], start: float, bound: float
) -> tuple[dict[Ref, float], dict[Ref, float]]:
    """When each object was first listed absent, and last listed present (s after ``start``).

    One list per kind per poll. An absence counts from the end of its list
    request, a presence from the start of its: so ``gone[a] < present[b]`` means
    ``a`` was surely gone while ``b`` still existed.
    """
    gone: dict[Ref, float] = {}
    present: dict[Ref, float] = {}
    kinds = sorted({(api, kind) for api, kind, _ in refs})
    while len(gone) < len(refs) and time.monotonic() - start < bound:
        for api, kind in kinds:
            before = time.monotonic() - start
            names = {o["metadata"]["name"] for o in kube.list(kube.kind(api, kind))}
            after = time.monotonic() - start
            for ref in refs:
                if ref[:2] != (api, kind) or ref in gone:
                    continue
                if ref[2] in names:
                    present[ref] = before
                else:
                    gone[ref] = after
        time.sleep(0.3)
    return gone, present


@pytest.mark.parametrize("case", ["existing", "fleet", "multicloud", "onprem"])
def test_deleting_a_claim_removes_everything(
    case: str, stack: Stack, kube: Kube, ready_claims, figures
) -> None:
    claim = ready_claims[case]
    xr = claim.xr(kube)
    refs = [_ref(r) for r in c.all_refs(kube, xr)]
    edges = _usage_edges(kube, xr)
    if WEBHOOKS:
        # The webhook protects only what carries the in-use label: all of it, now.
        unlabelled = sorted({held for held, _, _ in edges if not _in_use(kube, held)})
        assert not unlabelled, f"held by a ClusterUsage but not labelled {IN_USE}: {unlabelled}; edges {edges}"
    secret = claim.body["spec"]["writeConnectionSecretToRef"]["name"]
    start = time.monotonic()
    stack.kubectl("delete", "-n", claim.namespace, claim.body["kind"].lower(), claim.name, "--wait=false")
    gone, present = _watch_gone(kube, refs, start, DELETE_BOUND_S)
    left = sorted(set(refs) - set(gone))
    assert not left, f"{len(left)} objects left after {DELETE_BOUND_S}s: {left[:10]}"

    def claim_and_secret_gone() -> bool:
        return claim.get(kube) is None and kube.get(SECRET, secret, claim.namespace) is None

    wait_for(f"{case}'s claim and Secret to go", claim_and_secret_gone, DELETE_BOUND_S)
    took = round(max(gone.values()), 1)
    figures.setdefault("deletion s", {})[case] = {
        "objects": len(refs), "gone after": took, "ClusterUsages": len(edges)
    }
    print(f"\n{case}: {len(refs)} objects deleted in {took:.1f}s (bound {DELETE_BOUND_S}s)")
    elapsed = time.monotonic() - start
    assert elapsed <= DELETE_BOUND_S, f"claim and Secret gone after {elapsed:.1f}s"
    # Every ClusterUsage held: what it protects went no earlier than its user.
    if WEBHOOKS:
        kinds = {(held[1], holder[1]) for held, holder, _ in edges}
        assert kinds == EXPECTED_EDGES[case], (
            f"edge kinds missing {sorted(EXPECTED_EDGES[case] - kinds)}, "
            f"unexpected {sorted(kinds - EXPECTED_EDGES[case])}; edges {edges}"
        )
        # Each edge by two ClusterUsages (function.usages.pair).
        counts = Counter((held, holder) for held, holder, _ in edges)
        assert set(counts.values()) == {2}, f"edges not composed twice: {sorted(counts.items())}"
        watched = set(refs)
        inside = [(h, u, n) for h, u, n in edges if h in watched]
        outside = [(h, u, n) for h, u, n in edges if h not in watched]
        # Both ends composed by the claim: both were seen going, so the order was judged.
        unjudged = [
            f"{n}: {h} (gone {gone.get(h)}) used by {u} (composed here {u in watched}, gone {gone.get(u)})"
            for h, u, n in inside
            if not (u in watched and h in gone and u in gone)
        ]
        assert not unjudged, unjudged
        early = [
            f"{usage}: {held[1]} {held[2]} gone by {gone[held]:.1f}s while its user {holder[1]} "
            f"{holder[2]} was there at {present[holder]:.1f}s"
            for held, holder, usage in inside
            if holder in present and gone[held] < present[holder]
        ]
        assert not early, early
        # Held outside the claim (the ProviderConfig a platform team made): it outlives its users.
        for held, holder, usage in outside:
            assert holder in gone, f"{usage}: its user {holder} was not seen going (composed here: {holder in watched})"
            kind = kube.kind(held[0], held[1])
            assert kube.get(kind, held[2]) is not None, f"{usage}: {held[1]} {held[2]} was deleted"
        if case == "multicloud":
            # node pools and ProviderConfigs of three clouds, EKS's node role
            assert len({(h, u) for h, u, _ in inside}) >= 7, inside
        print(f"{case}: {len(inside)} ClusterUsage orders observed and held, {len(outside)} held outside the claim")


def _in_use(kube: Kube, ref: Ref) -> bool:
    obj = kube.get(kube.kind(ref[0], ref[1]), ref[2])
    return obj is not None and (obj["metadata"].get("labels") or {}).get(IN_USE) == "true"
