"""The XR status, custom conditions and connection details, from what is observed.

Status carries names, regions, URLs and readiness only: never Secret data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from function import naming
from function.fleet.routing import endpoint as fleet_endpoint
from function.models.common import Cloud
from function.models.fleet import FleetSpec
from function.readiness import Selection
from function.reports import at_provider

if TYPE_CHECKING:
    from function.context import ClusterContext
    from function.models.platform import ClusterSpec, ModelSpec, PlatformSpec


@dataclass(frozen=True, slots=True)
class Condition:
    """A custom XR condition."""

    type: str
    status: bool
    reason: str
    message: str = ""


Observed = Mapping[str, Mapping[str, Any]]

# Connection details use a fixed set of keys whose values are recomputed on
# every call. Crossplane 2.1 merge-patches the connection Secret, so a key that
# stops being sent (one per model or cluster) would stay in it for ever.
CONNECTION_BUCKETS = "buckets"
CONNECTION_ENDPOINTS = "endpoints"
CONNECTION_GATEWAYS = "gateways"

BUCKET_KEYS = {Cloud.AWS: "bucket", Cloud.GCP: "bucket", Cloud.AZURE: "storage-account"}


@dataclass(slots=True)
class Report:
    """What the plan reports back about the XR."""

    status: dict[str, Any]
    conditions: list[Condition] = field(default_factory=list)
    connection_details: dict[str, str] = field(default_factory=dict)


def _external_name(body: Mapping[str, Any]) -> str:
    return str(
        ((body.get("metadata") or {}).get("annotations") or {}).get(naming.EXTERNAL_NAME, "")
    )


def _bucket(ctx: ClusterContext, emitted: Mapping[str, Any], observed: Observed) -> dict[str, Any]:
    suffix = BUCKET_KEYS.get(ctx.cloud)
    key = naming.key(ctx.name, suffix) if suffix else ""
    if key not in emitted:
        return {}
    out: dict[str, Any] = {"name": _external_name(emitted[key].body), "region": ctx.spec.region}
    seen = at_provider(observed.get(key))
    url = seen.get("arn") or seen.get("url") or seen.get("primaryBlobEndpoint")
    if url:
        out["url"] = str(url)
    return out


# An IP address or DNS name as a Gateway reports it (status.addresses[].value).
_ADDRESS = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.:]{0,251}[A-Za-z0-9])?$")


def gateway_endpoint(cluster: str, observed: Observed) -> str | None:
    """The model gateway's OpenAI base URL on ``cluster``, once its Gateway reports an address.

    Read from the observed Gateway (provider-kubernetes reports the object it
    manages under ``status.atProvider.manifest``); an IPv6 address is bracketed.
    """
    obj = observed.get(naming.key(cluster, "object", "gateway"))
    path = ("status", "atProvider", "manifest", "status", "addresses")
    if obj is not None and hasattr(obj, "carried"):  # codec.ObservedResource: a summary
        addresses = obj.carried(path)
    else:
        addresses = obj
        for name in path:
            addresses = addresses.get(name) if isinstance(addresses, Mapping) else None
    for address in addresses if isinstance(addresses, list) else []:
        value = address.get("value") if isinstance(address, Mapping) else None
        if isinstance(value, str) and _ADDRESS.match(value):
            host = f"[{value}]" if ":" in value else value
            return f"http://{host}/v1"
    return None


def _compact(value: Any) -> str:
    """Deterministic compact JSON for a connection detail."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _component_of(prefixes: tuple[str, ...], key: str) -> str | None:
    """The component a key names, after one of its cluster's ``_component_prefixes``."""
    for prefix in prefixes:
        if key.startswith(prefix):
            return key.removeprefix(prefix)
    return None


def _component_prefixes(ctx: ClusterContext) -> tuple[str, ...]:
    return tuple(f"{ctx.name}-{kind}-" for kind in ("release", "object"))


