"""A request through the model gateway, evaluated against the configuration the function composes.

Envoy has no build here, so the data path cannot run. This follows one request
the way the documented semantics of each composed object say it goes
(GATEWAY-FACTS.md, Envoy Gateway's and the AI Gateway's docs), reading only the
composed manifests and the teams' key Secrets:

1. the AI Gateway's external processor copies the body's ``model`` into
   ``x-ai-eg-model`` (a client-set header is replaced);
2. ``SecurityPolicy.apiKeyAuth``: the key is read from the ``extractFrom``
   headers in order (``Authorization`` may carry ``Bearer``); each entry of each
   ``credentialRefs`` Secret is a client (first Secret wins on a shared ID); none
   matches: 401. The client ID is then forwarded in ``forwardClientIDHeader``
   (replacing what the client sent) and, with ``sanitize``, the key removed;
3. ``SecurityPolicy.authorization``: the first rule whose principal matches
   (every header named has one of its values; ``clientCIDRs`` holds the caller)
   decides, else ``defaultAction``; Deny: 403;
4. the AIGatewayRoutes' rules: the first whose match has every header equal
   (``Exact``) wins; none: 404 (the AI Gateway's ``route-not-found`` rule);
5. ``BackendTrafficPolicy.rateLimit.global``: every rule whose client selectors
   match the request has a bucket (per distinct value for ``Distinct``); a bucket
   already at its limit refuses with 429; the request is charged
   ``cost.request`` and, after the response, ``cost.response`` (the route's
   ``llmRequestCosts`` metadata: the response's total tokens);
6. the rule's backend: ``modelNameOverride`` is the model sent upstream, the
   AIServiceBackend's ``Backend`` names the host and port.

The filter order is Envoy Gateway's (``internal/xds/translator/httpfilters.go`` at
v1.8.1: API key auth, then external processors, then RBAC, then rate limits) with
the AI Gateway's processor inserted before the first of ext_proc/RBAC/rate limit
(``insertAIGatewayExtProcFilter`` at v1.1.0), and it overwrites a client-sent
``x-ai-eg-model``: authorization sees the body's model.

Proven this way: the composed configuration routes, authenticates, authorizes and
counts as the claim asks, given those semantics, not that Envoy implements them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

MODEL_HEADER = "x-ai-eg-model"
COST_NAMESPACE = "io.envoy.ai_gateway"  # where the AI Gateway writes llmRequestCosts


@dataclass(frozen=True)
class Answer:
    status: int
    client: str = ""
    upstream: str = ""  # host:port
    model: str = ""  # the model name the backend receives


@dataclass
class Gateway:
    """The composed gateway of one cluster (its manifests) and the key Secrets on it."""

    manifests: list[dict[str, Any]]
    secrets: dict[str, dict[str, str]]
    used: dict[tuple[int, tuple[str, ...]], int] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any] | None:
        found = self.of_kind(kind)
        assert len(found) <= 1, f"{len(found)} {kind}s"
        return found[0] if found else None

    # -- the request path ----------------------------------------------------
    def call(
        self, model: str, headers: dict[str, str] | None = None, *, tokens: int = 0, caller: str = "10.0.0.7"
    ) -> Answer:
        """One request for ``model`` with ``headers``; ``tokens`` the response's total tokens."""
        req = {k.lower(): v for k, v in (headers or {}).items()}
        req[MODEL_HEADER] = model
        policy = self.one("SecurityPolicy")
        client = ""
        if policy is not None:
            spec = policy["spec"]
            if "apiKeyAuth" in spec:
                auth = spec["apiKeyAuth"]
                client = self._client(auth, req)
                if not client:
                    return Answer(401)
                if auth.get("forwardClientIDHeader"):
                    req[auth["forwardClientIDHeader"].lower()] = client
                if auth.get("sanitize"):
                    for source in auth["extractFrom"]:
                        for name in source.get("headers") or []:
                            req.pop(name.lower(), None)
            if "authorization" in spec and not self._allowed(spec["authorization"], req, caller):
                return Answer(403, client)
        found = self._rule(req)
        if found is None:
            return Answer(404, client)
        route, rule = found
        counted = {c["metadataKey"] for c in route["spec"].get("llmRequestCosts") or [] if c["type"] == "TotalToken"}
        buckets = self._buckets(req, counted)
        if any(self.used.get(b, 0) >= limit for b, limit, _ in buckets):
            return Answer(429, client)
        for b, _, cost in buckets:
            self.used[b] = self.used.get(b, 0) + cost["request"]
        ref = rule["backendRefs"][0]
        upstream = self._upstream(ref["name"])
        for b, _, cost in buckets:  # charged after the response
            self.used[b] = self.used.get(b, 0) + (tokens if cost["response"] == "tokens" else cost["response"])
        return Answer(200, client, upstream, ref.get("modelNameOverride", model))

    def _client(self, auth: dict[str, Any], req: dict[str, str]) -> str:
        key = ""
        for source in auth["extractFrom"]:
            for name in source.get("headers") or []:
                value = req.get(name.lower(), "")
                if name.lower() == "authorization" and value.startswith("Bearer "):
                    value = value.removeprefix("Bearer ")
                if value:
                    key = value
                    break
            if key:
                break
        if not key:
            return ""
        for ref in auth["credentialRefs"]:
            for client, value in self.secrets.get(ref["name"], {}).items():
                if value == key:
                    return client
        return ""

    @staticmethod
    def _allowed(authz: dict[str, Any], req: dict[str, str], caller: str) -> bool:
        for rule in authz.get("rules") or []:
            principal = rule["principal"]
            if "clientCIDRs" in principal and not any(
                ipaddress.ip_address(caller) in ipaddress.ip_network(c) for c in principal["clientCIDRs"]
            ):
                continue
            if all(req.get(h["name"].lower()) in h["values"] for h in principal.get("headers") or []):
                return bool(rule["action"] == "Allow")
        return bool(authz.get("defaultAction", "Deny") == "Allow")

    def _rule(self, req: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(route, rule) of the first rule matching the request."""
        for route in self.of_kind("AIGatewayRoute"):
            for rule in route["spec"]["rules"]:
                for match in rule.get("matches") or []:
                    headers = match.get("headers") or []
                    if all(h.get("type", "Exact") == "Exact" and req.get(h["name"].lower()) == h["value"] for h in headers):
                        return route, rule
        return None

    def _buckets(
        self, req: dict[str, str], counted: set[str]
    ) -> list[tuple[tuple[int, tuple[str, ...]], int, dict[str, Any]]]:
        """(bucket, limit, cost) of every global rate-limit rule matching the request.

        A response costs its total tokens when the rule reads the AI Gateway's
        metadata key that the route counts total tokens into (``counted``).
        """
        btp = self.one("BackendTrafficPolicy")
        if btp is None:
            return []
        out = []
        for i, rule in enumerate(btp["spec"]["rateLimit"]["global"]["rules"]):
            key: list[str] = []
            ok = True
            for selector in rule.get("clientSelectors") or []:
                for h in selector.get("headers") or []:
                    value = req.get(h["name"].lower())
                    kind = h.get("type", "Exact")
                    if value is None or (kind == "Exact" and value != h["value"]):
                        ok = False
                    key.append(value or "")
            if not ok:
                continue
            cost = rule.get("cost") or {}
            request = cost.get("request") or {"from": "Number", "number": 1}
            response = cost.get("response")
            out.append(
                (
                    (i, tuple(key)),
                    int(rule["limit"]["requests"]),
                    {
                        "request": int(request.get("number", 0)) if request["from"] == "Number" else 0,
                        "response": "tokens" if _reads(response, counted) else 0,
                    },
                )
            )
        return out

    def _upstream(self, ai_backend: str) -> str:
        (aisb,) = [b for b in self.of_kind("AIServiceBackend") if b["metadata"]["name"] == ai_backend]
        assert aisb["spec"]["schema"]["name"] == "OpenAI"
        ref = aisb["spec"]["backendRef"]
        (backend,) = [b for b in self.of_kind("Backend") if b["metadata"]["name"] == ref["name"]]
        fqdn = backend["spec"]["endpoints"][0]["fqdn"]
        return f"{fqdn['hostname']}:{fqdn['port']}"


def _reads(response: dict[str, Any] | None, counted: set[str]) -> bool:
    if not response or response.get("from") != "Metadata":
        return False
    meta = response["metadata"]
    return bool(meta["namespace"] == COST_NAMESPACE and meta["key"] in counted)
