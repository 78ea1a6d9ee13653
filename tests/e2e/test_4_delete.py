"""Deleting each claim removes everything it composed, within a measured bound."""

from __future__ import annotations

import time

import pytest

from tests.e2e import claims as c
from tests.e2e.kube import SECRET, Kube, wait_for
from tests.e2e.stack import Stack

DELETE_BOUND_S = 120


@pytest.mark.parametrize("case", ["existing", "fleet", "multicloud"])
def test_deleting_a_claim_removes_everything(
    case: str, stack: Stack, kube: Kube, ready_claims, figures
) -> None:
    claim = ready_claims[case]
    xr = claim.xr(kube)
    refs = c.all_refs(kube, xr)
    secret = claim.body["spec"]["writeConnectionSecretToRef"]["name"]
    start = time.monotonic()
    stack.kubectl("delete", "-n", claim.namespace, claim.body["kind"].lower(), claim.name, "--wait=false")

    def everything_gone() -> bool:
        return (
            claim.get(kube) is None
            and c.gone(kube, refs)
            and kube.get(SECRET, secret, claim.namespace) is None
        )

    _, took = wait_for(f"{case} and its {len(refs)} objects to go", everything_gone, DELETE_BOUND_S)
    figures.setdefault("deletion s", {})[case] = {"objects": len(refs), "gone after": round(took, 1)}
    print(f"\n{case}: {len(refs)} objects deleted in {took:.1f}s (bound {DELETE_BOUND_S}s)")
    assert time.monotonic() - start <= DELETE_BOUND_S
