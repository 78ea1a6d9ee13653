"""The model gateway: what each cluster gets, what the claim may ask, and what is refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.errors import InvalidClaimError
from function.models.common import Cloud
from function.models.input import FunctionInput
from function.stack import gateway
from function.validation import parse_platform
from scripts.render import desired, load_docs, request, run
from scripts.stage import walk
from tests import toolchain
from tests.crdschema import validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gateway-teams" / "xr.yaml"


def xr_with(**spec: Any) -> dict[str, Any]:
    xr = copy.deepcopy(load_docs(EXAMPLE)[0])
    xr["spec"].update(spec)
    return xr


def manifests(xr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Manifests of the Objects at the ready state, by composition resource name."""
    stages = walk(xr)
    out = {}
    for key, body in desired(run(request(xr, stages[-1]))).items():
        if body["kind"] == "Object":
            out[key] = body["spec"]["forProvider"]["manifest"]
    return out


@pytest.fixture(scope="module")
def teams_state() -> dict[str, dict[str, Any]]:
    xr = xr_with()
    stages = walk(xr)
    return desired(run(request(xr, stages[-1])))


def of_kind(state: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        b["spec"]["forProvider"]["manifest"]
        for b in state.values()
        if b["kind"] == "Object" and b["spec"]["forProvider"]["manifest"]["kind"] == kind
    ]


GATEWAY_RELEASES = ("envoy-gateway", "ai-gateway-crds", "ai-gateway")


def gateway_keys(state: dict[str, Any]) -> list[str]:
    return [
        k for k in state
        if "-object-gateway" in k or any(k.endswith(f"-release-{r}") for r in GATEWAY_RELEASES)
    ]


def fatal(raw_spec: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidClaimError) as err:
        parse_platform(raw_spec, FunctionInput())
    return [f"{e.path}: {e.message}" for e in err.value.errors]


def test_every_gateway_object_fits_its_crd(teams_state) -> None:
    kinds = set()
    for body in teams_state.values():
        if body["kind"] != "Object":
            continue
        manifest = body["spec"]["forProvider"]["manifest"]
        if "envoyproxy.io" in manifest["apiVersion"] or "gateway.networking" in manifest["apiVersion"]:
            kinds.add(manifest["kind"])
            assert validate(manifest) == [], manifest
    assert kinds == {
        "AIGatewayRoute", "AIServiceBackend", "Backend", "BackendTrafficPolicy",
        "ClientTrafficPolicy", "EnvoyProxy", "Gateway", "GatewayClass", "SecurityPolicy",
    }


def test_the_install_order_is_the_documented_one(teams_state) -> None:
    order = {"envoy-gateway": (), "ai-gateway-crds": ("envoy-gateway",), "ai-gateway": ("ai-gateway-crds",)}
    xr = xr_with()
    stages = walk(xr)
    first = {}
    for i, stage in enumerate(stages):
        for key in stage:
            first.setdefault(key, i)
    for release, before in order.items():
        key = f"aws-east-release-{release}"
        assert key in teams_state
        for other in before:
            assert first[f"aws-east-release-{other}"] < first[key]
    # The namespace comes first, so the teams' key Secrets can be made before the gateway.
    for key, body in teams_state.items():
        if body["kind"] == "Object" and "-object-gateway-" in key and not key.endswith("-namespace"):
            assert first[key] > first["aws-east-release-envoy-gateway"], key


def test_each_team_key_secret_is_the_claims(teams_state) -> None:
    xr = xr_with()
    (policy,) = of_kind(teams_state, "SecurityPolicy")
    refs = {r["name"] for r in policy["spec"]["apiKeyAuth"]["credentialRefs"]}
    assert refs == {t["apiKeySecretRef"]["name"] for t in xr["spec"]["gateway"]["teams"]}
    rules = {r["name"]: r["principal"]["headers"] for r in policy["spec"]["authorization"]["rules"]}
    assert policy["spec"]["authorization"]["defaultAction"] == "Deny"
    assert rules["search"] == [
        {"name": gateway.CLIENT_HEADER, "values": ["search"]},
        {"name": gateway.MODEL_HEADER, "values": ["llama31"]},
    ]
    assert rules["ops"] == [{"name": gateway.CLIENT_HEADER, "values": ["api-key"]}]


