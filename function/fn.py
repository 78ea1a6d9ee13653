"""The gRPC boundary: decode the request, plan, encode the response.

Straight-line orchestration. Every failure becomes one Fatal result of the form
``cannot <verb> <thing>: <cause>``; the desired state of earlier pipeline steps
is always passed through, and nothing here raises into the server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc
from crossplane.function import logging, resource, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import struct_pb2 as structpb

from function.errors import InvalidClaimError
from function.plan import Plan, XrMeta, plan_fleet, plan_platform
from function.validation import parse_fleet, parse_input, parse_platform

PLATFORM_KIND = "XOllamaPlatform"
FLEET_KIND = "XOllamaFleet"


def to_struct(data: Mapping[str, Any]) -> structpb.Struct:
    """A Struct with keys inserted in sorted order, so serialisation is byte-stable."""
    s = structpb.Struct()
    s.update(json.loads(json.dumps(data, sort_keys=True)))
    return s


def _observed(req: fnv1.RunFunctionRequest) -> dict[str, dict[str, Any]]:
    return {
        key: resource.struct_to_dict(item.resource) for key, item in req.observed.resources.items()
    }


def plan_request(req: fnv1.RunFunctionRequest) -> Plan:
    """Decode ``req`` and plan it; raises InvalidClaimError or ValueError for bad input."""
    xr = resource.struct_to_dict(req.observed.composite.resource)
    kind = xr.get("kind")
    inputs = parse_input(resource.struct_to_dict(req.input) if req.HasField("input") else {})
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
        out.resource.CopyFrom(to_struct(item.body))
        out.ready = fnv1.READY_TRUE if plan.ready.get(item.key) else fnv1.READY_FALSE
    composite = rsp.desired.composite
    current = resource.struct_to_dict(composite.resource) if composite.HasField("resource") else {}
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


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Composes XOllamaPlatform and XOllamaFleet composite resources."""

    def __init__(self) -> None:
        """Create a runner with the SDK's structured logger."""
        self.log = logging.get_logger()

    async def RunFunction(  # noqa: N802  # gRPC requires this name
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext | None = None
    ) -> fnv1.RunFunctionResponse:
        """Run the function; always return a response."""
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
