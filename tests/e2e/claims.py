"""Claims in the real API server: apply, find their XRs, wait, compare with the render."""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from scripts.render import desired, request, run
from tests.e2e.kube import (
    FLEET_CLAIM,
    FLEET_XR,
    PLATFORM_CLAIM,
    PLATFORM_XR,
    SECRET,
    Kind,
    Kube,
    condition,
    wait_for,
)
from tests.e2e.stack import ROOT, Stack

NAMESPACE = "team-ml"
RESOURCE_NAME = "crossplane.io/composition-resource-name"


def example_claim(case: str) -> dict[str, Any]:
    """An example's claim, asking for a connection Secret in its namespace."""
    claim = yaml.safe_load((ROOT / "examples" / case / "claim.yaml").read_text())
    claim["spec"]["writeConnectionSecretToRef"] = {"name": f"{claim['metadata']['name']}-conn"}
    return claim


@dataclass
class Claim:
    """One claim and how to reach its XR."""

    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def kind(self) -> Kind:
        return PLATFORM_CLAIM if self.body["kind"] == "OllamaPlatform" else FLEET_CLAIM

    @property
    def xr_kind(self) -> Kind:
        return PLATFORM_XR if self.body["kind"] == "OllamaPlatform" else FLEET_XR

    def get(self, kube: Kube) -> dict[str, Any] | None:
        return kube.get(self.kind, self.name, self.namespace)

    def xr(self, kube: Kube) -> dict[str, Any] | None:
        claim = self.get(kube)
        ref = ((claim or {}).get("spec") or {}).get("resourceRef")
        return kube.get(self.xr_kind, ref["name"]) if ref else None

    def apply(self, stack: Stack) -> None:
        stack.apply([self.body])

    def secret(self, kube: Kube) -> dict[str, str]:
        ref = self.body["spec"]["writeConnectionSecretToRef"]["name"]
        obj = kube.get(SECRET, ref, self.namespace) or {}
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def ready(obj: dict[str, Any] | None) -> bool:
    return condition(obj, "Ready").get("status") == "True"


def converged(xr: dict[str, Any] | None) -> bool:
    """The XR is Ready and the function says nothing is awaited (Progressing: Converged)."""
    return ready(xr) and condition(xr, "Progressing").get("reason") == "Converged"


def wait_ready(kube: Kube, claim: Claim, timeout: float) -> float:
    """Seconds until the claim is Ready and its XR converged (raises with the XR's conditions).

    The claim alone is not enough: it copies its XR's Ready condition on its own
    reconcile, so right after a change it can still say Ready from before.
    """

    def probe() -> bool:
        return ready(claim.get(kube)) and converged(claim.xr(kube))

    try:
        _, took = wait_for(f"claim {claim.name} to be Ready", probe, timeout=timeout, interval=1)
    except TimeoutError as exc:
        xr = claim.xr(kube) or {}
        conds = (xr.get("status") or {}).get("conditions")
        msg = f"{exc}; XR conditions: {json.dumps(conds)[:3000]}"
        raise TimeoutError(msg) from exc
    return took