def test_quotas_count_total_tokens_per_team_in_redis(teams_state) -> None:
    (route,) = of_kind(teams_state, "AIGatewayRoute")
    assert route["spec"]["llmRequestCosts"] == [{"metadataKey": gateway.COST_KEY, "type": "TotalToken"}]
    (btp,) = of_kind(teams_state, "BackendTrafficPolicy")
    limits = {
        r["clientSelectors"][0]["headers"][0]["value"]: r["limit"]
        for r in btp["spec"]["rateLimit"]["global"]["rules"]
        if len(r["clientSelectors"][0]["headers"]) == 1  # the team's own budget
    }
    assert limits == {"search": {"requests": 2000000, "unit": "Day"}, "research": {"requests": 500000, "unit": "Hour"}}
    eg = teams_state["aws-east-release-envoy-gateway"]["spec"]["forProvider"]["values"]
    assert eg["config"]["envoyGateway"]["rateLimit"]["backend"]["redis"]["url"] == gateway.REDIS_URL
    (redis,) = [d for d in of_kind(teams_state, "Deployment") if d["metadata"]["name"] == gateway.REDIS]
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] and ":" in container["image"]


def test_no_quota_no_redis_and_no_costs() -> None:
    teams = [{"name": "a", "apiKeySecretRef": {"name": "keys"}}]
    objs = manifests(xr_with(gateway={"teams": teams}))
    kinds = {m["kind"] for m in objs.values()}
    assert "BackendTrafficPolicy" not in kinds
    assert not [m for m in objs.values() if m["metadata"]["name"] == gateway.REDIS]
    (route,) = [m for m in objs.values() if m["kind"] == "AIGatewayRoute"]
    assert "llmRequestCosts" not in route["spec"]


def test_routes_hold_at_most_15_rules_and_send_the_ollama_tag() -> None:
    ups = [gateway.Upstream(f"m{i:02d}", f"tag:{i}", f"ollama.ollama-m{i:02d}.svc.cluster.local", 11434) for i in range(17)]
    routes = gateway.routes(ups, costs=False)
    assert [r["metadata"]["name"] for r in routes] == ["ollama-models", "ollama-models-2"]
    assert [len(r["spec"]["rules"]) for r in routes] == [15, 2]
    rule = routes[1]["spec"]["rules"][1]
    assert rule["matches"][0]["headers"] == [{"type": "Exact", "name": "x-ai-eg-model", "value": "m16"}]
    assert rule["backendRefs"] == [{"name": "m16", "modelNameOverride": "tag:16"}]


def test_the_proxy_is_private() -> None:
    aws = gateway.envoy_proxy(Cloud.AWS)["spec"]["provider"]["kubernetes"]["envoyService"]
    assert aws["type"] == "LoadBalancer"
    assert aws["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    assert gateway.proxy_service(Cloud.EXISTING) == {"type": "ClusterIP"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"gateway": {"enabled": False}}, "the claim turns the gateway off"),
        ({"models": [], "gateway": {}}, "no model is served on the cluster"),
    ],
)
def test_no_gateway(change: dict[str, Any], reason: str) -> None:
    xr = xr_with(**change)
    state = desired(run(request(xr, walk(xr)[-1])))
    assert not gateway_keys(state), reason


def test_a_cluster_can_turn_it_off() -> None:
    xr = xr_with()
    xr["spec"]["clusters"][0]["gateway"] = {"enabled": False}
    state = desired(run(request(xr, walk(xr)[-1])))
    assert not gateway_keys(state)
    assert gateway_keys(desired(run(request(xr_with(), walk(xr_with())[-1]))))


def test_a_team_naming_a_model_the_claim_does_not_serve_is_fatal() -> None:
    spec = xr_with()["spec"]
    spec["gateway"]["teams"][0]["models"] = ["llama31", "gpt-4"]
    assert fatal(spec) == [
        (
            "spec.gateway.teams[0].models[1]: model 'gpt-4' is not served by this claim "
            "(spec.models: llama31, mistral); name a model of spec.models or remove it"
        )
    ]


def test_two_teams_with_one_client_id_is_fatal() -> None:
    spec = xr_with()["spec"]
    spec["gateway"]["teams"][2]["apiKeySecretRef"] = {"name": "ops-key", "key": "search"}
    (message,) = fatal(spec)
    assert message.startswith("spec.gateway.teams[2].apiKeySecretRef.key: client ID 'search'")


def test_teams_without_the_gateway_is_fatal() -> None:
    spec = xr_with()["spec"]
    spec["gateway"]["enabled"] = False
    assert fatal(spec) == [
        "spec.gateway.teams: teams need the gateway: set spec.gateway.enabled to true or remove the teams"
    ]


def test_the_fatal_reaches_the_response() -> None:
    xr = xr_with()
    xr["spec"]["gateway"]["teams"][0]["models"] = ["nope"]
    rsp = run(request(xr, {}))
    assert [r.severity for r in rsp.results] == [fnv1.SEVERITY_FATAL]
    assert "spec.gateway.teams[0].models[0]" in rsp.results[0].message


