"""The rule for observed state, driven through decoded requests.

Every example converges with the simulated providers of ``scripts.stage``
(which report what real providers report: ARNs, e-mails, client ids, the OIDC
issuer, the workload pool, and provider-kubernetes Objects' manifests as they
are on the cluster). Then every composed resource in turn loses
``status.atProvider``, turns not Ready, both, or vanishes from the observed
state, and the function is asked again with the real request: every resource
that still exists must still be desired, with a byte-identical body (a missing
resource is deleted by Crossplane; a changed one is rewritten).

About 2,100 requests, 20 s on a 2-core machine.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner
from scripts.render import desired, load_docs, request
from scripts.stage import walk

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "xr.yaml").exists())

Observed = dict[str, dict[str, Any]]


def _no_report(obj: dict[str, Any]) -> dict[str, Any] | None:
    obj.get("status", {}).pop("atProvider", None)
    return obj


def _not_ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == "Ready":
            cond.update(status="False", reason="Unavailable")
    return obj


def _both(obj: dict[str, Any]) -> dict[str, Any] | None:
    return _not_ready(_no_report(obj) or {})


def _gone(_: dict[str, Any]) -> dict[str, Any] | None:
    return None


PERTURBATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {
    "atProvider lost": _no_report,
    "not Ready": _not_ready,
    "both": _both,
    "vanished": _gone,
}


def answer(runner: FunctionRunner, xr: dict[str, Any], observed: Observed) -> dict[str, Any]:
    rsp, _ = runner.compose(request(xr, observed))
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert not fatal, fatal
    return desired(rsp)


@pytest.mark.parametrize("case", EXAMPLES)
def test_no_existing_resource_is_withdrawn_or_rewritten_when_a_report_flickers(
    case: str,
) -> None:
    xr = load_docs(ROOT / "examples" / case / "xr.yaml")[0]
    converged = walk(xr)[-1]
    runner = FunctionRunner(cache_size=0)
    baseline = answer(runner, xr, converged)
    assert set(converged) <= set(baseline)
    failures: list[str] = []
    changed_by_report = 0
    for key in sorted(converged):
        for name, perturb in PERTURBATIONS.items():
            observed = dict(converged)
            after = perturb(copy.deepcopy(converged[key]))
            if after is None:
                del observed[key]
            else:
                observed[key] = after
            if observed.get(key) == converged.get(key):
                continue  # nothing to lose (a ProviderConfig has no status)
            changed_by_report += 1
            got = answer(runner, xr, observed)
            for existing in sorted(observed):
                if existing not in got:
                    failures.append(f"{key} {name}: {existing} withdrawn")
                elif got[existing] != baseline[existing]:
                    failures.append(f"{key} {name}: {existing} rewritten")
    assert changed_by_report >= len(converged)  # every resource was perturbed at least once
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} in all)"


def test_an_observed_statefulset_at_seven_replicas_is_never_sent_back_at_another_count() -> None:
    xr = load_docs(ROOT / "examples" / "fleet" / "xr.yaml")[0]
    converged = walk(xr)[-1]
    key = "model-object-statefulset"
    assert key in converged
    runner = FunctionRunner(cache_size=0)
    sent = answer(runner, xr, converged)[key]["spec"]["forProvider"]["manifest"]["spec"]
    assert sent["replicas"] != 7  # the claim asks for another count
    # KEDA scaled it to 7: provider-kubernetes reports the live object
    scaled = copy.deepcopy(converged)
    scaled[key]["status"]["atProvider"]["manifest"]["spec"]["replicas"] = 7
    got = answer(runner, xr, scaled)[key]
    assert got["spec"]["forProvider"]["manifest"]["spec"]["replicas"] == 7
    # the Object now carries 7; its report goes missing, turns not Ready, or both
    carried = copy.deepcopy(scaled)
    carried[key]["spec"] = copy.deepcopy(got["spec"])
    for name, perturb in PERTURBATIONS.items():
        if name == "vanished":
            continue
        observed = {**carried, key: perturb(copy.deepcopy(carried[key])) or {}}
        again = answer(runner, xr, observed)[key]
        assert again["spec"]["forProvider"]["manifest"]["spec"]["replicas"] == 7, name
    # and a report of a new count is followed
    scaled[key]["status"]["atProvider"]["manifest"]["spec"]["replicas"] = 3
    got = answer(runner, xr, scaled)[key]
    assert got["spec"]["forProvider"]["manifest"]["spec"]["replicas"] == 3
