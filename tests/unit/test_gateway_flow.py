"""Requests through the composed model gateway: model name, missing key, wrong team, exhausted quota.

``examples/gateway-teams`` (teams search: llama31 only, 2,000,000 tokens a day;
research: every model, 500,000 an hour; ops: no quota) as the function composes
it, followed request by request with ``tests/gatewayflow.py`` (the documented
semantics of each object; Envoy itself does not run here).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from scripts.render import desired, request, run
from scripts.stage import walk
from tests.gatewayflow import Gateway
from tests.unit.test_gateway import xr_with

KEYS = {
    "team-keys": {"search": "k-search", "research": "k-research", "intruder": "k-intruder"},
    "ops-key": {"api-key": "k-ops"},
}
LLAMA = ("ollama.ollama-llama31.svc.cluster.local:11434", "llama3.1:8b")
MISTRAL = ("ollama.ollama-mistral.svc.cluster.local:11434", "mistral:7b")


def composed(xr: dict[str, Any]) -> list[dict[str, Any]]:
    stages = walk(xr)
    return [
        b["spec"]["forProvider"]["manifest"]
        for b in desired(run(request(xr, stages[-1]))).values()
        if b["kind"] == "Object"
    ]


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return composed(xr_with())


@pytest.fixture
def gw(manifests: list[dict[str, Any]]) -> Gateway:
    return Gateway(copy.deepcopy(manifests), copy.deepcopy(KEYS))


def key(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_the_model_name_picks_the_model_and_its_ollama_tag(gw: Gateway) -> None:
    llama = gw.call("llama31", key("k-research"))
    mistral = gw.call("mistral", key("k-research"))
    assert (llama.status, llama.client, (llama.upstream, llama.model)) == (200, "research", LLAMA)
    assert (mistral.status, (mistral.upstream, mistral.model)) == (200, MISTRAL)
    assert gw.call("gpt-4o", key("k-research")).status == 404


def test_no_key_or_a_wrong_key_is_401(gw: Gateway) -> None:
    assert gw.call("llama31").status == 401
    assert gw.call("llama31", key("k-nobody")).status == 401
    assert gw.call("llama31", {"Authorization": "Basic k-search"}).status == 401


def test_the_key_is_read_bare_bearer_or_from_x_api_key(gw: Gateway) -> None:
    for headers in ({"Authorization": "k-ops"}, key("k-ops"), {"x-api-key": "k-ops"}):
        assert gw.call("mistral", headers).status == 200, headers


def test_a_team_calling_a_model_it_may_not_is_403(gw: Gateway) -> None:
    assert gw.call("llama31", key("k-search")).status == 200
    assert gw.call("mistral", key("k-search")).status == 403
    # Its client ID is the gateway's to set: a forged one does not help.
    assert gw.call("mistral", {**key("k-search"), "x-ollama-client": "research"}).status == 403
    # A forged model header neither: the body's model decides.
    assert gw.call("mistral", {**key("k-search"), "x-ai-eg-model": "llama31"}).status == 403


def test_an_entry_no_team_names_authenticates_but_is_refused(gw: Gateway) -> None:
    answer = gw.call("llama31", key("k-intruder"))
    assert (answer.status, answer.client) == (403, "intruder")


def test_a_team_over_its_quota_gets_429_on_its_next_request_only(gw: Gateway) -> None:
    # research: 500,000 tokens an hour; tokens are charged after each response.
    for _ in range(2):
        assert gw.call("llama31", key("k-research"), tokens=200_000).status == 200
    assert gw.call("llama31", key("k-research"), tokens=200_000).status == 200  # 400,000 used: admitted
    assert gw.call("llama31", key("k-research"), tokens=1).status == 429  # 600,000: over, any model
    assert gw.call("mistral", key("k-research"), tokens=1).status == 429
    # Other teams keep their own budgets; ops has none.
    assert gw.call("llama31", key("k-search"), tokens=1_000_000).status == 200
    for _ in range(5):
        assert gw.call("llama31", key("k-ops"), tokens=1_000_000).status == 200


def test_a_team_over_its_model_quota_gets_429_on_that_model_only(gw: Gateway) -> None:
    # research: at most 100,000 of its 500,000 an hour on mistral; charged to both buckets.
    assert gw.call("mistral", key("k-research"), tokens=150_000).status == 200  # admitted, then charged
    assert gw.call("mistral", key("k-research"), tokens=1).status == 429
    assert gw.call("llama31", key("k-research"), tokens=350_000).status == 200  # 150,000 of 500,000 used
    assert gw.call("llama31", key("k-research"), tokens=1).status == 429  # 150,000 + 350,000: spent


def test_without_token_costs_on_the_route_the_quota_would_never_bite(manifests: list[dict[str, Any]]) -> None:
    """The evaluator follows the route's llmRequestCosts: the quota test could fail."""
    broken = copy.deepcopy(manifests)
    for m in broken:
        if m["kind"] == "AIGatewayRoute":
            m["spec"].pop("llmRequestCosts")
    gw = Gateway(broken, copy.deepcopy(KEYS))
    for _ in range(5):
        assert gw.call("mistral", key("k-research"), tokens=200_000).status == 200


def test_a_removed_model_is_404_and_the_rest_still_served() -> None:
    xr = xr_with()
    xr["spec"]["models"] = [m for m in xr["spec"]["models"] if m["name"] != "mistral"]
    teams = copy.deepcopy(xr["spec"]["gateway"]["teams"])
    for team in teams:  # a per-model quota names the model too: the claim drops it with the model
        team.get("quota", {}).pop("models", None)
    xr["spec"]["gateway"]["teams"] = teams
    gw = Gateway(composed(xr), copy.deepcopy(KEYS))
    assert gw.call("mistral", key("k-research")).status == 404
    assert gw.call("llama31", key("k-research")).status == 200
