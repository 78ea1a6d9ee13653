"""The model gateway: one OpenAI-compatible endpoint per cluster (Envoy Gateway + Envoy AI Gateway).

Install (the order the AI Gateway docs give, each Release gated on the one before):

1. ``envoy-gateway``: the gateway-helm chart into ``envoy-gateway-system``. It brings
   the Gateway API and Envoy Gateway CRDs (its ``crds`` subchart) and runs Envoy
   Gateway configured as the AI Gateway asks (``envoy_gateway_config``): the
   extension manager pointing at the AI Gateway controller's gRPC port, its xDS
   hooks, and the ``Backend`` API. With token quotas, also the global rate limit
   backed by the Redis composed here (and the rate-limit image the AI Gateway's
   token addon pins).
2. ``ai-gateway-crds``: the AI Gateway CRDs, into ``envoy-ai-gateway-system``.
3. ``ai-gateway``: the AI Gateway controller, whose webhook adds the external
   processor to Envoy's pods.

Then, in namespace ``ollama-gateway``: an ``EnvoyProxy`` (the proxy's Service is the
cloud's internal load balancer, ClusterIP on existing clusters; resource requests),
the ``GatewayClass`` and ``Gateway`` (HTTP on port 80), a ``ClientTrafficPolicy``
raising the 32 KB client buffer, and per model served on the cluster an Envoy
``Backend`` (the model Service's cluster DNS name and port) and an
``AIServiceBackend`` (OpenAI schema). The ``AIGatewayRoute`` objects route on the header
``x-ai-eg-model`` (the request body's ``model``, set by the AI Gateway) equal to the
claim's model name, and send the Ollama tag upstream (``modelNameOverride``); an
AIGatewayRoute holds at most 15 rules, so more models take more routes.

Teams (``spec.gateway.teams``): a ``SecurityPolicy`` on the Gateway reads API keys
from the teams' Secrets in ``ollama-gateway`` (never created or copied here; each
entry of such a Secret is a client: its key the client ID, its value the API key),
from ``Authorization`` (bare key or ``Bearer``) or ``x-api-key``; no or a wrong key
gives 401. The client ID is forwarded in ``x-ollama-client``, and authorization
allows a team's client ID (and, with a model list, only those models); anything
else, other entries of the Secrets included, gives 403. With ``spec.gateway.jwt``
the policy checks a JWT from the claim's issuer instead (401 without a valid one),
authorization reads the team from the token's claim, and the claim is forwarded in
``x-ollama-client``. The ``ClientTrafficPolicy`` removes a caller's own
``x-ollama-client`` before any filter, so only authentication ever sets it.

Token quotas: each route counts a request's total tokens into dynamic metadata
(``llmRequestCosts``), and a ``BackendTrafficPolicy`` on the Gateway charges them
to one global rate-limit bucket per team (requests cost 0, responses their tokens);
over budget gives 429 on the next request. A team's per-model quota is one more
bucket, matched on the team and the model header, charged alongside.

A removed model (``Retired``): its rule leaves the routes at once, but its
``Backend`` and ``AIServiceBackend`` stay desired until every observed route
Object's live manifest (``status.atProvider.manifest``, as provider-kubernetes
reports it) no longer names it, so Envoy never routes a request to a backend
that is gone. A route whose report is missing or unreadable keeps them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from function import codec, usages, wrap
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.errors import ClaimError
from function.models.common import Cloud, Mesh, Observability
from function.models.platform import (
    Gateway,
    GatewayExposure,
    GatewayJwt,
    GatewayTeam,
    PlatformSpec,
)
from function.readiness import carried
from function.stack import StackMemo, monitors, observability
from function.stack.networking import INTERNAL_LB_ANNOTATIONS, PROMETHEUS_STACK

EG_NAMESPACE = "envoy-gateway-system"
AIGW_NAMESPACE = "envoy-ai-gateway-system"
NAMESPACE = "ollama-gateway"
NAME = "ollama-gateway"  # GatewayClass, Gateway and EnvoyProxy
ROUTE = "ollama-models"
LISTENER_PORT = 80
TLS_PORT = 443

GATEWAY_API = "gateway.networking.k8s.io/v1"
EG_API = "gateway.envoyproxy.io/v1alpha1"
AIGW_API = "aigateway.envoyproxy.io/v1beta1"
EG_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
# The chart's fullnameOverride; the extension manager reaches it on its gRPC port.
AIGW_CONTROLLER = f"ai-gateway-controller.{AIGW_NAMESPACE}.svc.cluster.local"
AIGW_EXTENSION_PORT = 1063

MODEL_HEADER = "x-ai-eg-model"
CLIENT_HEADER = "x-ollama-client"
KEY_HEADERS = ("Authorization", "x-api-key")
JWT_PROVIDER = "oidc"
MAX_RULES = 15  # per AIGatewayRoute (AIGatewayRouteSpec.rules maxItems)
BUFFER_LIMIT = "50Mi"  # the AI Gateway examples' ClientTrafficPolicy

# The AI Gateway adds the team's client ID to its GenAI metrics as this attribute
# (Prometheus label ollama_client).
CLIENT_ATTRIBUTE = "ollama.client"
DASHBOARD = "ollama-gateway"

COST_NAMESPACE = "io.envoy.ai_gateway"
COST_KEY = "llm_total_token"

REDIS = "ollama-gateway-redis"
REDIS_PORT = 6379
REDIS_URL = f"{REDIS}.{EG_NAMESPACE}.svc.cluster.local:{REDIS_PORT}"
# The rate-limit image the AI Gateway v1.1.0 token rate-limit addon pins (response costs).
RATELIMIT_IMAGE = "docker.io/envoyproxy/ratelimit:60d8e81b"

# The controllers' metrics Services (the charts render no ServiceMonitor).
MONITORS = (
    monitors.Monitor(
        "envoy-gateway",
        "envoy-gateway",
        EG_NAMESPACE,
        {"control-plane": "envoy-gateway", "app.kubernetes.io/instance": "envoy-gateway"},
        ("metrics",),
    ),
    monitors.Monitor(
        "ai-gateway",
        "ai-gateway-controller",
        AIGW_NAMESPACE,
        {"app.kubernetes.io/name": "ai-gateway-helm", "app.kubernetes.io/instance": "ai-gateway"},
        ("http-metrics",),
    ),
)

CERTGEN_RBAC_DELETE = "before-hook-creation,hook-succeeded"

CONTROLLER_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
PROXY_RESOURCES = {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
REDIS_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
JOB_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}


@dataclass(frozen=True, slots=True)
class Upstream:
    """A model served on the cluster: its claim name, Ollama tag and Service address."""

    name: str
    tag: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Retired:
    """A model no longer routed on the cluster whose objects an observed route may still name.

    ``objects``: the names (``gateway-backend-<model>``, ``gateway-aibackend-<model>``)
    of those that exist and stay desired; ``upstream.tag`` is unused (nothing routes it).
    """

    upstream: Upstream
    objects: tuple[str, ...]


# The per-model objects a removed model leaves, by the prefix of their Object names.
BACKEND_OBJECT = "gateway-backend-"
AI_BACKEND_OBJECT = "gateway-aibackend-"
ROUTE_OBJECT = "gateway-route-"
# What a route Object reports of its AIGatewayRoute on the cluster, and a deletion under way.
OBSERVED_RULES = ("status", "atProvider", "manifest", "spec", "rules")
DELETING = ("metadata", "deletionTimestamp")


def _routed(rules: Any) -> set[str] | None:  # JSON
    """The backends an observed route's rules name, or None when the report is unreadable."""
    if not isinstance(rules, list):
        return None
    names: set[str] = set()
    for rule in rules:
        refs = rule.get("backendRefs") if isinstance(rule, dict) else None
        if not isinstance(refs, list):
            return None
        names |= {str(r["name"]) for r in refs if isinstance(r, dict) and "name" in r}
    return names