def composed(kube: Kube, xr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What an XR composes, keyed by composition resource name, as the API server has it."""
    out = {}
    for ref in (xr.get("spec") or {}).get("resourceRefs") or []:
        obj = kube.ref(ref)
        if obj is None:
            continue
        key = obj["metadata"].get("annotations", {}).get(RESOURCE_NAME)
        assert key, obj["metadata"]
        out[key] = obj
    return out


def tree(kube: Kube, xr: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object under an XR, nested XRs and what they compose included."""
    out = []
    for obj in composed(kube, xr).values():
        out.append(obj)
        if obj["kind"] in {"XOllamaFleet", "XOllamaPlatform"}:
            out += tree(kube, obj)
    return out


def render_in_process(kube: Kube, xr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The function's desired state for exactly what the API server holds now."""
    rsp = run(request(xr, composed(kube, xr)))
    fatal = [r.message for r in rsp.results]
    assert not fatal, fatal
    return desired(rsp)


def conditions_in_process(kube: Kube, xr: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The conditions the function sets for exactly what the API server holds now, by type."""
    rsp = run(request(xr, composed(kube, xr)))
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert not fatal, fatal
    return {
        cond.type: {
            "status": "True" if cond.status == fnv1.STATUS_CONDITION_TRUE else "False",
            "reason": cond.reason,
            "message": cond.message,
        }
        for cond in rsp.conditions
    }


def subset(want: Any, have: Any, path: str = "") -> list[str]:
    """Where ``have`` differs from ``want`` (fields only in ``have`` are fine: defaults)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path}: {have!r} is not an object"]
        return [d for k, v in want.items() for d in subset(v, have.get(k), f"{path}.{k}")]
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return [f"{path}: {have!r} != {want!r}"]
        return [d for i, (w, h) in enumerate(zip(want, have, strict=True)) for d in subset(w, h, f"{path}[{i}]")]
    if want != have:
        return [f"{path}: {have!r} != {want!r}"]
    return []


def render_problems(kube: Kube, xr: dict[str, Any], walk_keys: set[str]) -> list[str]:
    """How what ``xr`` composes differs from the render; empty when it matches.

    1. the same keys as the committed walk of the example reaches offline;
    2. every field the function asks for, for exactly this observed state (kinds,
       names, specs, labels), is what the API server holds.
    """
    have = composed(kube, xr)
    problems = []
    if set(have) != walk_keys:
        problems.append(
            f"composed keys != the walk's: missing {sorted(walk_keys - set(have))[:5]}"
            f" ({len(walk_keys - set(have))}), extra {sorted(set(have) - walk_keys)[:5]}"
        )
    want = render_in_process(kube, xr)
    if set(want) != set(have):
        problems.append(f"composed keys != the render's: missing {sorted(set(want) - set(have))[:5]}")
    for key, body in want.items():
        obj = have.get(key)
        if obj is None:
            continue
        if (obj["apiVersion"], obj["kind"]) != (body["apiVersion"], body["kind"]):
            problems.append(f"{key}: {obj['kind']} != {body['kind']}")
        problems += [f"{key}{d}" for d in subset(body.get("spec"), obj.get("spec"), ".spec")]
        labels = (body.get("metadata") or {}).get("labels") or {}
        problems += [f"{key}{d}" for d in subset(labels, obj["metadata"].get("labels"), ".labels")]
    return problems


def broken_compositions() -> dict[str, dict[str, Any]]:
    """Two broken copies of the platform Composition, under their own names.

    ``wrong-type``: its compositeTypeRef names a kind that does not exist
    (``XOllamaPlatforms``). ``fatal``: its function input names another input
    kind, so the function answers every call with a Fatal.
    """
    real = yaml.safe_load((ROOT / "compositions" / "ollama-platform.yaml").read_text())
    out = {}
    wrong = copy.deepcopy(real)
    wrong["metadata"] = {"name": "ollama-platform-broken-wrong-type"}
    wrong["spec"]["compositeTypeRef"]["kind"] = "XOllamaPlatforms"
    out["wrong-type"] = wrong
    fatal = copy.deepcopy(real)
    fatal["metadata"] = {"name": "ollama-platform-broken-fatal"}
    fatal["spec"]["pipeline"][0]["input"]["kind"] = "Inputs"
    out["fatal"] = fatal
    return out


def broken_claim(case: str, composition: str) -> Claim:
    """examples/existing bound to a broken Composition, on a cluster of its own."""
    body = example_claim("existing")
    body["metadata"]["name"] = f"broken-{case}"
    body["spec"]["writeConnectionSecretToRef"] = {"name": f"broken-{case}-conn"}
    body["spec"]["compositionRef"] = {"name": composition}
    for cluster in body["spec"]["clusters"]:
        cluster["kubeconfig"] = {"providerConfigName": f"broken-{case}"}
    return Claim(body)


def snapshot(kube: Kube, xr: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """uid and resourceVersion of everything under an XR, by kind/name."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": (o["metadata"]["uid"], o["metadata"]["resourceVersion"])
        for o in tree(kube, xr)
    }


def without_model(claim: Claim, model: str) -> Claim:
    body = copy.deepcopy(claim.body)
    body["spec"]["models"] = [m for m in body["spec"]["models"] if m["name"] != model]
    return Claim(body)


ANSI = re.compile(r"\x1b\[[0-9;]*m")
CALL = re.compile(r"\] (composed|answered from cache)\b")


def log_counts(path: Path, start: int) -> tuple[int, int]:
    """(computed, answered from cache) in the function's debug log after byte ``start``.

    Reads JSON lines (``msg``) and, failing that, the SDK's console format.
    """
    computed = cached = 0
    for line in path.read_bytes()[start:].decode(errors="replace").splitlines():
        try:
            msg = json.loads(line).get("msg")
        except (ValueError, AttributeError):
            found = CALL.search(ANSI.sub("", line))
            msg = found.group(1) if found else None
        computed += msg == "composed"
        cached += msg == "answered from cache"
    return computed, cached


def composed_calls(path: Path, start: int, xr_name: str) -> list[dict[str, Any]]:
    """The function's ``composed`` log entries for the XR ``xr_name`` after byte ``start``.

    Each is one call Crossplane made that the function planned (not answered from
    the cache), with ``ready``: whether it found the XR ready.
    """
    out = []
    for line in path.read_bytes()[start:].decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("msg") == "composed" and entry.get("xr") == xr_name:
            out.append(entry)
    return out


def gone(kube: Kube, refs: list[dict[str, Any]]) -> bool:
    return all(kube.ref(r) is None for r in refs)


def all_refs(kube: Kube, xr: dict[str, Any]) -> list[dict[str, Any]]:
    """References (apiVersion, kind, name) to the XR and everything under it."""
    refs = [{"apiVersion": xr["apiVersion"], "kind": xr["kind"], "name": xr["metadata"]["name"]}]
    for obj in tree(kube, xr):
        refs.append({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"]})
    return refs


def elapsed(start: float) -> float:
    return round(time.monotonic() - start, 1)
