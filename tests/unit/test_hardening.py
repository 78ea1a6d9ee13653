"""Hardening: bad observed state, logs without request data, bounded messages, strict names."""

from __future__ import annotations

import asyncio
import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import fn, logs
from function.codec import to_dict, value
from function.fn import FunctionRunner, to_struct
from scripts.render import desired, load_docs, observed_map, request, run
from tests.factories import cluster_dict

ROOT = Path(__file__).resolve().parents[2]
SECRET = "SECRET-MARKER-7f3a"  # noqa: S105  # a marker to look for in logs


def final(case: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    folder = ROOT / "examples" / case
    xr = load_docs(folder / "xr.yaml")[0]
    observed = observed_map(load_docs(sorted(folder.glob("observed-*.yaml"))[-1]))
    return xr, observed


def fatal(rsp: fnv1.RunFunctionResponse) -> list[str]:
    return [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]


def platform(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "openhands.ai/v1alpha1",
        "kind": "XOllamaPlatform",
        "metadata": {"name": "demo-x1"},
        "spec": {
            "clusters": [cluster_dict("c1", "existing")],
            "models": [{"name": "llama2", "model": "llama2"}],
            **spec,
        },
    }


# ------------------------------------------------------------------ observed garbage

GARBAGE = {
    "atProvider a string": ("status", {"atProvider": SECRET, "conditions": []}),
    "conditions a number": ("status", {"conditions": 7}),
    "conditions of strings": ("status", {"conditions": [SECRET, 3]}),
    "condition status a number": ("status", {"conditions": [{"type": "Ready", "status": 1}]}),
    "status a string": ("status", SECRET),
}
HARMLESS = {
    "labels not an object": ("metadata", {"name": "x", "labels": SECRET}),
    "metadata a list": ("metadata", [SECRET]),
    "name a number": ("metadata", {"name": 12}),
    "kind a list": ("kind", [SECRET]),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_malformed_observed_resource_is_not_ready_never_internal(case: str) -> None:
    xr, observed = final("aws")
    victim = "aws-east-bucket"
    field, garbage = GARBAGE[case]
    observed[victim] = {**observed[victim], field: garbage}
    rsp = run(request(xr, observed))
    assert not fatal(rsp), fatal(rsp)
    assert victim in rsp.desired.resources  # observed: kept
    assert rsp.desired.resources[victim].ready == fnv1.READY_FALSE
    assert rsp.desired.composite.ready == fnv1.READY_FALSE
    progressing = [c for c in rsp.conditions if c.type == "Progressing"]
    assert progressing
    assert victim in progressing[0].message


@pytest.mark.parametrize("case", sorted(HARMLESS))
def test_malformed_observed_metadata_composes(case: str) -> None:
    xr, observed = final("aws")
    victim = "aws-east-bucket"
    field, garbage = HARMLESS[case]
    observed[victim] = {**observed[victim], field: garbage}
    rsp = run(request(xr, observed))
    assert not fatal(rsp), fatal(rsp)
    assert victim in rsp.desired.resources


def test_malformed_xr_metadata_composes() -> None:
    xr, observed = final("aws")
    xr["metadata"] = {**xr["metadata"], "labels": SECRET, "uid": 7, "annotations": [1]}
    rsp = run(request(xr, observed))
    assert not fatal(rsp), fatal(rsp)
    assert rsp.desired.composite.ready != fnv1.READY_FALSE


# ------------------------------------------------------------------ logs


def _capture(capsys: pytest.CaptureFixture[str], runner: FunctionRunner, reqs: list[Any]) -> str:
    logs.configure()  # what the server runs with by default (INFO)
    capsys.readouterr()
    for req in reqs:
        asyncio.run(runner.RunFunction(req, None))
    return capsys.readouterr().out


def test_logs_at_info_carry_no_request_data(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    xr, observed = final("aws")
    secret_observed = copy.deepcopy(observed)
    for body in secret_observed.values():
        body.setdefault("status", {})["atProvider"] = {"kubeconfig": SECRET}
    bad = platform(clusters=[{**cluster_dict("c1", "existing"), "region": SECRET}])
    reqs = [request(xr, secret_observed), request(bad), request(platform(models=SECRET))]
    runner = FunctionRunner(cache_size=0)
    out = _capture(capsys, runner, reqs)
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2  # one line per refused request: the test sees the logs
    assert all(line["level"] == "info" and line["errors"] >= 1 for line in lines)

    def explode(*args: Any, **kwargs: Any) -> None:
        secret_local = SECRET * 1000  # a traceback with locals would print this
        raise KeyError(secret_local)

    monkeypatch.setattr(fn, "plan_platform", explode)
    out += _capture(capsys, runner, [request(xr, secret_observed)])
    assert '"error": "KeyError"' in out
    assert '"level": "error"' in out
    assert "Traceback" not in out
    assert SECRET not in out
    assert "kubeconfig" not in out


def test_log_exception_cannot_render_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(debug=True)
    capsys.readouterr()
    secret_local = SECRET  # noqa: F841  # rich or dict_tracebacks would print locals
    try:
        raise ValueError(SECRET)
    except ValueError:
        logs.get_logger().exception("boom", body="x" * 10_000)
    out = capsys.readouterr().out
    assert json.loads(out)["msg"] == "boom"
    assert SECRET not in out
    assert len(out) < 400


# ------------------------------------------------------------------ Fatal messages


def test_internal_failure_is_fatal_and_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def explode(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        raise RuntimeError(SECRET)

    monkeypatch.setattr(fn, "plan_platform", explode)
    runner = FunctionRunner()
    req = request(platform())
    for _ in range(2):
        msg = fatal(asyncio.run(runner.RunFunction(req, None)))
        assert msg == ["cannot compose XOllamaPlatform demo-x1: internal error: RuntimeError"]
    assert len(calls) == 2
    assert len(runner.cache) == 0


@pytest.mark.parametrize(("size", "path"), [(200_000, "metadata.name"), (3 << 20, "observed")])
def test_huge_name_gives_a_bounded_fatal_naming_the_field(size: int, path: str) -> None:
    xr = platform()
    xr["metadata"]["name"] = "a" * size
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(xr))
    [msg] = fatal(FunctionRunner().run(req))
    assert f": {path}" in msg
    assert len(msg) < 600


def test_oversized_composite_is_refused_before_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fn, "parse_platform", None)  # planning would fail with TypeError
    xr = platform()
    xr["spec"]["padding"] = "x" * (fn.MAX_COMPOSITE_BYTES + 1)
    [msg] = fatal(FunctionRunner().run(request(xr)))
    assert "observed.composite: the composite resource is" in msg


def test_response_too_large_to_send_is_a_fatal_and_not_cached() -> None:
    xr, observed = final("aws")
    runner = FunctionRunner()
    runner.limit_responses(10_000)
    [msg] = fatal(runner.run(request(xr, observed)))
    assert "more than the 10000-byte message limit" in msg
    # what to reduce: the kinds that take the most bytes, and how
    composed = FunctionRunner().run(request(xr, observed)).desired.resources
    assert f": {len(composed)} composed resources, the largest shares: " in msg
    releases = [r for r in composed.values() if r.resource["kind"] == "Release"]
    assert f"{len(releases)} Release ({sum(r.ByteSize() for r in releases)} bytes)" in msg
    assert msg.endswith(
        "split the claim into claims of fewer clusters or models (each model on "
        "each cluster composes a fleet, gateway objects and usages), or shorten "
        "cluster and model names"
    )
    assert len(runner.cache) == 1  # the small Fatal is cached, not the large response
    assert runner.cache.held_bytes < 10_000
    served = FunctionRunner()  # what the server sends: measured as it is serialised
    served.limit_responses(10_000)
    sent = fnv1.RunFunctionResponse.FromString(served.run_bytes(request(xr, observed)))
    assert fatal(sent) == [msg]
    assert len(served.cache) == 1
    assert served.cache.held_bytes < 10_000


def test_cache_is_bounded_in_bytes() -> None:
    xr, observed = final("aws")
    size = run(request(xr, observed)).ByteSize()
    runner = FunctionRunner(cache_size=64, cache_bytes=int(size * 2.5))
    for tag in "abcdef":
        runner.run(request(xr, observed, tag=tag))
    assert len(runner.cache) == 2
    assert runner.cache.held_bytes <= size * 2.5


# ------------------------------------------------------------------ claim and input errors


@pytest.mark.parametrize(
    ("image", "path"),
    [
        (
            "docker.io/ollama/ollama:latest",
            "input.spec.ollamaImage: docker.io/ollama/ollama:latest",
        ),
        ("ollama/ollama", "input.spec.ollamaImage: ollama/ollama is not pinned"),
        ("ollama/\x00ollama:1", "input.spec.ollamaImage: 'ollama/\\x00ollama:1' must match"),
    ],
)
@pytest.mark.parametrize("kind", ["XOllamaPlatform", "XOllamaFleet"])
def test_bad_image_is_a_fatal_naming_the_input_field(image: str, path: str, kind: str) -> None:
    xr = platform() if kind == "XOllamaPlatform" else final("fleet")[0]
    req = request(xr)
    req.input.CopyFrom(to_struct({**to_dict(req.input), "spec": {"ollamaImage": image}}))
    [msg] = fatal(run(req))
    assert path in msg


def test_input_of_another_kind_is_refused() -> None:
    req = request(platform())
    req.input.CopyFrom(to_struct({"apiVersion": "other.io/v1", "kind": "Other", "spec": {}}))
    [msg] = fatal(run(req))
    assert "input.apiVersion: 'other.io/v1' is not this function's input" in msg
    assert "input.kind: 'Other' is not this function's input; use Input" in msg


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda c: c.update(providerConfigName="pc\x00"), "spec.clusters[0].providerConfigName"),
        (
            lambda c: c.update(kubeconfig={"providerConfigName": "Upper"}),
            "spec.clusters[0].kubeconfig.providerConfigName",
        ),
        (
            lambda c: c["kubeconfig"]["secretRef"].update(name="a\x1b[31m"),
            "spec.clusters[0].kubeconfig.secretRef.name",
        ),
        (
            lambda c: c["kubeconfig"]["secretRef"].update(namespace="a.b"),
            "spec.clusters[0].kubeconfig.secretRef.namespace",
        ),
        (
            lambda c: c["kubeconfig"]["secretRef"].update(key="a/b"),
            "spec.clusters[0].kubeconfig.secretRef.key",
        ),
    ],
)
def test_strings_that_become_kubernetes_names_are_checked(mutate: Any, path: str) -> None:
    cluster = cluster_dict("c1", "existing")
    mutate(cluster)
    [msg] = fatal(run(request(platform(clusters=[cluster]))))
    assert f"{path}: " in msg


