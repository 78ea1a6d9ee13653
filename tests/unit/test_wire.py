"""The served bytes, written with the composed resources spliced in (function.wire).

They must be what protobuf's deterministic serialisation gives for the response
message with the resources parsed in, byte for byte, on every example and stage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import wire
from function.fn import FunctionRunner
from scripts.render import load_docs, observed_map, request

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/xr.yaml"))


def both(req: fnv1.RunFunctionRequest) -> tuple[bytes, bytes]:
    """(the message path serialised, the bytes path)."""
    message = FunctionRunner(cache_size=0).run(req).SerializeToString(deterministic=True)
    return message, FunctionRunner(cache_size=0).run_bytes(req)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_stage_of_every_example_is_byte_identical(example: Path) -> None:
    xr = load_docs(example / "xr.yaml")[0]
    stages = [{}] + [
        observed_map(load_docs(path)) for path in sorted(example.glob("observed-*.yaml"))
    ]
    for observed in stages:
        message, spliced = both(request(xr, observed))
        assert spliced == message
        assert fnv1.RunFunctionResponse.FromString(spliced).desired.resources


def test_earlier_steps_state_is_kept_and_merged_in_order() -> None:
    """Resources of earlier steps sort among ours; one we compose too keeps its other fields."""
    example = ROOT / "examples" / "aws"
    xr = load_docs(example / "xr.yaml")[0]
    observed = observed_map(load_docs(sorted(example.glob("observed-*.yaml"))[-1]))
    req = request(xr, observed)
    ours = sorted(FunctionRunner(cache_size=0).run(req).desired.resources)
    req.desired.resources["zz-earlier"].resource.update({"kind": "ConfigMap"})
    req.desired.resources["a"].resource.update({"kind": "ConfigMap"})
    # a prefix of one of our keys: protobuf sorts it after the keys it prefixes
    req.desired.resources[ours[0][:-1]].resource.update({"kind": "ConfigMap"})
    shared = req.desired.resources[ours[0]]
    shared.resource.update({"kind": "Stale"})
    shared.connection_details["password"] = b"from an earlier step"
    req.desired.composite.resource.update({"status": {"earlier": True}})
    req.context.update({"apiextensions.crossplane.io/environment": {"x": 1}})
    message, spliced = both(req)
    assert spliced == message
    rsp = fnv1.RunFunctionResponse.FromString(spliced)
    assert {"zz-earlier", "a", ours[0][:-1]} <= set(rsp.desired.resources)
    kept = rsp.desired.resources[ours[0]]
    assert kept.connection_details["password"] == b"from an earlier step"
    assert kept.resource["kind"] != "Stale"


def test_a_key_sorts_after_the_keys_it_prefixes_as_protobuf_sorts_it() -> None:
    keys = ["a", "ab", "a-b", "b", "é", "e", "ée", "aa"]
    state = fnv1.State()
    entries = []
    for key in keys:
        state.resources[key].resource.update({"k": key})
        state.resources[key].ready = fnv1.READY_TRUE
        entries.append(
            (
                key,
                wire.resource_entry(
                    key,
                    state.resources[key].resource.SerializeToString(deterministic=True),
                    fnv1.READY_TRUE,
                ),
            )
        )
    rsp = fnv1.RunFunctionResponse()
    rsp.meta.tag = "t"
    want = fnv1.RunFunctionResponse(meta=rsp.meta, desired=state).SerializeToString(
        deterministic=True
    )
    assert wire.response_bytes(rsp, entries) == want


def test_a_memoised_entry_is_the_entry_written_afresh() -> None:
    """The entry cache returns what ``resource_entry`` writes, per key, body and readiness."""
    body = b"\n\x0b\n\x04kind\x12\x03\x1a\x01X"
    for ready in (0, 1, 2):
        for key in ("a", "b" * 200):
            first = wire.memo_entry(key, body, ready)
            assert first == wire.resource_entry(key, body, ready)
            assert wire.memo_entry(key, body, ready) is first  # kept
    assert wire.memo_entry("a", body, 1) != wire.memo_entry("a", body, 2)