def platform_status(  # noqa: PLR0917  # the plan's pieces, passed once
    contexts: Sequence[ClusterContext],
    spec: PlatformSpec,
    owned: Mapping[str, Sequence[str]],
    selection: Selection,
    ready: Mapping[str, bool],
    observed: Observed,
) -> Report:
    """Per-cluster and per-model status, conditions and connection details.

    ``owned`` maps each cluster's name to the keys of everything composed for
    it, emitted or held, so no cluster ever counts another's resources.
    """
    emitted = {c.key: c for c in selection.emitted}
    report = Report(status={})
    clusters: list[dict[str, Any]] = []
    pools_ready: list[bool] = []
    stack_ready: list[bool] = []
    buckets: dict[str, dict[str, Any]] = {}
    gateways: dict[str, str] = {}
    for ctx in contexts:
        mine = list(owned[ctx.name])
        entry: dict[str, Any] = {
            "name": ctx.name,
            "ready": all(ready.get(k, False) for k in mine),
        }
        pool_key = naming.key(ctx.name, "nodepool")
        if ctx.node_pool is not None:
            body = emitted[pool_key].body if pool_key in emitted else {}
            entry["nodePool"] = {
                "name": _external_name(body),
                "instanceType": ctx.node_pool.instance_type,
                "ready": ready.get(pool_key, False),
            }
            pools_ready.append(ready.get(pool_key, False))
        bucket = _bucket(ctx, emitted, observed)
        if bucket:
            entry["bucket"] = bucket
            buckets[ctx.name] = bucket
        gateway = gateway_endpoint(ctx.name, observed)
        if gateway and spec.gateway.exposure is not None:  # served on the claim's host
            gateway = f"https://{spec.gateway.exposure.host}/v1"
        if gateway:
            entry["gateway"] = {"endpoint": gateway}
            gateways[ctx.name] = gateway
        components: dict[str, bool] = {}
        prefixes = _component_prefixes(ctx)
        for key in sorted(mine):
            name = _component_of(prefixes, key)
            if name is not None:
                components[name] = ready.get(key, False)
                stack_ready.append(components[name])
        entry["components"] = components
        clusters.append(entry)
    models: list[dict[str, Any]] = []
    models_ready: list[bool] = []
    endpoints: dict[str, dict[str, str]] = {}
    for model in spec.models:
        for cluster in model_targets(spec, model):
            key = naming.key(cluster.name, "fleet", model.name)
            fleet_spec = _fleet_spec(emitted.get(key))
            ok = ready.get(key, False)
            models_ready.append(ok)
            item: dict[str, Any] = {"name": model.name, "cluster": cluster.name, "ready": ok}
            if fleet_spec is not None:
                item["endpoint"] = fleet_endpoint(model.name, fleet_spec)
                endpoints.setdefault(model.name, {})[cluster.name] = item["endpoint"]
            models.append(item)
    report.status = {"clusters": clusters, "models": models}
    report.connection_details = {
        CONNECTION_BUCKETS: _compact(buckets),
        CONNECTION_ENDPOINTS: _compact(endpoints),
    }
    if gateways:  # each cluster's model gateway, once its address is reported
        report.connection_details[CONNECTION_GATEWAYS] = _compact(gateways)
    report.conditions = [
        _condition("NodePoolsReady", pools_ready, "GPU node pools"),
        _condition("StackReady", stack_ready, "in-cluster components"),
        _condition("ModelsReady", models_ready, "models"),
    ]
    return report


def model_targets(spec: PlatformSpec, model: ModelSpec) -> list[ClusterSpec]:
    """The clusters a model runs on: its list, or every cluster when empty."""
    if not model.clusters:
        return list(spec.clusters)
    wanted = set(model.clusters)
    return [c for c in spec.clusters if c.name in wanted]


def _fleet_spec(item: Any) -> FleetSpec | None:  # Composed | None
    """The spec of an emitted fleet (None when absent, or when what it carries is not one)."""
    if item is None:
        return None
    try:
        return FleetSpec.model_validate(item.body.get("spec"))
    except ValidationError:
        return None


def _condition(kind: str, flags: Sequence[bool], what: str) -> Condition:
    total = len(flags)
    done = sum(flags)
    ok = done == total
    if total == 0:
        return Condition(
            kind, status=True, reason="NotApplicable", message=f"no {what} in this claim"
        )
    return Condition(
        kind,
        status=ok,
        reason="Available" if ok else "Creating",
        message=f"{done}/{total} {what} ready",
    )
