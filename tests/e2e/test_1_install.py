"""The package installs into a real Crossplane, and the API server judges claims with its CEL rules."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.e2e.kube import CRD, FUNCTION, XRD, Kube, condition
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