def test_storage_class_is_a_kubernetes_name() -> None:
    xr = platform(models=[{"name": "m", "model": "m", "storage": {"class": "fast\nssd"}}])
    [msg] = fatal(run(request(xr)))
    assert "spec.models[0].storage.class: " in msg


@pytest.mark.parametrize("name", ["a" * 64, "ends-with-dash-", "under_score_ok-but-" + "x" * 50])
def test_xr_name_must_fit_a_label_value(name: str) -> None:
    xr = platform()
    xr["metadata"]["name"] = name
    [msg] = fatal(run(request(xr)))
    assert "metadata.name: " in msg


def test_colliding_composition_keys_are_refused() -> None:
    clusters = [cluster_dict("a", "existing"), cluster_dict("a-fleet-b", "existing")]
    models = [{"name": "b-fleet-c", "model": "m"}, {"name": "c", "model": "m"}]
    [msg] = fatal(run(request(platform(clusters=clusters, models=models))))
    assert "spec.clusters[1].name: cluster 'a-fleet-b' and cluster 'a'" in msg
    assert "'a-fleet-b-fleet-c'" in msg


# ------------------------------------------------------------------ request untouched, numbers


def test_reading_the_request_never_mutates_it() -> None:
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(
        to_struct({"kind": "XOllamaPlatform", "metadata": {}, "spec": {"clusters": 3}})
    )
    before = req.SerializeToString(deterministic=True)
    runner = FunctionRunner()
    rsp = runner.run(req)
    assert "(unnamed)" in fatal(rsp)[0]
    assert req.SerializeToString(deterministic=True) == before
    assert runner.run(req) == rsp  # the cache key still matches


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_a_fatal_naming_the_path(number: float) -> None:
    req = request(platform())
    spec = req.observed.composite.resource.fields["spec"].struct_value
    spec.fields["models"].list_value.values[0].struct_value.fields["replicas"].number_value = number
    [msg] = fatal(run(req))
    assert "spec.models[0].replicas: numbers must be finite" in msg


