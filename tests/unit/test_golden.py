"""Golden renders: every example at its final stage, and fleet variants, byte for byte.

Set UPDATE_GOLDEN=1 to rewrite the expected files after a deliberate change,
then review the diff.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from scripts.render import desired, load_docs, observed_map, plain, request, run
from scripts.stage import walk

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "xr.yaml").exists())

FLEET_VARIANTS = {
    f"fleet-{serving}-{mesh}": {"serving": serving, "mesh": mesh, "ingress": "contour"}
    for serving in ("deployment", "knative")
    for mesh in ("istio", "linkerd", "none")
}
# With the model cache the platform sets on cloud clusters with a bucket.
FLEET_VARIANTS |= {
    "fleet-deployment-cache-s3": {
        "serving": "deployment",
        "mesh": "istio",
        "ingress": "contour",
        "cache": {"provider": "s3", "bucket": "ollama-cache-0123456789", "region": "us-east-1"},
    },
    "fleet-knative-cache-azureblob": {
        "serving": "knative",
        "mesh": "linkerd",
        "ingress": "contour",
        "cache": {
            "provider": "azureblob",
            "bucket": "models",
            "account": "ollamacache0123456789",
            "azureClientId": "00000000-0000-4000-8000-00000000c11d",
        },
    },
}


def text_of(rsp: fnv1.RunFunctionResponse) -> str:
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert not fatal, fatal
    docs: list[dict[str, Any]] = [
        {"composition-resource-name": key, **body} for key, body in desired(rsp).items()
    ]
    status = resource.struct_to_dict(rsp.desired.composite.resource)["status"]
    docs.append({"xr-status": plain(status)})
    return yaml.safe_dump_all(docs, sort_keys=True, width=100)


def check(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.yaml"
    if UPDATE:
        path.write_text(text)
    if not path.exists():
        pytest.fail(f"missing golden file {path}; UPDATE_GOLDEN=1 writes it (then review it)")
    assert path.read_text() == text, f"{name} differs from {path}; UPDATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize("case", EXAMPLES)
def test_example_final_stage_matches_golden(case: str) -> None:
    folder = ROOT / "examples" / case
    xr = load_docs(folder / "xr.yaml")[0]
    final = sorted(folder.glob("observed-*.yaml"))[-1]
    check(case, text_of(run(request(xr, observed_map(load_docs(final))))))


# Every cloud under the profile its example does not already cover.
PROFILE_VARIANTS = {"aws-development": "aws", "azure-development": "azure"}


@pytest.mark.parametrize("variant", sorted(PROFILE_VARIANTS))
def test_profile_variant_final_stage_matches_golden(variant: str) -> None:
    xr = load_docs(ROOT / "examples" / PROFILE_VARIANTS[variant] / "xr.yaml")[0]
    xr["spec"] = {**xr["spec"], "profile": "development"}
    for cluster in xr["spec"]["clusters"]:
        cluster.pop("gpuNodePool", None)  # take the development defaults
    for model in xr["spec"]["models"]:
        model.pop("resources", None)  # the defaults fit every default pool (fit check)
    stages = walk(xr)
    check(variant, text_of(run(request(xr, stages[-1]))))


@pytest.mark.parametrize("variant", sorted(FLEET_VARIANTS))
def test_fleet_variant_matches_golden(variant: str) -> None:
    xr = load_docs(ROOT / "examples" / "fleet" / "xr.yaml")[0]
    xr["spec"] = {**xr["spec"], **FLEET_VARIANTS[variant], "observability": "full"}
    stages = walk(xr)  # to the ready state, so every object of the variant is in the golden
    check(variant, text_of(run(request(xr, stages[-1]))))


def test_a_missing_golden_fails_and_is_not_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "GOLDEN", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "UPDATE", False)
    with pytest.raises(pytest.fail.Exception, match="missing golden file"):
        check("nothing-here", "text\n")
    assert not (tmp_path / "nothing-here.yaml").exists()