def test_same_request_same_bytes() -> None:
    xr = xr_with()
    observed = walk(xr)[-1]
    assert run(request(xr, observed)).SerializeToString(deterministic=True) == run(
        request(xr, observed)
    ).SerializeToString(deterministic=True)


def test_the_gateway_address_is_reported_once_observed() -> None:
    xr = xr_with()
    observed = copy.deepcopy(walk(xr)[-1])
    rsp = run(request(xr, observed))
    assert "gateways" not in rsp.desired.composite.connection_details
    key = "aws-east-object-gateway"
    manifest = observed[key]["spec"]["forProvider"]["manifest"]
    seen = {**manifest, "status": {"addresses": [{"type": "Hostname", "value": "internal-k8s-gw.elb.amazonaws.com"}]}}
    observed[key].setdefault("status", {})["atProvider"] = {"manifest": seen}
    rsp = run(request(xr, observed))
    status = resource_status(rsp)
    assert status["clusters"][0]["gateway"] == {"endpoint": "http://internal-k8s-gw.elb.amazonaws.com/v1"}
    assert rsp.desired.composite.connection_details["gateways"] == (
        b'{"aws-east":"http://internal-k8s-gw.elb.amazonaws.com/v1"}'
    )
    seen["status"]["addresses"] = [{"type": "IPAddress", "value": "not an address; rm -rf"}]
    assert "gateway" not in resource_status(run(request(xr, observed)))["clusters"][0]


