"""Each components option switched on its own renders valid output on every cloud.

The multi-cloud example (aws, gcp, azure, existing) is walked to its ready state
once per option value; everything composed, and every manifest wrapped in an
Object, is validated with the real `crossplane beta validate` in one run, and
core objects against the Kubernetes schemas.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from scripts.render import desired, load_docs, request, run
from scripts.stage import walk
from tests import toolchain
from tests.charts.corpus import OPTIONS
from tests.manifests import wrapped_manifests

ROOT = toolchain.ROOT
# Choices that are refused on their own under the production profile's defaults.
REFUSED = {("objectStorage", "rook-ceph", "blockStorage", "longhorn")}


def variants() -> list[tuple[str, str]]:
    return [(field, member.value) for field, enum in OPTIONS.items() for member in enum]


def ready_state(field: str, value: str) -> list[dict[str, Any]]:
    xr = copy.deepcopy(load_docs(ROOT / "examples" / "multicloud" / "xr.yaml")[0])
    xr["spec"]["components"] = {field: value}
    stages = walk(xr)
    rsp = run(request(xr, stages[-1]))
    assert not rsp.results, f"{field}={value}: {[r.message for r in rsp.results]}"
    out = []
    for key, body in desired(rsp).items():
        body["metadata"]["name"] = f"m-{key}"[:253]
        out.append(body)
        if body["kind"] == "XOllamaFleet":
            out += fleet_ready_state(body)
    return out


def fleet_ready_state(fleet: dict[str, Any]) -> list[dict[str, Any]]:
    """What the nested XOllamaFleet composes, once it is ready."""
    xr = {"apiVersion": fleet["apiVersion"], "kind": fleet["kind"], **copy.deepcopy(fleet)}
    stages = walk(xr)
    rsp = run(request(xr, stages[-1]))
    assert not rsp.results, [r.message for r in rsp.results]
    out = []
    for key, body in desired(rsp).items():
        body["metadata"]["name"] = f"{fleet['metadata']['name']}-{key}"[:253]
        out.append(body)
    return out


def test_every_option_alone_renders_valid_output(tmp_path: Path) -> None:
    seen: dict[str, dict[str, Any]] = {}
    per_variant: dict[str, int] = {}
    for field, value in variants():
        docs = ready_state(field, value)
        per_variant[f"{field}={value}"] = len(docs)
        for doc in docs:
            seen[json.dumps(doc, sort_keys=True)] = doc
    docs = [seen[k] for k in sorted(seen)]
    crd_kinds, core = wrapped_manifests(docs)
    out = tmp_path / "matrix.yaml"
    out.write_text(yaml.safe_dump_all(docs + crd_kinds))
    code, log = toolchain.validate([*toolchain.extensions(), ROOT / "xrds"], out)
    total = len(docs) + len(crd_kinds)
    assert code == 0, log[-4000:]
    assert f"Total {total} resources: 0 missing schemas, {total} success cases" in log
    for manifest in core:
        kubernetes_validate.validate(manifest, "1.33", strict=True)
    print(f"\nmatrix: {len(per_variant)} variants, {total} unique resources, {len(core)} core objects")
    # every option changes what is composed somewhere
    assert len(set(per_variant.values())) > 1, per_variant


def test_switching_an_option_changes_the_output() -> None:
    def kinds(field: str, value: str) -> set[str]:
        out = set()
        for doc in ready_state(field, value):
            if doc["kind"] == "Object":
                out.add(doc["spec"]["forProvider"]["manifest"]["kind"])
            elif doc["kind"] == "Release":
                out.add(doc["spec"]["forProvider"]["chart"]["name"])
            else:
                out.add(doc["kind"])
        return out

    assert "cilium" in kinds("cni", "cilium") and "cilium" not in kinds("cni", "none")
    assert "linkerd-control-plane" in kinds("mesh", "linkerd")
    assert "istiod" not in kinds("mesh", "linkerd")
    assert "HTTPProxy" not in kinds("ingress", "none")
    assert "longhorn" in kinds("blockStorage", "longhorn")
    assert "CephObjectStore" in kinds("objectStorage", "rook-ceph")
    assert "operator" in kinds("objectStorage", "minio")
    assert "KnativeServing" in kinds("serving", "knative")
    assert "ScaledObject" not in kinds("serving", "knative")
    assert "OpenTelemetryCollector" not in kinds("observability", "metrics")
    assert "ClusterPolicy" not in kinds("policies", "none")