def test_negative_zero_survives_pass_through() -> None:
    req = request(platform())
    req.desired.composite.resource.fields["spec"].struct_value.fields["z"].number_value = -0.0
    rsp = run(req)
    z = rsp.desired.composite.resource.fields["spec"].struct_value.fields["z"]
    assert math.copysign(1.0, z.number_value) == -1.0
    assert math.copysign(1.0, value(z)) == -1.0
    assert desired(rsp)


def test_earlier_desired_composite_is_kept_beside_status() -> None:
    req = request(platform())
    req.desired.composite.resource.update({"metadata": {"labels": {"x": "y"}}, "status": "junk"})
    rsp = run(req)
    out = to_dict(rsp.desired.composite.resource)
    assert out["metadata"] == {"labels": {"x": "y"}}
    assert {"clusters", "models"} <= set(out["status"])


# ------------------------------------------------------------------ nesting bounded by the XRDs


def _depth(schema: dict[str, Any]) -> int:
    """Levels of JSON objects and lists a structural schema admits below this node."""
    assert "x-kubernetes-preserve-unknown-fields" not in schema, schema
    children = [*schema.get("properties", {}).values()]
    if isinstance(schema.get("additionalProperties"), dict):
        children.append(schema["additionalProperties"])
    if "items" in schema:
        children.append(schema["items"])
    if schema.get("type") == "object":
        assert children, f"an open object admits any depth: {schema}"
    return 1 + max((_depth(c) for c in children), default=0)


