"""Property-based tests: generated XOllamaPlatform claims through the real FunctionRunner.

Claims come from ``tests.property.strategies`` (derived from the published XRD
schema). Every test uses ``derandomize=True``, so the examples are the same on
every run and on every machine. Example counts:

* ``test_valid_claim_composes``      100 valid claims: no Fatal, every desired
  resource fits its CRD, the XR (spec + composed status) fits the XRD, and the
  same request gives byte-identical responses twice;
* ``test_invalid_claim_is_one_fatal`` 150 invalid claims, 15 for each of the 10
  mutations in ``strategies.MUTATIONS``: exactly one Fatal
  ``cannot compose XOllamaPlatform ...`` naming the mutated field's path;
* ``test_steady_state_fits_crds``     20 valid claims walked to the converged
  steady state (scripts.stage.walk): every desired resource and every non-core
  manifest inside provider-kubernetes Objects fits its CRD, and every composed
  XOllamaFleet composes without a Fatal into CRD-valid resources
  (``test_steady_state_pinned`` pins 5 minimal claims the generator found);
* ``test_bytes_stable_across_hash_seeds`` 2 examples of 3 claims each (plus the
  converged state of the first), rendered again in fresh interpreters with
  PYTHONHASHSEED 1 and 2718281828; compared in the serialisation the server
  puts on the wire (``deterministic=True``).

The module takes about 40 s on a 2-core machine.

CEL rules are not evaluated by ``tests.crdschema``; the CLI tests run the real
``crossplane beta validate`` for those.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from function.fn import FunctionRunner
from scripts.render import desired, request
from scripts.stage import walk
from tests import crdschema
from tests.manifests import CORE_GROUPS, group_of
from tests.property.strategies import MUTATIONS, invalid_specs, valid_specs
from tests.toolchain import ROOT, crds_dir

XR_NAME = "p-x1"
XR_UID = "0b6f4c1e-2d3a-4e5f-8a9b-0c1d2e3f4a5b"
API_VERSION = "openhands.ai/v1alpha1"

N_VALID = 100
N_INVALID = 150
N_STEADY = 20
N_SEEDS = 2

COMMON = {
    "derandomize": True,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "database": None,
}


@pytest.fixture(scope="module")
def crds() -> Path:
    """The shared CRDs: skip without them, or fail under CI=true."""
    return crds_dir()


needs_crds = pytest.mark.usefixtures("crds")


def platform_xr(spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "XOllamaPlatform",
        "metadata": {"name": XR_NAME, "uid": XR_UID},
        "spec": spec,
    }


def run(req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    return asyncio.run(FunctionRunner().RunFunction(req, None))


def fatals(rsp: fnv1.RunFunctionResponse) -> list[str]:
    return [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]


def named(body: dict[str, Any], key: str) -> dict[str, Any]:
    """``body`` with the metadata.name Crossplane would generate for it."""
    return {**body, "metadata": {**(body.get("metadata") or {}), "name": f"{XR_NAME}-{key}"[:63]}}


def schema_errors(resources: dict[str, dict[str, Any]], *, manifests: bool) -> list[str]:
    """Schema errors of desired resources (and of the custom resources Objects wrap)."""
    errors = []
    for key, body in sorted(resources.items()):
        errors += [f"{key} ({body.get('kind')}): {e}" for e in crdschema.validate(named(body, key))]
        if not manifests or body.get("kind") != "Object":
            continue
        if not str(body.get("apiVersion", "")).startswith("kubernetes.crossplane.io/"):
            continue
        manifest = body["spec"]["forProvider"]["manifest"]
        if group_of(manifest["apiVersion"]) in CORE_GROUPS:
            continue
        errors += [
            f"{key} manifest ({manifest['apiVersion']} {manifest['kind']}): {e}"
            for e in crdschema.validate(manifest)
        ]
    return errors


def composite_errors(xr: dict[str, Any], rsp: fnv1.RunFunctionResponse) -> list[str]:
    """The XR with the status the function wrote must fit the XRD."""
    composite = resource.struct_to_dict(rsp.desired.composite.resource)
    return [f"XR: {e}" for e in crdschema.validate({**xr, "status": composite.get("status", {})})]


# ------------------------------------------------------------------------------ the validator


def release(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "helm.crossplane.io/v1beta1",
        "kind": "Release",
        "metadata": {"name": "r", "labels": {"a": "b"}, "anything": {"goes": 1}},
        "spec": {
            "forProvider": {
                "chart": {"name": "ollama", "repository": "https://otwld.github.io/ollama-helm"},
                "namespace": "ollama",
            },
            "providerConfigRef": {"name": "pc"},
            **spec,
        },
    }


@needs_crds
class TestValidator:
    """The in-process validator must reject what the API server rejects."""

    def test_a_good_release_passes(self) -> None:
        assert crdschema.validate(release(rollbackLimit=3)) == []

    def test_wrong_type_fails(self) -> None:
        errors = crdschema.validate(release(rollbackLimit="x"))
        assert errors and errors[0].startswith("spec.rollbackLimit:"), errors

    def test_unknown_field_fails(self) -> None:
        body = release()
        body["spec"]["forProvider"]["surprise"] = True
        errors = crdschema.validate(body)
        assert errors and "surprise" in errors[0] and errors[0].startswith("spec.forProvider:")

    def test_missing_schema(self) -> None:
        assert crdschema.validate({"apiVersion": "example.org/v9", "kind": "Nope"}) == [
            "no schema for example.org/v9/Nope"
        ]

    def test_xrd_schema_and_list_map_keys(self) -> None:
        cluster = {"name": "a", "cloud": "existing", "kubeconfig": {"providerConfigName": "p"}}
        xr = platform_xr({"clusters": [cluster, dict(cluster)]})
        errors = crdschema.validate(xr)
        assert errors and errors[0].startswith("spec.clusters[1]: duplicate"), errors
        xr["spec"]["clusters"][1]["cloud"] = "moon"
        assert any(e.startswith("spec.clusters[1].cloud:") for e in crdschema.validate(xr))

    def test_openapi_translation(self) -> None:
        schema = crdschema.to_json_schema(
            {
                "type": "object",
                "properties": {
                    "port": {"x-kubernetes-int-or-string": True},
                    "note": {"type": "string", "nullable": True},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "max": {"type": "integer", "maximum": 5, "exclusiveMaximum": True},
                },
            }
        )
        check = crdschema._Validator(schema)
        assert not list(check.iter_errors({"port": 80, "note": None, "free": {"x": [1]}}))
        assert not list(check.iter_errors({"port": "http", "max": 4}))
        assert list(check.iter_errors({"port": 1.5}))
        assert list(check.iter_errors({"max": 5}))
        assert list(check.iter_errors({"other": 1}))


# ------------------------------------------------------------------------------ properties


@needs_crds
@settings(max_examples=N_VALID, **COMMON)
@given(valid_specs())
def test_valid_claim_composes(spec: dict[str, Any]) -> None:
    xr = platform_xr(spec)
    req = request(xr)
    rsp = run(req)
    assert fatals(rsp) == []
    resources = desired(rsp)
    assert resources, "a valid claim composes at least one resource"
    assert schema_errors(resources, manifests=True) + composite_errors(xr, rsp) == []
    assert run(req).SerializeToString() == rsp.SerializeToString()


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.__name__.removeprefix("_mutate_"))
@settings(max_examples=N_INVALID // len(MUTATIONS), **COMMON)
@given(data=st.data())
def test_invalid_claim_is_one_fatal(mutation: Any, data: st.DataObject) -> None:
    case = data.draw(invalid_specs((mutation,)), label="case")
    rsp = run(request(platform_xr(case.spec)))
    found = fatals(rsp)
    assert len(found) == 1, (case.mutation, found)
    message = found[0]
    assert message.startswith(f"cannot compose XOllamaPlatform {XR_NAME}: "), message
    assert ("spec." if case.path != "spec" else "spec") in message, message
    assert case.path in message, (case.mutation, case.path, message)
    assert len(rsp.desired.resources) == 0


def steady_state_errors(spec: dict[str, Any]) -> list[str]:
    """Walk ``spec`` to its converged state; every problem in what it composes then."""
    xr = platform_xr(spec)
    stages = walk(xr)
    rsp = run(request(xr, stages[-1]))
    errors = fatals(rsp)
    resources = desired(rsp)
    errors += schema_errors(resources, manifests=True) + composite_errors(xr, rsp)
    for key, body in sorted(resources.items()):
        if body.get("kind") != "XOllamaFleet":
            continue
        # What Crossplane does next: run the fleet Composition on the composed XR.
        fleet = {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "metadata": {"name": f"{XR_NAME}-{key}"[:63], "uid": f"{XR_UID[:-4]}f1ee"},
            "spec": body["spec"],
        }
        fleet_rsp = run(request(fleet))
        errors += [f"{key}: {m}" for m in fatals(fleet_rsp)]
        errors += [f"{key}/{e}" for e in schema_errors(desired(fleet_rsp), manifests=True)]
    return errors


# A walk costs up to a second; shrinking one would take minutes. Failing
# examples are reported as generated; minimal ones are pinned below.
NO_SHRINK = (Phase.explicit, Phase.generate)


@needs_crds
@settings(max_examples=N_STEADY, phases=NO_SHRINK, **COMMON)
@given(valid_specs())
def test_steady_state_fits_crds(spec: dict[str, Any]) -> None:
    assert steady_state_errors(spec) == []


def _pinned(cluster: dict[str, Any] | None = None, **model: Any) -> dict[str, Any]:
    existing = {"name": "c", "cloud": "existing", "kubeconfig": {"providerConfigName": "p"}}
    return {
        "clusters": [cluster or existing],
        "models": [{"name": "m", "model": "llama2", **model}],
        "components": {"policies": "audit"},
    }


_AWS = {
    "name": "c",
    "cloud": "aws",
    "region": "us-east-1",
    "kubeconfig": {"providerConfigName": "p"},
    "aws": {"clusterName": "eks", "subnetIds": ["subnet-00000000", "subnet-00000000"]},
}


@needs_crds
def test_steady_state_pinned_huge_quantity() -> None:
    """The largest CPU the claim grammar admits still composes valid output."""
    assert steady_state_errors(_pinned(resources={"cpu": "99999999999999999999999999999Ei"})) == []


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        (_pinned(resources={"cpu": "1e999999"}), "spec.models[0].resources.cpu"),
        (_pinned(resources={"cpu": "1e5000"}), "spec.models[0].resources.cpu"),
        (_pinned(resources={"memory": "-1"}), "spec.models[0].resources.memory"),
        (_pinned(storage={"size": "1e999999"}), "spec.models[0].storage.size"),
        (_pinned(_AWS), "spec.clusters[0].aws.subnetIds[1]"),
    ],
    ids=["cpu-1e999999", "cpu-1e5000", "negative-memory", "storage-1e999999", "dup-subnets"],
)
def test_formerly_crashing_claims_are_refused(spec: dict[str, Any], path: str) -> None:
    """Claims the generator once found crashing the fleet or invalid downstream: now refused."""
    xr = {
        "apiVersion": "openhands.ai/v1alpha1",
        "kind": "XOllamaPlatform",
        "metadata": {"name": "p-x1"},
        "spec": spec,
    }
    rsp = run(request(xr))
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(fatal) == 1
    assert f"{path}: " in fatal[0]


_CHILD = """
import asyncio, base64, sys
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from function.fn import FunctionRunner
for line in sys.stdin.read().split():
    req = fnv1.RunFunctionRequest.FromString(base64.b64decode(line))
    rsp = asyncio.run(FunctionRunner().RunFunction(req, None))
    wire = rsp.SerializeToString(deterministic=True)
    print("RSP", base64.b64encode(wire).decode(), flush=True)
"""


def _render_elsewhere(requests: list[bytes], hash_seed: str) -> list[bytes]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input="\n".join(base64.b64encode(r).decode() for r in requests),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [
        base64.b64decode(line.split()[1])
        for line in done.stdout.splitlines()
        if line.startswith("RSP ")
    ]


@settings(max_examples=N_SEEDS, phases=NO_SHRINK, **COMMON)
@given(st.lists(valid_specs(), min_size=3, max_size=3))
def test_bytes_stable_across_hash_seeds(specs: list[dict[str, Any]]) -> None:
    """What goes on the wire is the same in any interpreter.

    The server (function/server.py) serialises with ``deterministic=True``: the
    plain ``SerializeToString()`` orders Struct map entries by upb's per-process
    hash seed, so only the deterministic form can be compared across processes.
    """
    first = platform_xr(specs[0])
    stages = walk(first)
    reqs = [request(platform_xr(s)) for s in specs] + [request(first, stages[-1])]
    here = [run(r).SerializeToString(deterministic=True) for r in reqs]
    payload = [r.SerializeToString() for r in reqs]
    for seed in ("1", "2718281828"):
        assert _render_elsewhere(payload, seed) == here, f"PYTHONHASHSEED={seed}"
