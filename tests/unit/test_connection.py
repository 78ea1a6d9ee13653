"""Connection details: written to a Secret, and nothing stale stays in it.

Crossplane writes an XR's connection Secret only when its Composition names a
namespace for it, and it merge-patches that Secret: a key the function stops
sending is never removed. So the function sends a fixed set of keys whose
values are recomputed on every call.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scripts.render import load_docs, request, run
from scripts.stage import walk

ROOT = Path(__file__).resolve().parents[2]


def xr_of(case: str) -> dict[str, Any]:
    return load_docs(ROOT / "examples" / case / "xr.yaml")[0]


def details(xr: dict[str, Any], observed: dict[str, Any] | None = None) -> dict[str, str]:
    rsp = run(request(xr, observed))
    assert not rsp.results, [r.message for r in rsp.results]
    return {k: v.decode() for k, v in rsp.desired.composite.connection_details.items()}


@pytest.mark.parametrize("path", sorted((ROOT / "compositions").glob("*.yaml")))
def test_compositions_write_connection_secrets(path: Path) -> None:
    comp = load_docs(path)[0]
    assert comp["spec"]["writeConnectionSecretsToNamespace"] == "crossplane-system"


def test_platform_keys_are_fixed_and_a_removed_model_leaves_them() -> None:
    xr = xr_of("multicloud")
    final = walk(xr)[-1]
    full = details(xr, final)
    assert set(full) == {"buckets", "endpoints"}
    endpoints = json.loads(full["endpoints"])
    removed = xr["spec"]["models"][0]["name"]
    assert removed in endpoints
    for per_cluster in endpoints.values():
        assert all(url.startswith("http://") for url in per_cluster.values())
    buckets = json.loads(full["buckets"])
    assert buckets and all(b["name"] and b["url"] for b in buckets.values())
    smaller = copy.deepcopy(xr)
    smaller["spec"]["models"] = smaller["spec"]["models"][1:]
    less = details(smaller, final)
    assert set(less) == set(full)
    assert removed not in json.loads(less["endpoints"])
    assert json.loads(less["buckets"]) == buckets


def test_keys_do_not_depend_on_the_stage() -> None:
    xr = xr_of("existing")
    keys = {frozenset(details(xr, stage)) for stage in walk(xr)}
    assert keys == {frozenset({"buckets", "endpoints"})}


def test_fleet_sends_its_endpoint() -> None:
    out = details(xr_of("fleet"))
    assert set(out) == {"endpoint"}
    assert out["endpoint"].startswith("http://")