@pytest.mark.parametrize("path", sorted((ROOT / "xrds").glob("*.yaml")), ids=lambda p: p.name)
def test_xrd_schemas_are_closed_and_shallower_than_the_decoder_limit(path: Path) -> None:
    import yaml

    xrd = yaml.safe_load(path.read_text())
    for version in xrd["spec"]["versions"]:
        depth = _depth(version["schema"]["openAPIV3Schema"])
        # protobuf decodes about 31 levels of JSON objects below the XR's root
        assert depth < 20, depth


def test_bytes_lru_is_bounded_in_entries_and_bytes() -> None:
    from function.codec import BytesLRU

    lru = BytesLRU(entries=3, max_bytes=100, max_item=40)
    assert not lru.put(b"big", b"x" * 41)  # larger than one item may be
    for i in range(5):
        assert lru.put(i, b"x" * 10)
    assert len(lru) == 3
    assert lru.get(0) is None
    assert lru.get(4) == b"x" * 10
    lru.put("k" * 10, b"y" * 30)  # string keys count too: 40 bytes
    lru.put(5, b"z" * 35)
    assert lru.bytes <= 100
    assert lru.get(5) == b"z" * 35
    assert BytesLRU(entries=0, max_bytes=100).put(1, b"x") is False


def test_a_fatal_answer_never_exceeds_the_send_limit() -> None:
    """Before the fix the Fatal carried the passed-through desired state unchecked.

    An invalid claim whose earlier pipeline steps desired ~1 MB got an answer
    larger than the limit, which gRPC refuses with RESOURCE_EXHAUSTED.
    """
    xr, observed = final("aws")
    xr["spec"]["clusters"][0]["region"] = "not a region!"
    req = request(xr, observed)
    for i in range(40):  # what earlier pipeline steps desired
        req.desired.resources[f"earlier-{i}"].resource.update({"data": "x" * 30_000})
    req.context.update({"earlier": "y" * 30_000})
    runner = FunctionRunner()
    runner.limit_responses(500_000)
    rsp = runner.run(req)
    assert rsp.ByteSize() <= 500_000
    [msg] = fatal(rsp)
    assert "spec.clusters[0].region" in msg
    assert "are not passed through" in msg and "500000-byte message limit" in msg
    assert len(rsp.desired.resources) == 0
    # within the limit, a Fatal still passes everything through
    rsp = FunctionRunner().run(req)
    [msg] = fatal(rsp)
    assert "not passed through" not in msg
    assert len(rsp.desired.resources) == 40
    assert rsp.context.fields["earlier"].string_value == "y" * 30_000