def resource_status(rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    from crossplane.function import resource

    return resource.struct_to_dict(rsp.desired.composite.resource)["status"]


def test_tokens_per_team_and_model_are_scraped_and_shown(teams_state) -> None:
    values = teams_state["aws-east-release-ai-gateway"]["spec"]["forProvider"]["values"]
    assert values["controller"]["metricsRequestHeaderAttributes"] == "x-ollama-client:ollama.client"
    (monitor,) = of_kind(teams_state, "PodMonitor")
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == {"metrics", "aigw-admin"}
    assert validate(monitor) == []
    (board,) = [d for d in of_kind(teams_state, "GrafanaDashboard") if d["metadata"]["name"] == "ollama-gateway"]
    assert "sum by (ollama_client, gen_ai_request_model" in board["spec"]["json"]


MISTRAL = ("aws-east-object-gateway-backend-mistral", "aws-east-object-gateway-aibackend-mistral")
ROUTE_1 = "aws-east-object-gateway-route-1"


def without_mistral() -> tuple[dict[str, Any], dict[str, Any]]:
    """(the claim without mistral, the observed state of the ready claim with it)."""
    xr = xr_with()
    observed = copy.deepcopy(walk(xr)[-1])
    xr["spec"]["models"] = [m for m in xr["spec"]["models"] if m["name"] != "mistral"]
    # A per-model quota names the model too: the claim drops it with the model.
    research = next(t for t in xr["spec"]["gateway"]["teams"] if t["name"] == "research")
    del research["quota"]["models"]
    return xr, observed


def route_reports(observed: dict[str, Any], manifest: Any) -> None:
    """Route 1's Object reports ``manifest`` as its live AIGatewayRoute (None: no report)."""
    status = observed[ROUTE_1].setdefault("status", {})
    if manifest is None:
        status.pop("atProvider", None)
    else:
        status["atProvider"] = {"manifest": manifest}


def test_removing_a_model_removes_its_route_rule_and_nothing_else(teams_state) -> None:
    xr, observed = without_mistral()
    after = desired(run(request(xr, observed)))
    before = {k: teams_state[k] for k in gateway_keys(teams_state)}
    now = {k: after[k] for k in gateway_keys(after)}
    # Its Backend and AIServiceBackend stay, unchanged, while route 1 still routes it
    # on the cluster (its Object reports the manifest it had).
    assert set(now) == set(before)
    assert all(now[k] == before[k] for k in MISTRAL)
    changed = sorted(k for k in now if now[k] != before[k])
    assert changed == ["aws-east-object-gateway-quotas", ROUTE_1]
    # The quotas lose exactly the removed model's bucket.
    def buckets(state: dict[str, Any]) -> list[list[str]]:
        rules = state["aws-east-object-gateway-quotas"]["spec"]["forProvider"]["manifest"]["spec"]["rateLimit"]
        return [[h["value"] for h in r["clientSelectors"][0]["headers"]] for r in rules["global"]["rules"]]
    assert buckets(before) == [*buckets(now), ["research", "mistral"]]
    rules = now[ROUTE_1]["spec"]["forProvider"]["manifest"]["spec"]["rules"]
    assert [r["name"] for r in rules] == ["llama31"]


def test_a_removed_models_backends_go_once_no_observed_route_names_it() -> None:
    xr, observed = without_mistral()
    route = desired(run(request(xr, observed)))[ROUTE_1]["spec"]["forProvider"]["manifest"]
    route_reports(observed, {**route, "status": {"conditions": []}})
    after = desired(run(request(xr, observed)))
    assert not set(MISTRAL) & set(after)
    assert ROUTE_1 in after and "aws-east-object-gateway-backend-llama31" in after


@pytest.mark.parametrize(
    "report",
    [
        None,  # the route's Object reports nothing (yet, or any longer)
        {"apiVersion": "aigateway.envoyproxy.io/v1beta1", "kind": "AIGatewayRoute"},  # no spec
        {"spec": {"rules": "garbled"}},
        {"spec": {"rules": [{"name": "llama31"}]}},  # a rule without its backendRefs
    ],
)
def test_a_removed_models_backends_stay_while_a_route_report_is_missing(report: Any) -> None:
    xr, observed = without_mistral()
    before = desired(run(request(xr, observed)))
    route_reports(observed, report)
    after = desired(run(request(xr, observed)))
    assert all(after[k] == before[k] for k in MISTRAL)


def test_a_second_route_still_naming_the_model_keeps_its_backends() -> None:
    xr, observed = without_mistral()
    route = desired(run(request(xr, observed)))[ROUTE_1]["spec"]["forProvider"]["manifest"]
    route_reports(observed, route)
    # A second route Object (being deleted, say) whose live object still routes mistral.
    old = copy.deepcopy(observed[ROUTE_1])
    old["status"]["atProvider"]["manifest"] = copy.deepcopy(walk(xr_with())[-1][ROUTE_1]["spec"]["forProvider"]["manifest"])
    observed["aws-east-object-gateway-route-2"] = old
    assert set(MISTRAL) <= set(desired(run(request(xr, observed))))
    del observed["aws-east-object-gateway-route-2"]
    assert not set(MISTRAL) & set(desired(run(request(xr, observed))))


def test_a_removed_models_backend_being_deleted_is_never_brought_back() -> None:
    """Once dropped (Crossplane deleting it), a flicker of the route's report does not revive it."""
    xr, observed = without_mistral()
    route_reports(observed, None)
    for key in MISTRAL:
        observed[key]["metadata"]["deletionTimestamp"] = "2026-12-07T01:00:00Z"
    assert not set(MISTRAL) & set(desired(run(request(xr, observed))))
    # Only what exists is kept: a missing AIServiceBackend is not created for a removed model.
    xr, observed = without_mistral()
    del observed[MISTRAL[1]]
    after = desired(run(request(xr, observed)))
    assert MISTRAL[0] in after and MISTRAL[1] not in after


def test_keeping_a_removed_models_backends_is_deterministic() -> None:
    xr, observed = without_mistral()
    first = run(request(xr, observed)).SerializeToString(deterministic=True)
    shuffled = dict(reversed(list(observed.items())))
    assert run(request(xr, shuffled)).SerializeToString(deterministic=True) == first
    assert run(request(xr, observed)).SerializeToString(deterministic=True) == first


@pytest.mark.parametrize(
    ("mesh", "pod"),
    [
        ("istio", {"labels": {"sidecar.istio.io/inject": "true"}, "annotations": {"traffic.sidecar.istio.io/includeInboundPorts": ""}}),
        ("linkerd", {"annotations": {"linkerd.io/inject": "enabled"}}),
        ("none", None),
    ],
)
def test_the_hop_to_the_models_stays_in_the_mesh(mesh: str, pod: dict[str, Any] | None) -> None:
    objs = manifests(xr_with(components={"mesh": mesh}))
    proxy = objs["aws-east-object-gateway-envoyproxy"]
    assert validate(proxy) == []
    assert proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"].get("pod") == pod


EXPOSURE = {"host": "models.example.com", "tlsSecretName": "models-tls", "allowedSourceRanges": ["203.0.113.0/24"]}


def test_an_exposed_gateway_is_https_on_the_host_for_the_listed_callers_only() -> None:
    xr = xr_with()
    xr["spec"]["gateway"]["exposure"] = EXPOSURE
    objs = manifests(xr)
    gw = objs["aws-east-object-gateway"]
    (listener,) = gw["spec"]["listeners"]
    assert (listener["protocol"], listener["port"], listener["hostname"]) == ("HTTPS", 443, "models.example.com")
    assert listener["tls"]["certificateRefs"] == [{"group": "", "kind": "Secret", "name": "models-tls"}]
    service = objs["aws-east-object-gateway-envoyproxy"]["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service == {"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/24"]}
    rules = objs["aws-east-object-gateway-keys"]["spec"]["authorization"]["rules"]
    assert all(r["principal"]["clientCIDRs"] == ["203.0.113.0/24"] for r in rules)
    for kind in ("aws-east-object-gateway", "aws-east-object-gateway-envoyproxy", "aws-east-object-gateway-keys"):
        assert validate(objs[kind]) == [], kind
    # Without teams, the callers' rule alone.
    xr["spec"]["gateway"]["teams"] = []
    keys = manifests(xr)["aws-east-object-gateway-keys"]["spec"]
    assert "apiKeyAuth" not in keys
    assert keys["authorization"] == {
        "defaultAction": "Deny",
        "rules": [{"name": "callers", "action": "Allow", "principal": {"clientCIDRs": ["203.0.113.0/24"]}}],
    }
    assert validate(manifests(xr)["aws-east-object-gateway-keys"]) == []


def test_an_exposed_gateway_reports_its_host() -> None:
    xr = xr_with()
    xr["spec"]["gateway"]["exposure"] = EXPOSURE
    observed = copy.deepcopy(walk(xr)[-1])
    key = "aws-east-object-gateway"
    seen = {**observed[key]["spec"]["forProvider"]["manifest"], "status": {"addresses": [{"value": "198.51.100.7"}]}}
    observed[key].setdefault("status", {})["atProvider"] = {"manifest": seen}
    status = resource_status(run(request(xr, observed)))
    assert status["clusters"][0]["gateway"] == {"endpoint": "https://models.example.com/v1"}


def test_an_exposed_gateways_callers_are_cidrs_and_checked() -> None:
    spec = xr_with()["spec"]
    spec["gateway"]["exposure"] = {**EXPOSURE, "allowedSourceRanges": ["203.0.113.7"]}
    xr = xr_with(gateway=spec["gateway"])
    objs = manifests(xr)
    service = objs["aws-east-object-gateway-envoyproxy"]["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service["loadBalancerSourceRanges"] == ["203.0.113.7/32"]
    assert validate(objs["aws-east-object-gateway-keys"]) == []
    spec["gateway"]["exposure"]["allowedSourceRanges"] = ["10.0.0.1/8"]
    (message,) = fatal(spec)
    assert message.startswith("spec.gateway.exposure.allowedSourceRanges[0]: ")


OIDC = ROOT / "examples" / "gateway-oidc" / "xr.yaml"


@pytest.fixture(scope="module")
def oidc_state() -> dict[str, dict[str, Any]]:
    xr = load_docs(OIDC)[0]
    return desired(run(request(xr, walk(xr)[-1])))


def test_a_team_quota_per_model_is_a_bucket_of_its_own(teams_state) -> None:
    (policy,) = of_kind(teams_state, "BackendTrafficPolicy")
    buckets = {
        tuple((h["name"], h["value"]) for h in r["clientSelectors"][0]["headers"]): r["limit"]
        for r in policy["spec"]["rateLimit"]["global"]["rules"]
    }
    research = (gateway.CLIENT_HEADER, "research")
    assert buckets[(research,)] == {"requests": 500000, "unit": "Hour"}
    # Same period as the team's, both buckets charged: either spent gives 429.
    assert buckets[(research, (gateway.MODEL_HEADER, "mistral"))] == {"requests": 100000, "unit": "Hour"}
    assert len(buckets) == 3


def test_a_model_quota_on_a_cluster_without_the_model_adds_no_bucket() -> None:
    team = {"name": "t", "apiKeySecretRef": {"name": "k"},
            "quota": {"tokens": 10, "models": [{"name": "mistral", "tokens": 5}]}}
    spec = parse_platform({**xr_with()["spec"], "gateway": {"teams": [team]}}, FunctionInput())
    rules = gateway.quota_policy(spec.gateway.teams, ["llama31"])["spec"]["rateLimit"]["global"]["rules"]
    assert len(rules) == 1
    rules = gateway.quota_policy(spec.gateway.teams, ["llama31", "mistral"])["spec"]["rateLimit"]["global"]["rules"]
    assert len(rules) == 2


@pytest.mark.parametrize(
    ("quota_models", "team_models", "message"),
    [
        ([{"name": "gpt-4", "tokens": 5}], [],
         ("spec.gateway.teams[0].quota.models[0].name: model 'gpt-4' is not one the team may call "
          "(llama31, mistral)")),
        ([{"name": "mistral", "tokens": 5}], ["llama31"],
         ("spec.gateway.teams[0].quota.models[0].name: model 'mistral' is not one the team may call "
          "(llama31)")),
    ],
)
def test_a_model_quota_for_a_model_the_team_cannot_call_is_fatal(quota_models, team_models, message) -> None:
    team = {"name": "t", "apiKeySecretRef": {"name": "k"}, "models": team_models,
            "quota": {"tokens": 10, "models": quota_models}}
    [got] = fatal({**xr_with()["spec"], "gateway": {"teams": [team]}})
    assert got.startswith(message), got


def test_a_caller_cannot_name_its_own_team(teams_state, oidc_state) -> None:
    for state in (teams_state, oidc_state):
        (policy,) = of_kind(state, "ClientTrafficPolicy")
        early = policy["spec"]["headers"]["earlyRequestHeaders"]
        assert early == {"remove": [gateway.CLIENT_HEADER]}


def test_jwt_callers_are_teams_by_their_token_claim(oidc_state) -> None:
    (policy,) = of_kind(oidc_state, "SecurityPolicy")
    assert validate(policy) == []
    assert "apiKeyAuth" not in policy["spec"]
    (provider,) = policy["spec"]["jwt"]["providers"]
    assert provider == {
        "name": gateway.JWT_PROVIDER,
        "issuer": "https://login.example.com/realms/ai",
        "audiences": ["ollama-gateway"],
        "remoteJWKS": {"uri": "https://login.example.com/realms/ai/protocol/openid-connect/certs"},
        # The quota buckets and metrics read the team from the claim.
        "claimToHeaders": [{"claim": "team", "header": gateway.CLIENT_HEADER}],
    }
    rules = {r["name"]: r["principal"] for r in policy["spec"]["authorization"]["rules"]}
    assert policy["spec"]["authorization"]["defaultAction"] == "Deny"
    claim = {"provider": gateway.JWT_PROVIDER, "claims": [{"name": "team", "valueType": "String", "values": ["search"]}]}
    assert rules["search"] == {"jwt": claim, "headers": [{"name": gateway.MODEL_HEADER, "values": ["llama31"]}]}
    assert rules["developers"]["jwt"]["claims"][0]["values"] == ["developers"]
    assert "headers" not in rules["developers"]
    (quotas,) = of_kind(oidc_state, "BackendTrafficPolicy")
    values = [[h["value"] for h in r["clientSelectors"][0]["headers"]] for r in quotas["spec"]["rateLimit"]["global"]["rules"]]
    assert values == [["search"], ["developers"], ["developers", "qwen-coder"]]


def test_jwt_without_teams_asks_only_for_a_valid_token() -> None:
    spec = {**load_docs(OIDC)[0]["spec"]}
    spec["gateway"] = {"jwt": spec["gateway"]["jwt"]}
    xr = {**load_docs(OIDC)[0], "spec": spec}
    (policy,) = of_kind(desired(run(request(xr, walk(xr)[-1]))), "SecurityPolicy")
    assert set(policy["spec"]) == {"jwt", "targetRefs"}
    assert validate(policy) == []


@pytest.mark.parametrize(
    ("gw", "message"),
    [
        ({"jwt": {"issuer": "https://i", "jwksUri": "https://i/k"},
          "teams": [{"name": "a", "apiKeySecretRef": {"name": "keys"}}]},
         "spec.gateway.teams[0].apiKeySecretRef: with spec.gateway.jwt a team is named by its token's teamClaim"),
        ({"teams": [{"name": "a"}]},
         "spec.gateway.teams[0].apiKeySecretRef: a team needs its API key"),
        ({"enabled": False, "jwt": {"issuer": "https://i", "jwksUri": "https://i/k"}},
         "spec.gateway.jwt: jwt need the gateway: set spec.gateway.enabled to true or remove spec.gateway.jwt"),
    ],
)
def test_a_team_authenticates_one_way(gw, message) -> None:
    [got] = fatal({**xr_with()["spec"], "gateway": gw})
    assert got.startswith(message), got


@pytest.mark.parametrize("issuer", ["http://login.example.com", "login.example.com", "https://a b"])
def test_the_issuer_must_be_https(issuer) -> None:
    gw = {"jwt": {"issuer": issuer, "jwksUri": "https://i/k"}}
    [got] = fatal({**xr_with()["spec"], "gateway": gw})
    assert got.startswith("spec.gateway.jwt.issuer"), got


def test_the_gateway_memo_is_keyed_on_what_the_gateway_reads() -> None:
    """A cluster's gateway is built once per context, gateway settings and upstreams.

    What comes back from the memo is what a fresh build encodes, and a change of
    any of the three (a team's quota, a model routed to) is a new build.
    """
    from function import codec
    from tests.factories import context_of

    raw = xr_with()["spec"]
    spec = parse_platform(raw, FunctionInput())
    ctx = context_of(raw, FunctionInput(), with_models=True)
    ups = [gateway.Upstream("m", "llama3:8b", "ollama.ollama-m.svc.cluster.local", 11434)]
    first = gateway.build(ctx, spec, ups)
    assert first and all(item.encoded for item in first)
    assert all(a is b for a, b in zip(gateway.build(ctx, spec, ups), first, strict=True))
    fresh = gateway._build(ctx, spec.gateway, ups, ())
    assert [i.encoded for i in first] == [codec.struct_bytes(i.body) for i in fresh]
    teams = [t.model_copy(update={"quota": None}) for t in spec.gateway.teams]
    no_quotas = spec.model_copy(
        update={"gateway": spec.gateway.model_copy(update={"teams": teams})}
    )
    without = gateway.build(ctx, no_quotas, ups)
    assert {i.key for i in without} < {i.key for i in first}  # no Redis, no quota policy
    more = [*ups, gateway.Upstream("n", "qwen:7b", "ollama.ollama-n.svc.cluster.local", 11434)]
    assert len(gateway.build(ctx, spec, more)) == len(first) + 2  # a Backend and AIServiceBackend
    # A removed model's objects still kept are part of the key too.
    old = gateway.Upstream("n", "", "ollama.ollama-n.svc.cluster.local", 11434)
    kept = gateway.build(ctx, spec, ups, [gateway.Retired(old, ("gateway-backend-n",))])
    assert {i.key for i in kept} - {i.key for i in first} == {"aws-east-object-gateway-backend-n"}


CHARTS = toolchain.CHARTS
LINKERD_ROUTE_CRDS = ("grpcroutes", "httproutes")  # linkerd-crds' installGatewayAPI templates


@pytest.mark.parametrize("gateway_on", [True, False])
def test_linkerd_leaves_the_gateway_api_crds_to_envoy_gateway(gateway_on: bool) -> None:
    """Found by the real e2e: both charts install Gateway API route CRDs and Helm adopts none.

    With Linkerd (development profile) and the gateway, linkerd-crds failed with
    "CustomResourceDefinition grpcroutes.gateway.networking.k8s.io exists and cannot
    be imported into the current release". The gateway's Release now owns them and
    Linkerd's control plane (whose policy controller reads them) waits for it.
    """
    gateway_crds = (CHARTS / "gateway-helm-v1.8.1" / "charts" / "crds" / "crds" / "gatewayapi-crds.yaml").read_text()
    for plural in LINKERD_ROUTE_CRDS:
        assert f"name: {plural}.gateway.networking.k8s.io" in gateway_crds
        template = CHARTS / "linkerd-crds-2026.8.3" / "templates" / f"gateway.networking.k8s.io_{plural}.yaml"
        assert ".Values.installGatewayAPI" in template.read_text().splitlines()[0]
    xr = copy.deepcopy(load_docs(ROOT / "examples" / "existing" / "xr.yaml")[0])
    if not gateway_on:
        xr["spec"]["gateway"] = {"enabled": False}
    stages = walk(xr)
    first: dict[str, int] = {}
    for i, stage in enumerate(stages):
        for key in stage:
            first.setdefault(key, i)
    final = desired(run(request(xr, stages[-1])))
    crds = final["k3s-dev-release-linkerd-crds"]["spec"]["forProvider"]["values"]
    assert crds["installGatewayAPI"] is not gateway_on
    assert ("k3s-dev-release-envoy-gateway" in final) is gateway_on
    if gateway_on:
        assert first["k3s-dev-release-envoy-gateway"] < first["k3s-dev-release-linkerd-control-plane"]


# What each controller finalizes (or cleans up on deletion) among the composed
# objects: the AI Gateway controller v1.1.0 puts aigateway.envoyproxy.io/finalizer
# on AIGatewayRoutes and AIServiceBackends (internal/controller/controller.go
# handleFinalizer); Envoy Gateway v1.8.1 puts gateway-exists-finalizer on the
# GatewayClass while a Gateway uses it and deletes the proxies when the Gateway
# goes (internal/provider/kubernetes/controller.go).
FINALIZED_BY = {
    "AIGatewayRoute": "ai-gateway",
    "AIServiceBackend": "ai-gateway",
    "GatewayClass": "envoy-gateway",
    "Gateway": "envoy-gateway",
}


def test_an_uninstall_keeps_each_controller_until_what_it_finalizes_is_gone() -> None:
    """With stackDeletionPolicy: Delete, ClusterUsages order the gateway's deletion.

    A controller whose Release went first would leave its finalizers for ever
    (and the AI Gateway CRDs, templates of ai-gateway-crds, Terminating with them).
    """
    xr = xr_with()
    for cluster in xr["spec"]["clusters"]:
        cluster["stackDeletionPolicy"] = "Delete"
    state = desired(run(request(xr, walk(xr)[-1])))
    usages = {k for k, b in state.items() if b["kind"] == "ClusterUsage"}
    finalized = {
        k: FINALIZED_BY[b["spec"]["forProvider"]["manifest"]["kind"]]
        for k, b in state.items()
        if b["kind"] == "Object" and b["spec"]["forProvider"]["manifest"]["kind"] in FINALIZED_BY
    }
    # Two AIServiceBackends and a route; the GatewayClass and the Gateway.
    assert sorted(finalized.values()) == ["ai-gateway"] * 3 + ["envoy-gateway"] * 2
    for key, release in finalized.items():
        by = key.removeprefix("aws-east-")
        assert f"aws-east-release-{release}-used-by-{by}" in usages, key
        assert f"aws-east-release-envoy-gateway-used-by-{by}" in usages, key
    # The AI Gateway's CRDs (templates: deleted with their Release) outlive its controller.
    assert "aws-east-release-ai-gateway-crds-used-by-release-ai-gateway" in usages


def test_certgen_rbac_goes_once_its_hooks_succeed(teams_state) -> None:
    """gateway-helm's certgen ServiceAccount and RBAC are pre-install hooks an uninstall never deletes."""
    from tests.charts import helm

    release = teams_state["aws-east-release-envoy-gateway"]
    docs = helm.template(helm.render_of(release))
    rbac = [d for d in docs if d["metadata"]["name"].startswith("envoy-gateway-gateway-helm-certgen")]
    assert sorted(d["kind"] for d in rbac) == [
        "ClusterRole", "ClusterRoleBinding", "Job", "Role", "RoleBinding", "ServiceAccount",
    ]
    for doc in rbac:
        policy = doc["metadata"]["annotations"].get("helm.sh/hook-delete-policy")
        assert policy == (None if doc["kind"] == "Job" else "before-hook-creation,hook-succeeded"), doc["kind"]


# The claim's routing: what names its models and teams (README "Model gateway").
PER_CLAIM = {"Backend", "AIServiceBackend", "AIGatewayRoute", "SecurityPolicy", "BackendTrafficPolicy"}
# The shared infrastructure: follows stackDeletionPolicy.
SHARED = {
    "Namespace", "EnvoyProxy", "GatewayClass", "Gateway", "ClientTrafficPolicy", "Deployment", "Service", "PodMonitor",
}


@pytest.mark.parametrize("policy", ["Orphan", "Delete"])
def test_the_claims_routing_is_deleted_with_it_whatever_the_stack_policy(policy: str) -> None:
    """Under Orphan the orphaned controllers still run, so they remove their finalizers."""
    xr = xr_with()
    for cluster in xr["spec"]["clusters"]:
        cluster["stackDeletionPolicy"] = policy
    state = desired(run(request(xr, walk(xr)[-1])))
    kinds: dict[str, set[bool]] = {}
    for key in gateway_keys(state):
        body = state[key]
        if body["kind"] not in {"Release", "Object"}:
            continue
        kind = body["kind"] if body["kind"] == "Release" else body["spec"]["forProvider"]["manifest"]["kind"]
        kinds.setdefault(kind, set()).add("Delete" in body["spec"]["managementPolicies"])
    assert set(kinds) == PER_CLAIM | SHARED | {"Release"}
    for kind, deletes in kinds.items():
        assert deletes == {kind in PER_CLAIM or policy == "Delete"}, kind
    # The keys and quotas outlive the route they guard, under either policy.
    usages = {k for k, b in state.items() if b["kind"] == "ClusterUsage"}
    for guard in ("keys", "quotas"):
        assert f"aws-east-object-gateway-{guard}-used-by-object-gateway-route-1" in usages


def test_routes_are_created_only_once_their_keys_and_quotas_exist() -> None:
    """At install, no moment where a route serves without its authentication or quota."""
    xr = xr_with()
    routed_at = None
    for i, observed in enumerate([{}, *walk(xr)]):
        state = desired(run(request(xr, observed)))
        routes = [k for k in gateway_keys(state) if "gateway-route-" in k]
        guards = [k for k in observed if k.endswith(("object-gateway-keys", "object-gateway-quotas"))]
        if routes:
            routed_at = i if routed_at is None else routed_at
            assert len(guards) == 2 * len(xr["spec"]["clusters"]), (i, routes, guards)
    assert routed_at is not None  # the walk reaches the routes
