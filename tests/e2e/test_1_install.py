"""The package installs into a real Crossplane, and the API server judges claims with its CEL rules."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests import invalid_claims as inv
from tests.e2e import claims as c
from tests.e2e.kube import CRD, FUNCTION, XRD, Kube, condition, wait_for
from tests.e2e.stack import FUNCTION_NAME, ROOT, Stack


def test_xrds_established_and_function_healthy(stack: Stack, kube: Kube, figures) -> None:
    xrds = {x["metadata"]["name"]: x for x in kube.list(XRD)}
    assert set(xrds) == {"xollamaplatforms.openhands.ai", "xollamafleets.openhands.ai"}
    for xrd in xrds.values():
        assert condition(xrd, "Established")["status"] == "True"
        assert condition(xrd, "Offered")["status"] == "True"
    fn = kube.get(FUNCTION, FUNCTION_NAME)
    assert condition(fn, "Healthy")["status"] == "True", fn["status"]
    # The API server compiled every CEL rule of the generated CRDs (a rule that
    # does not compile keeps the CRD from being created at all).
    for name in ("ollamaplatforms.openhands.ai", "xollamaplatforms.openhands.ai"):
        crd = kube.get(CRD, name)
        assert condition(crd, "Established")["status"] == "True"
        text = yaml.safe_dump(crd["spec"])
        assert "fieldPath: .aws" in text
        assert "fieldPath: .models" in text
    figures["bring-up s"] = {k: round(v, 1) for k, v in stack.timings.items()}
    print(f"\nbring-up: {figures['bring-up s']}")


def _invalid_docs() -> list[tuple[Path, dict]]:
    out = []
    for path in sorted((ROOT / "tests" / "cli" / "invalid").glob("*.yaml")):
        out += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def test_invalid_claims_are_rejected_with_field_paths(stack: Stack) -> None:
    stack.kubectl("create", "namespace", "x", check=False)
    docs = _invalid_docs()
    assert docs
    for path, doc in docs:
        done = stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc), check=False)
        assert done.returncode != 0, f"{path.name}: {doc['metadata']['name']} was accepted"
        err = done.stderr
        for expected in (
            "spec.clusters[0].aws: Invalid value",
            "aws is required when cloud is aws",
            "spec.clusters[0].kubeconfig: Invalid value",
            "set exactly one of kubeconfig.secretRef or kubeconfig.providerConfigName",
            "spec.clusters[0].gpuNodePool.minNodes: Invalid value",
            "spec.models[0].scaling.minReplicas: Invalid value",
            "spec.models: Invalid value",
            "every models[].clusters entry must name a cluster in spec.clusters",
        ):
            assert expected in err, f"{expected!r} not in:\n{err}"


@pytest.mark.parametrize("case", inv.REFUSED_BY_API, ids=[x.id for x in inv.REFUSED_BY_API])
def test_invalid_claim_is_refused_at_apply_time(case: inv.Invalid, stack: Stack) -> None:
    """Each claim of tests/invalid_claims.py the CRDs can judge: refused, naming the field."""
    stack.kubectl("create", "namespace", inv.NAMESPACE, check=False)
    done = stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(case.claim()), check=False)
    if done.returncode == 0:
        stack.kubectl("delete", "-n", inv.NAMESPACE, case.kind.lower(), case.name, "--wait=false", check=False)
    assert done.returncode != 0, f"{case.id}: accepted: {done.stdout}"
    assert f'The {case.kind} "{case.name}" is invalid' in done.stderr, done.stderr
    for expected in case.api:
        assert expected in done.stderr, f"{case.id}: {expected!r} not in:\n{done.stderr}"


def test_claims_only_the_function_can_judge_reach_the_claim_as_its_fatal(
    stack: Stack, kube: Kube, figures
) -> None:
    """Accepted by the API server, refused by the function: the claim's owner reads why."""
    stack.kubectl("create", "namespace", inv.NAMESPACE, check=False)
    cases = inv.REFUSED_BY_FUNCTION
    start = time.monotonic()
    try:
        for case in cases:
            stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(case.claim()))
        claims = {case.id: c.Claim(case.claim()) for case in cases}

        def fatal_on_every_claim() -> dict[str, dict]:
            found = {
                id_: condition(claim.get(kube), "Progressing") for id_, claim in claims.items()
            }
            done = all(x.get("reason") == "FatalError" for x in found.values())
            return found if done else {}

        found, took = wait_for("the Fatal on every claim", fatal_on_every_claim, 300, interval=1)
        figures["function-judged claims: Fatal on the claim s"] = round(took, 1)
        problems = []
        for case in cases:
            cond = found[case.id]
            want = f"cannot compose X{case.kind} "
            if cond["status"] != "False" or want not in cond["message"] or case.fatal not in cond["message"]:
                problems.append(f"{case.id}: {cond}")
            claim = claims[case.id].get(kube)
            if condition(claim, "Ready").get("status") == "True":
                problems.append(f"{case.id}: Ready")
            xr = claims[case.id].xr(kube)
            if "fatal result" not in condition(xr, "Synced").get("message", ""):
                problems.append(f"{case.id}: XR Synced {condition(xr, 'Synced')}")
            if (xr.get("spec") or {}).get("resourceRefs"):
                problems.append(f"{case.id}: composed {xr['spec']['resourceRefs']}")
        assert not problems, problems
        print(f"\n{len(cases)} function-judged claims: Fatal on each claim within {took:.1f}s")
    finally:
        for case in cases:
            stack.kubectl("delete", "-n", inv.NAMESPACE, case.kind.lower(), case.name, "--wait=false", check=False)
        kinds = {case.kind.lower() for case in cases}
        wait_for(
            "the invalid claims to go",
            lambda: all(not stack.kubectl("get", "-n", inv.NAMESPACE, k, "-o", "name").stdout.strip() for k in kinds),
            120,
        )
    assert time.monotonic() - start < 300