def test_the_served_bytes_are_the_response_serialised_deterministically() -> None:
    """What the server sends (run_bytes) is run's response, fresh and from the cache."""
    xr, observed = final("aws")
    req = request(xr, observed)
    want = run(req).SerializeToString(deterministic=True)
    assert FunctionRunner(cache_size=0).run_bytes(req) == want
    runner = FunctionRunner()
    assert runner.run_bytes(req) == want  # composed, then kept
    assert runner.cache.get_bytes(runner.cache.key(req)) == want
    assert runner.run_bytes(req) == want  # from the cache, as kept
    assert runner.run(req).SerializeToString(deterministic=True) == want
    sized = asyncio.run(runner.RunFunctionBytes(req, size=req.ByteSize()))
    assert sized == want


def test_stack_memo_is_bounded_and_keyed_on_what_the_stack_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from function import context, stack
    from tests.factories import cluster_context

    ctx = cluster_context("aws")
    first = stack.build(ctx)
    again = stack.build(ctx)
    assert all(a is b for a, b in zip(again, first, strict=True))  # kept, not rebuilt
    assert all(item.encoded for item in first)
    # The tables the context resolves are part of the key: a change is a new stack.
    before = ctx.memo_key()
    monkeypatch.setattr(context, "CLOUD_BLOCK_STORAGE_CLASS", {})
    assert ctx.memo_key() != before
    assert stack.build(ctx)[0] is not first[0]
    items = (first[0],)
    cost = len(first[0].encoded)
    memo = stack.StackMemo(entries=8, max_bytes=cost * 4)
    for i in range(6):
        memo.put((i,), items)
    assert len(memo) == 4  # the bytes bind before the entries
    assert memo.bytes == cost * 4
    assert memo.get((0,)) is None
    assert memo.get((5,)) is items
    too_small = stack.StackMemo(entries=3, max_bytes=cost * 4 - 1)
    too_small.put((0,), items)  # more than a quarter of the budget: not kept
    assert len(too_small) == 0


def test_parsed_claims_are_memoised_by_what_parsing_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kind, spec and input, serialised: a hit parses nothing; any change parses again."""
    calls: list[object] = []
    real = fn.parse_platform

    def counting(spec: object, inputs: object) -> object:
        calls.append(spec)
        return real(spec, inputs)  # type: ignore[arg-type]

    monkeypatch.setattr(fn, "parse_platform", counting)
    monkeypatch.setattr(fn, "_PARSED", fn.MemoLRU(entries=4, max_bytes=1 << 20))
    xr, observed = final("aws")
    runner = FunctionRunner(cache_size=0)
    want = runner.run_bytes(request(xr, observed))
    tagged = request(xr, observed)
    tagged.meta.tag = "another call, other observed state"
    del tagged.observed.resources[sorted(tagged.observed.resources)[-1]]
    runner.run_bytes(tagged)
    assert runner.run_bytes(request(xr, observed)) == want
    assert len(calls) == 1  # parsed once
    renamed = request(xr, observed)
    renamed.observed.composite.resource["metadata"]["name"] = "other-x1"
    assert runner.run_bytes(renamed) != want  # the name is read on every call
    assert len(calls) == 1
    changed = request(xr, observed)
    changed.input.update({"spec": {"values": {"cilium": {"debug": {"enabled": True}}}}})
    runner.run_bytes(changed)
    respec = request(xr, observed)
    respec.observed.composite.resource["spec"]["profile"] = "development"
    runner.run_bytes(respec)
    assert len(calls) == 3  # the input and the spec are read
    bad = request(xr, observed)
    bad.observed.composite.resource["spec"]["profile"] = "nonsense"
    for _ in range(2):
        assert fatal(runner.run(bad))
    assert len(calls) == 5  # a refused claim is not kept
    assert len(fn._PARSED) == 3