def retiring(
    ctx: ClusterContext, served: Collection[str], observed: Mapping[str, Mapping[str, Any]]
) -> dict[str, tuple[str, ...]]:
    """Removed models whose Backend or AIServiceBackend stays: model -> the object names kept.

    An existing (observed, not being deleted) per-model object of a model not in
    ``served`` stays while any observed route Object reports a manifest whose
    rules name the model, or reports none that can be read (missing observation
    keeps). Once every route reports rules without it, it is dropped; an object
    already being deleted is never brought back.
    """
    prefix = wrap.object_key(ctx.name, "")
    found: dict[str, list[str]] = {}
    for key, obj in observed.items():
        name = key.removeprefix(prefix) if key.startswith(prefix) else ""
        for kind in (BACKEND_OBJECT, AI_BACKEND_OBJECT):
            model = name.removeprefix(kind) if name.startswith(kind) else ""
            if model and model not in served and carried(obj, DELETING) is None:
                found.setdefault(model, []).append(name)
    if not found:
        return {}
    named: set[str] = set()
    for key, obj in observed.items():
        if key.startswith(prefix + ROUTE_OBJECT):
            routed = _routed(carried(obj, OBSERVED_RULES))
            if routed is None:  # no readable report: every removed model may still be routed
                named |= set(found)
                break
            named |= routed
    return {model: tuple(sorted(names)) for model, names in sorted(found.items()) if model in named}


