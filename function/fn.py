"""The gRPC boundary: decode the request, plan, encode the response.

Straight-line orchestration. Every failure becomes one Fatal result of the form
``cannot <verb> <thing>: <cause>``; the desired state of earlier pipeline steps
is always passed through, and nothing here raises into the server.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import grpc
from crossplane.function import logging, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from function.codec import observed_summary, struct_bytes, to_dict, to_struct
from function.errors import InvalidClaimError
from function.plan import Plan, XrMeta, plan_fleet, plan_platform
from function.validation import parse_fleet, parse_input, parse_platform

PLATFORM_KIND = "XOllamaPlatform"
FLEET_KIND = "XOllamaFleet"


def _observed(req: fnv1.RunFunctionRequest) -> dict[str, dict[str, Any]]:
    return {key: observed_summary(item.resource) for key, item in req.observed.resources.items()}


def plan_request(req: fnv1.RunFunctionRequest) -> Plan:
    """Decode ``req`` and plan it; raises InvalidClaimError or ValueError for bad input."""
    xr = to_dict(req.observed.composite.resource)
    kind = xr.get("kind")
    inputs = parse_input(to_dict(req.input) if req.HasField("input") else {})
    meta = XrMeta.of(xr)
    observed = _observed(req)
    if kind == PLATFORM_KIND:
        return plan_platform(meta, parse_platform(xr.get("spec"), inputs), inputs, observed)
    if kind == FLEET_KIND:
        return plan_fleet(meta, parse_fleet(xr.get("spec")), inputs, observed)
    msg = f"unsupported composite kind {kind!r}; expected {PLATFORM_KIND} or {FLEET_KIND}"
    raise ValueError(msg)


def write(plan: Plan, rsp: fnv1.RunFunctionResponse) -> None:
    """Write the plan into ``rsp`` (desired resources, XR status, conditions)."""
    for item in plan.resources:
        out = rsp.desired.resources[item.key]
        out.resource.ParseFromString(struct_bytes(item.body))
        out.ready = fnv1.READY_TRUE if plan.ready.get(item.key) else fnv1.READY_FALSE
    composite = rsp.desired.composite
    current = to_dict(composite.resource) if composite.HasField("resource") else {}
    status = dict(current.get("status") or {})
    status.update(plan.status)
    current["status"] = status
    composite.resource.CopyFrom(to_struct(current))
    for key in sorted(plan.connection_details):
        composite.connection_details[key] = plan.connection_details[key].encode()
    if not plan.composite_ready:
        composite.ready = fnv1.READY_FALSE
    for cond in plan.conditions:
        rsp.conditions.append(
            fnv1.Condition(
                type=cond.type,
                status=fnv1.STATUS_CONDITION_TRUE if cond.status else fnv1.STATUS_CONDITION_FALSE,
                reason=cond.reason,
                message=cond.message,
                target=fnv1.TARGET_COMPOSITE_AND_CLAIM,
            )
        )


class ResponseCache:
    """Responses by request, least recently used first out, bounded in entries.

    The function is pure: the same request bytes always give the same response.
    Crossplane re-sends an unchanged request for every steady-state reconcile,
    so answering a byte-identical request from here skips decoding and planning.
    """

    def __init__(self, size: int) -> None:
        """Keep at most ``size`` responses (0 disables the cache)."""
        self.size = size
        self._items: OrderedDict[bytes, bytes] = OrderedDict()

    @staticmethod
    def key(req: fnv1.RunFunctionRequest) -> bytes:
        """A digest of the whole request, tag included."""
        return hashlib.sha256(req.SerializeToString(deterministic=True)).digest()

    def get(self, key: bytes) -> fnv1.RunFunctionResponse | None:
        """The cached response for ``key``, if any."""
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        cached: fnv1.RunFunctionResponse = fnv1.RunFunctionResponse.FromString(self._items[key])
        return cached

    def put(self, key: bytes, rsp: fnv1.RunFunctionResponse) -> None:
        """Remember ``rsp`` for ``key``, evicting the oldest entry when full."""
        if self.size <= 0:
            return
        self._items[key] = rsp.SerializeToString(deterministic=True)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


DEFAULT_CACHE_SIZE = 64


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Composes XOllamaPlatform and XOllamaFleet composite resources."""

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        """Create a runner with the SDK's structured logger and a response cache."""
        self.log = logging.get_logger()
        self.cache = ResponseCache(cache_size)

    async def RunFunction(  # noqa: N802  # gRPC requires this name
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext | None = None
    ) -> fnv1.RunFunctionResponse:
        """Run the function; always return a response (cached for a repeated request)."""
        key = self.cache.key(req) if self.cache.size > 0 else b""
        cached = self.cache.get(key) if key else None
        if cached is not None:
            return cached
        rsp = self.compose(req)
        if key:
            self.cache.put(key, rsp)
        return rsp

    def compose(self, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
        """Plan ``req`` and write the response; every failure is one Fatal result."""
        rsp = response.to(req)
        kind, name = _identity(req)
        log = self.log.bind(tag=req.meta.tag, kind=kind, xr=name)
        try:
            plan = plan_request(req)
        except InvalidClaimError as exc:
            log.debug("invalid composite resource", errors=len(exc.errors))
            response.fatal(rsp, f"cannot compose {kind} {name}: {exc}")
            return rsp
        except ValueError as exc:
            response.fatal(rsp, f"cannot compose {kind} {name}: {exc}")
            return rsp
        except Exception as exc:  # the server must keep serving
            log.exception("unexpected error while planning")
            response.fatal(
                rsp, f"cannot compose {kind} {name}: internal error: {type(exc).__name__}"
            )
            return rsp
        staged = response.to(req)
        try:
            write(plan, staged)
        except Exception as exc:  # keep earlier pipeline state intact
            log.exception("unexpected error while writing the response")
            response.fatal(rsp, f"cannot write desired state for {name}: {type(exc).__name__}")
            return rsp
        log.debug("composed", resources=len(plan.resources), ready=plan.composite_ready)
        return staged


def _identity(req: fnv1.RunFunctionRequest) -> tuple[str, str]:
    """The observed XR's kind and name, for messages; placeholders when absent."""
    xr = req.observed.composite.resource
    kind = xr["kind"] if "kind" in xr and isinstance(xr["kind"], str) else "composite"
    try:
        name = str(xr["metadata"]["name"])
    except (KeyError, TypeError, ValueError):
        name = "(unnamed)"
    return kind, name