def client_id(team: GatewayTeam) -> str:
    """The team's client ID: its Secret entry's key (default, and with JWT: the team's name)."""
    ref = team.api_key_secret_ref
    return (ref.key if ref else None) or team.name


def enabled(spec: PlatformSpec, ctx: ClusterContext) -> bool:
    """Whether ``ctx``'s cluster runs the gateway: on, not turned off there, and serving models."""
    return spec.gateway.enabled and ctx.spec.gateway.enabled and bool(ctx.models)


def _quotas(gw: Gateway) -> list[GatewayTeam]:
    return [t for t in gw.teams if t.quota is not None]


def envoy_gateway_config(*, quotas: bool) -> dict[str, Any]:
    """Envoy Gateway's configuration for the AI Gateway (GATEWAY-FACTS.md section 6)."""
    hooks = {
        "translation": {
            part: {"includeAll": True} for part in ("listener", "route", "cluster", "secret")
        },
        "post": ["Translation", "Cluster", "Route"],
    }
    config: dict[str, Any] = {
        "gateway": {"controllerName": EG_CONTROLLER},
        "provider": {"type": "Kubernetes"},
        "extensionApis": {"enableBackend": True, "enableEnvoyPatchPolicy": True},
        "extensionManager": {
            "hooks": {"xdsTranslator": hooks},
            "service": {"fqdn": {"hostname": AIGW_CONTROLLER, "port": AIGW_EXTENSION_PORT}},
        },
    }
    if quotas:
        container = {"name": "envoy-ratelimit", "image": RATELIMIT_IMAGE}
        config["provider"]["kubernetes"] = {
            "rateLimitDeployment": {
                "container": {"resources": REDIS_RESOURCES},
                "patch": {
                    "type": "StrategicMerge",
                    "value": {"spec": {"template": {"spec": {"containers": [container]}}}},
                },
            }
        }
        config["rateLimit"] = {"backend": {"type": "Redis", "redis": {"url": REDIS_URL}}}
    return config


def envoy_gateway_values(*, quotas: bool) -> dict[str, Any]:
    """Values of the gateway-helm chart."""
    return {
        "config": {"envoyGateway": envoy_gateway_config(quotas=quotas)},
        "deployment": {"envoyGateway": {"resources": CONTROLLER_RESOURCES}},
        "certgen": {
            "job": {"resources": JOB_RESOURCES},
            # Its ServiceAccount and RBAC (pre-install hooks, which an uninstall never
            # deletes) serve only the certgen Job: deleted once the hooks succeed.
            "rbac": {"annotations": {"helm.sh/hook-delete-policy": CERTGEN_RBAC_DELETE}},
        },
    }


def ai_gateway_values() -> dict[str, Any]:
    """Values of the ai-gateway-helm chart: Envoy Gateway's namespace, requests set."""
    return {
        "controller": {
            "resources": CONTROLLER_RESOURCES,
            "metricsRequestHeaderAttributes": f"{CLIENT_HEADER}:{CLIENT_ATTRIBUTE}",
        },
        "envoyGateway": {"namespace": EG_NAMESPACE},
    }


def callers(exposure: GatewayExposure) -> list[str]:
    """The exposure's callers as CIDRs (an address alone is its /32 or /128)."""
    return [str(ipaddress.ip_network(r)) for r in exposure.allowed_source_ranges]


def proxy_service(cloud: Cloud, exposure: GatewayExposure | None = None) -> dict[str, Any]:
    """The Envoy proxy's Service: the cloud's internal load balancer, ClusterIP on existing.

    Exposed: a public load balancer admitting only the listed callers.
    """
    if exposure is not None:
        return {
            "type": "LoadBalancer",
            "loadBalancerSourceRanges": callers(exposure),
        }
    annotations = INTERNAL_LB_ANNOTATIONS.get(cloud)
    if annotations is None:
        return {"type": "ClusterIP"}
    return {"type": "LoadBalancer", "annotations": dict(annotations)}


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE}


def _gateway_ref() -> dict[str, Any]:
    return {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": NAME}


def _gateway_policy(kind: str, suffix: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An Envoy Gateway policy ``kind`` attached to the Gateway."""
    return {
        "apiVersion": EG_API,
        "kind": kind,
        "metadata": _meta(f"{NAME}-{suffix}"),
        "spec": {"targetRefs": [_gateway_ref()], **spec},
    }


def mesh_pod(mesh: Mesh) -> dict[str, Any]:
    """The proxy pods' part in the mesh: a sidecar for the hop to the models.

    Istio: the pod label injects the sidecar whatever the namespace says, and
    inbound ports are not captured (callers outside the mesh reach Envoy as
    before); outbound calls to the models go over the mesh's mTLS. Linkerd: the
    injection annotation, its proxy transparent to inbound callers.
    """
    if mesh is Mesh.ISTIO:
        return {
            "labels": {"sidecar.istio.io/inject": "true"},
            "annotations": {"traffic.sidecar.istio.io/includeInboundPorts": ""},
        }
    if mesh is Mesh.LINKERD:
        return {"annotations": {"linkerd.io/inject": "enabled"}}
    return {}


def envoy_proxy(
    cloud: Cloud, mesh: Mesh = Mesh.NONE, exposure: GatewayExposure | None = None
) -> dict[str, Any]:
    """The EnvoyProxy the GatewayClass names: Service, proxy resources, mesh sidecar."""
    deployment: dict[str, Any] = {"container": {"resources": PROXY_RESOURCES}}
    pod = mesh_pod(mesh)
    if pod:
        deployment["pod"] = pod
    return {
        "apiVersion": EG_API,
        "kind": "EnvoyProxy",
        "metadata": _meta(NAME),
        "spec": {
            "provider": {
                "type": "Kubernetes",
                "kubernetes": {
                    "envoyService": proxy_service(cloud, exposure),
                    "envoyDeployment": deployment,
                },
            }
        },
    }


def gateway_class() -> dict[str, Any]:
    """The GatewayClass of Envoy Gateway, parameterised by the EnvoyProxy."""
    return {
        "apiVersion": GATEWAY_API,
        "kind": "GatewayClass",
        "metadata": {"name": NAME},
        "spec": {
            "controllerName": EG_CONTROLLER,
            "parametersRef": {
                "group": "gateway.envoyproxy.io",
                "kind": "EnvoyProxy",
                "name": NAME,
                "namespace": NAMESPACE,
            },
        },
    }


def gateway(exposure: GatewayExposure | None = None) -> dict[str, Any]:
    """The Gateway: one HTTP listener (exposed: HTTPS on the host), routes from its namespace."""
    listener: dict[str, Any] = {
        "name": "http",
        "protocol": "HTTP",
        "port": LISTENER_PORT,
        "allowedRoutes": {"namespaces": {"from": "Same"}},
    }
    if exposure is not None:
        listener |= {
            "name": "https",
            "protocol": "HTTPS",
            "port": TLS_PORT,
            "hostname": exposure.host,
            "tls": {
                "mode": "Terminate",
                "certificateRefs": [
                    {"group": "", "kind": "Secret", "name": exposure.tls_secret_name}
                ],
            },
        }
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": _meta(NAME),
        "spec": {"gatewayClassName": NAME, "listeners": [listener]},
    }


def client_traffic_policy() -> dict[str, Any]:
    """Raise the client buffer above Envoy Gateway's 32 KB, too small for LLM bodies.

    A caller's own ``x-ollama-client`` is dropped before any filter runs, so only the
    gateway's authentication (API key or JWT claim) ever sets it: quotas and metrics
    count the team that authenticated, never the one a caller names.
    """
    return _gateway_policy(
        "ClientTrafficPolicy",
        "buffer",
        {
            "connection": {"bufferLimit": BUFFER_LIMIT},
            "headers": {"earlyRequestHeaders": {"remove": [CLIENT_HEADER]}},
        },
    )


def backend(up: Upstream) -> dict[str, Any]:
    """The Envoy Gateway Backend of a model: its Service's cluster DNS name and port."""
    return {
        "apiVersion": EG_API,
        "kind": "Backend",
        "metadata": _meta(up.name),
        "spec": {"endpoints": [{"fqdn": {"hostname": up.host, "port": up.port}}]},
    }


def ai_service_backend(up: Upstream) -> dict[str, Any]:
    """The AIServiceBackend of a model: OpenAI schema (Ollama serves /v1) over its Backend."""
    return {
        "apiVersion": AIGW_API,
        "kind": "AIServiceBackend",
        "metadata": _meta(up.name),
        "spec": {
            "schema": {"name": "OpenAI"},
            "backendRef": {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": up.name},
        },
    }


def route_name(index: int) -> str:
    """The name of the ``index``-th AIGatewayRoute (0: ``ollama-models``)."""
    return ROUTE if index == 0 else f"{ROUTE}-{index + 1}"


def routes(upstreams: Sequence[Upstream], *, costs: bool) -> list[dict[str, Any]]:
    """AIGatewayRoutes with one rule per model, at most ``MAX_RULES`` each."""
    out = []
    for start in range(0, len(upstreams), MAX_RULES):
        rules = [
            {
                "name": up.name,
                "matches": [
                    {"headers": [{"type": "Exact", "name": MODEL_HEADER, "value": up.name}]}
                ],
                "backendRefs": [{"name": up.name, "modelNameOverride": up.tag}],
            }
            for up in upstreams[start : start + MAX_RULES]
        ]
        spec: dict[str, Any] = {"parentRefs": [_gateway_ref()], "rules": rules}
        if costs:
            spec["llmRequestCosts"] = [{"metadataKey": COST_KEY, "type": "TotalToken"}]
        out.append(
            {
                "apiVersion": AIGW_API,
                "kind": "AIGatewayRoute",
                "metadata": _meta(route_name(start // MAX_RULES)),
                "spec": spec,
            }
        )
    return out


def jwt_provider(jwt: GatewayJwt) -> dict[str, Any]:
    """The claim's OIDC issuer; the team claim is forwarded as the client ID."""
    provider: dict[str, Any] = {"name": JWT_PROVIDER, "issuer": jwt.issuer}
    if jwt.audiences:
        provider["audiences"] = list(jwt.audiences)
    provider["remoteJWKS"] = {"uri": jwt.jwks_uri}
    provider["claimToHeaders"] = [{"claim": jwt.team_claim, "header": CLIENT_HEADER}]
    return provider


def _team_principal(team: GatewayTeam, jwt: GatewayJwt | None) -> dict[str, Any]:
    if jwt is None:
        return {"headers": [{"name": CLIENT_HEADER, "values": [client_id(team)]}]}
    claim = {"name": jwt.team_claim, "valueType": "String", "values": [team.name]}
    return {"jwt": {"provider": JWT_PROVIDER, "claims": [claim]}}


def security_policy(
    teams: Sequence[GatewayTeam],
    served: Sequence[str],
    exposure: GatewayExposure | None = None,
    jwt: GatewayJwt | None = None,
) -> dict[str, Any]:
    """API keys from the teams' Secrets (or a JWT); each team allowed (its models only).

    Exposed, every rule also asks for one of the listed callers' addresses; without
    teams that is the only rule.
    """
    cidrs = {"clientCIDRs": callers(exposure)} if exposure else {}
    rules = []
    for team in teams:
        principal = {**cidrs, **_team_principal(team, jwt)}
        if team.models:
            allowed = [m for m in served if m in team.models]
            if not allowed:
                continue  # none of its models is on this cluster: default Deny
            models = {"name": MODEL_HEADER, "values": allowed}
            principal["headers"] = [*principal.get("headers", []), models]
        rules.append({"name": team.name, "action": "Allow", "principal": principal})
    authorization = {"defaultAction": "Deny", "rules": rules}
    if jwt is not None:
        spec: dict[str, Any] = {"jwt": {"providers": [jwt_provider(jwt)]}}
        if teams or exposure:
            if not teams:
                authorization["rules"] = [
                    {"name": "callers", "action": "Allow", "principal": cidrs}
                ]
            spec["authorization"] = authorization
        return _gateway_policy("SecurityPolicy", "keys", spec)
    if not teams:
        authorization["rules"] = [{"name": "callers", "action": "Allow", "principal": cidrs}]
        return _gateway_policy("SecurityPolicy", "keys", {"authorization": authorization})
    secrets = sorted({t.api_key_secret_ref.name for t in teams if t.api_key_secret_ref})
    api_key_auth = {
        "credentialRefs": [{"group": "", "kind": "Secret", "name": s} for s in secrets],
        "extractFrom": [{"headers": list(KEY_HEADERS)}],
        "forwardClientIDHeader": CLIENT_HEADER,
        "sanitize": True,
    }
    return _gateway_policy(
        "SecurityPolicy",
        "keys",
        {
            "apiKeyAuth": api_key_auth,
            "authorization": authorization,
        },
    )


def _token_bucket(headers: list[dict[str, str]], tokens: int, period: str) -> dict[str, Any]:
    return {
        "clientSelectors": [{"headers": headers}],
        "limit": {"requests": tokens, "unit": period},
        "cost": {
            "request": {"from": "Number", "number": 0},
            "response": {
                "from": "Metadata",
                "metadata": {"namespace": COST_NAMESPACE, "key": COST_KEY},
            },
        },
    }


def quota_policy(teams: Sequence[GatewayTeam], served: Sequence[str]) -> dict[str, Any]:
    """A global token bucket per team with a quota, and per (team, model) where it sets one.

    Each response's total tokens are charged to every bucket the request matches, so a
    request is refused once the team's or that model's budget is spent.
    """
    rules = []
    for team in teams:
        if team.quota is None:
            continue
        team_header = {"name": CLIENT_HEADER, "type": "Exact", "value": client_id(team)}
        period = team.quota.period.value
        rules.append(_token_bucket([team_header], team.quota.tokens, period))
        for mq in team.quota.models:
            if mq.name not in served:
                continue
            model_header = {"name": MODEL_HEADER, "type": "Exact", "value": mq.name}
            rules.append(_token_bucket([team_header, model_header], mq.tokens, period))
    return _gateway_policy(
        "BackendTrafficPolicy",
        "quotas",
        {"rateLimit": {"type": "Global", "global": {"rules": rules}}},
    )


def _redis_labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": REDIS, "app.kubernetes.io/part-of": NAME}


def redis_deployment(image: str) -> dict[str, Any]:
    """The Redis the global rate limit counts in: one replica, no persistence, non-root."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": REDIS, "namespace": EG_NAMESPACE, "labels": _redis_labels()},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _redis_labels()},
            "template": {
                "metadata": {"labels": _redis_labels()},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 999,
                        "runAsGroup": 999,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "redis",
                            "image": image,
                            "args": ["--save", "", "--appendonly", "no"],
                            "ports": [
                                {"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}
                            ],
                            "resources": REDIS_RESOURCES,
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def redis_service() -> dict[str, Any]:
    """The ClusterIP Service of Redis (``REDIS_URL``)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": REDIS, "namespace": EG_NAMESPACE, "labels": _redis_labels()},
        "spec": {
            "type": "ClusterIP",
            "selector": _redis_labels(),
            "ports": [
                {"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}
            ],
        },
    }


def proxy_pod_monitor() -> dict[str, Any]:
    """Scrape the gateway's Envoy pods: Envoy's stats and the AI Gateway's GenAI metrics."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": f"{NAME}-proxy", "namespace": EG_NAMESPACE},
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/managed-by": "envoy-gateway",
                    "gateway.envoyproxy.io/owning-gateway-name": NAME,
                    "gateway.envoyproxy.io/owning-gateway-namespace": NAMESPACE,
                }
            },
            "namespaceSelector": {"matchNames": [EG_NAMESPACE]},
            "podMetricsEndpoints": [
                {"port": "metrics", "path": "/stats/prometheus"},
                {"port": "aigw-admin", "path": "/metrics"},
            ],
        },
    }


def dashboard_json() -> dict[str, Any]:
    """The gateway's dashboard: tokens per team and model, requests, latency."""
    per_model = "sum by (le, gen_ai_request_model)"
    panels = [
        observability.panel(
            1,
            "Tokens per team and model",
            f"sum by ({CLIENT_ATTRIBUTE.replace('.', '_')}, gen_ai_request_model, "
            "gen_ai_token_type) (rate(gen_ai_client_token_usage_sum[5m]))",
            legend="{{ollama_client}} {{gen_ai_request_model}} {{gen_ai_token_type}}",
            unit="short",
            x=0,
            y=0,
        ),
        observability.panel(
            2,
            "Requests per model",
            "sum by (gen_ai_request_model) (rate(gen_ai_server_request_duration_count[5m]))",
            legend="{{gen_ai_request_model}}",
            unit="reqps",
            x=12,
            y=0,
        ),
        observability.panel(
            3,
            "Request duration p95",
            f"histogram_quantile(0.95, {per_model} "
            "(rate(gen_ai_server_request_duration_bucket[5m])))",
            legend="{{gen_ai_request_model}}",
            unit="s",
            x=0,
            y=8,
        ),
        observability.panel(
            4,
            "Time to first token p95",
            f"histogram_quantile(0.95, {per_model} "
            "(rate(gen_ai_server_time_to_first_token_bucket[5m])))",
            legend="{{gen_ai_request_model}}",
            unit="s",
            x=12,
            y=8,
        ),
    ]
    return observability.board("Ollama gateway", DASHBOARD, ["ollama", "gateway"], panels)


def _observed(ctx: ClusterContext, eg: Composed) -> list[Composed]:
    """The proxy's PodMonitor and the dashboard, with observability on."""
    if ctx.components.observability is Observability.NONE:
        return []
    prometheus = Gate(wrap.release_key(ctx.name, PROMETHEUS_STACK), Need.READY)
    return [
        wrap.k8s_object(
            ctx,
            "gateway-podmonitor",
            proxy_pod_monitor(),
            after=(Gate(eg.key, Need.READY), prometheus),
            # The Prometheus Operator writes no status on PodMonitors.
            readiness="SuccessfulCreate",
        ),
        observability.dashboard(
            ctx, observability.dashboard_manifest(DASHBOARD, dashboard_json()), prometheus
        ),
    ]


def namespace() -> dict[str, Any]:
    """The gateway's namespace, where the teams' key Secrets live."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


# Each cluster's gateway, built and encoded once while what it reads is unchanged
# (like the stack, see ``StackMemo``): about 40 KB encoded for 32 models.
GATEWAY_MEMO_ENTRIES = 64
GATEWAY_MEMO_BYTES = 8 << 20
_GATEWAYS = StackMemo(GATEWAY_MEMO_ENTRIES, GATEWAY_MEMO_BYTES)


def build(
    ctx: ClusterContext,
    spec: PlatformSpec,
    upstreams: Sequence[Upstream],
    retired: Sequence[Retired] = (),
) -> list[Composed]:
    """The gateway's Releases and Objects on one cluster ([] where it is off), encoded.

    They read the cluster's context, the claim's gateway settings, the models
    routed to and the removed models' objects still kept (``retiring``): those
    are the memo's key.
    """
    if not enabled(spec, ctx) or not upstreams:
        return []
    key = (ctx.memo_key(), spec.gateway.model_dump_json(), tuple(upstreams), tuple(retired))
    items = _GATEWAYS.get(key)
    if items is None:
        built = _build(ctx, spec.gateway, upstreams, retired)
        items = tuple(replace(item, encoded=codec.struct_bytes(item.body)) for item in built)
        _GATEWAYS.put(key, items)
    return list(items)


def _build(
    ctx: ClusterContext, gw: Gateway, upstreams: Sequence[Upstream], retired: Sequence[Retired]
) -> list[Composed]:
    teams, exposure, jwt = gw.teams, gw.exposure, gw.jwt
    quotas = bool(_quotas(gw))
    eg = wrap.release(
        ctx,
        "envoy-gateway",
        chart="envoy-gateway",
        namespace=EG_NAMESPACE,
        values=envoy_gateway_values(quotas=quotas),
        wait=True,
    )
    crds = wrap.release(
        ctx,
        "ai-gateway-crds",
        chart="ai-gateway-crds",
        namespace=AIGW_NAMESPACE,
        after=(Gate(eg.key, Need.READY),),
    )
    aigw = wrap.release(
        ctx,
        "ai-gateway",
        chart="ai-gateway",
        namespace=AIGW_NAMESPACE,
        values=ai_gateway_values(),
        wait=True,
        after=(Gate(crds.key, Need.READY),),
    )
    ns = wrap.k8s_object(ctx, "gateway-namespace", namespace(), readiness="SuccessfulCreate")
    after_eg = (Gate(eg.key, Need.READY), Gate(ns.key, Need.READY))
    after_aigw = (*after_eg, Gate(aigw.key, Need.READY))
    # The proxies start with their sidecar: the mesh's injector must be up first.
    after_mesh = (
        *after_eg,
        Gate(wrap.release_key(ctx.name, "istiod"), Need.READY),
        Gate(wrap.release_key(ctx.name, "linkerd-control-plane"), Need.READY),
    )

    def obj(
        name: str, manifest: dict[str, Any], after: tuple[Gate, ...], *, per_claim: bool = False
    ) -> Composed:
        # The claim's routing (what names its models and teams) is deleted with it
        # whatever stackDeletionPolicy says; the shared infrastructure follows it.
        return wrap.k8s_object(
            ctx, name, manifest, after=after, readiness="SuccessfulCreate", deletable=per_claim
        )

    out = [eg, crds, aigw, ns, *monitors.objects(ctx, MONITORS), *_observed(ctx, eg)]
    out += [
        obj(
            "gateway-envoyproxy",
            envoy_proxy(ctx.cloud, ctx.components.mesh, exposure),
            after_mesh,
        ),
        obj("gateway-class", gateway_class(), after_eg),
        obj("gateway", gateway(exposure), (*after_mesh, Gate(aigw.key, Need.READY))),
        obj("gateway-buffer", client_traffic_policy(), after_eg),
    ]
    # A removed model's rule leaves its route at once; its Backend and
    # AIServiceBackend stay while an observed route still names it (``retiring``).
    def backends(up: Upstream, names: Collection[str]) -> list[Composed]:
        return [
            obj(name, body, after, per_claim=True)
            for name, body, after in (
                (f"{BACKEND_OBJECT}{up.name}", backend(up), after_eg),
                (f"{AI_BACKEND_OBJECT}{up.name}", ai_service_backend(up), after_aigw),
            )
            if name in names
        ]

    for up in upstreams:
        out += backends(up, (f"{BACKEND_OBJECT}{up.name}", f"{AI_BACKEND_OBJECT}{up.name}"))
    for old in retired:
        out += backends(old.upstream, old.objects)
    served = [up.name for up in upstreams]
    policies = []
    if teams or exposure or jwt:
        policy = security_policy(teams, served, exposure, jwt)
        policies.append(obj("gateway-keys", policy, after_eg, per_claim=True))
    if quotas:
        image = ctx.platform.inputs.spec.redis_image
        out.append(obj("gateway-redis", redis_deployment(image), (Gate(eg.key, Need.READY),)))
        out.append(obj("gateway-redis-service", redis_service(), (Gate(eg.key, Need.READY),)))
        policy = quota_policy(teams, served)
        policies.append(obj("gateway-quotas", policy, after_aigw, per_claim=True))
    out += policies
    # Created after the keys and quotas that guard them: no moment where a route
    # serves without its authentication or quota.
    guarded = (*after_aigw, *(Gate(policy.key, Need.READY) for policy in policies))
    route_objects = [
        obj(f"{ROUTE_OBJECT}{i + 1}", route, guarded, per_claim=True)
        for i, route in enumerate(routes(upstreams, costs=quotas))
    ]
    out += route_objects
    # Deleted with the claim, the routes go before the keys and quotas that guard
    # them: no moment where a route serves without its authentication or quota.
    out += [
        twin
        for policy in policies
        for route in route_objects
        for twin in usages.usage(ctx, policy, route, f"{route.key} is deleted first")
    ]
    return out


def errors(spec: PlatformSpec) -> list[ClaimError]:
    """Gateway settings that cannot work, with the field and the fix."""
    out: list[ClaimError] = []
    gw = spec.gateway
    for field, what, fix in (
        ("spec.gateway.teams", gw.teams, "the teams"),
        ("spec.gateway.jwt", gw.jwt, "spec.gateway.jwt"),
    ):
        if not gw.enabled and what:
            need = f"{field.rsplit('.', 1)[1]} need the gateway"
            out.append(
                ClaimError(field, f"{need}: set spec.gateway.enabled to true or remove {fix}")
            )
    models = {m.name for m in spec.models}
    known = ", ".join(sorted(models)) or "none"
    seen: dict[str, int] = {}
    for i, team in enumerate(gw.teams):
        path = f"spec.gateway.teams[{i}]"
        out += _team_auth_errors(path, team, jwt=gw.jwt is not None)
        cid = client_id(team)
        if gw.jwt is None and cid in seen:
            out.append(
                ClaimError(
                    f"{path}.apiKeySecretRef.key",
                    f"client ID {cid!r} is also spec.gateway.teams[{seen[cid]}]'s: Envoy Gateway "
                    "would give both teams' callers the first team's identity; give each team "
                    "its own Secret entry (apiKeySecretRef.key)",
                )
            )
        seen.setdefault(cid, i)
        for j, model in enumerate(team.models):
            if model not in models:
                out.append(
                    ClaimError(
                        f"{path}.models[{j}]",
                        f"model {model!r} is not served by this claim (spec.models: {known}); "
                        "name a model of spec.models or remove it",
                    )
                )
        for j, mq in enumerate(team.quota.models if team.quota else []):
            if mq.name not in models or (team.models and mq.name not in team.models):
                may = sorted(set(team.models) & models) if team.models else sorted(models)
                out.append(
                    ClaimError(
                        f"{path}.quota.models[{j}].name",
                        f"model {mq.name!r} is not one the team may call "
                        f"({', '.join(may) or 'none'}); name one of those or remove the entry",
                    )
                )
    return out


def _team_auth_errors(path: str, team: GatewayTeam, *, jwt: bool) -> list[ClaimError]:
    """A team authenticates by exactly one way: its API key, or the claim's JWT issuer."""
    if jwt and team.api_key_secret_ref is not None:
        return [
            ClaimError(
                f"{path}.apiKeySecretRef",
                "with spec.gateway.jwt a team is named by its token's teamClaim, not by an "
                "API key: remove apiKeySecretRef (or spec.gateway.jwt to use keys)",
            )
        ]
    if not jwt and team.api_key_secret_ref is None:
        return [
            ClaimError(
                f"{path}.apiKeySecretRef",
                "a team needs its API key (a Secret entry in namespace ollama-gateway): set "
                "apiKeySecretRef, or spec.gateway.jwt to name teams by a token claim",
            )
        ]
    return []
