"""The gRPC boundary: decode the request, plan, encode the response.

Straight-line orchestration. Every failure becomes one Fatal result of the form
``cannot <verb> <thing>: <cause>``; the desired state of earlier pipeline steps
is always passed through, and nothing here raises into the server.

Logs carry the XR's kind and name, the request tag, counts and exception types,
never request data (see ``function.logs``). Planning runs in a thread pool, so
one expensive request never stalls the event loop that answers the others.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from crossplane.function import response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf import struct_pb2 as structpb

from function import exclusive, logs, wire
from function.codec import (
    BytesLRU,
    MemoLRU,
    NonFiniteError,
    observed_resource,
    string_at,
    struct_bytes,
    to_dict,
    to_struct,
    value,
)
from function.errors import ClaimError, InvalidClaimError, bounded
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.models.platform import PlatformSpec
from function.plan import ADVISORIES, PROGRESSING, Plan, XrMeta, plan_fleet, plan_platform
from function.validation import (
    is_label_value,
    meta_errors,
    parse_fleet,
    parse_input,
    parse_platform,
)

__all__ = ["DEFAULT_CACHE_SIZE", "FunctionRunner", "ResponseCache", "to_struct"]

PLATFORM_KIND = "XOllamaPlatform"
FLEET_KIND = "XOllamaFleet"
EXPECTED = f"expected {PLATFORM_KIND} or {FLEET_KIND}"
CLAIM_NAME_LABEL = "crossplane.io/claim-name"
CLAIM_NAMESPACE_LABEL = "crossplane.io/claim-namespace"

# Input refused before any decoding or planning. The largest XR the XRDs admit
# (16 clusters x 32 models, with status) is well under 256 KiB.
MAX_COMPOSITE_BYTES = 1 << 20
MAX_INPUT_BYTES = 256 << 10
UNDECODABLE = (
    "cannot decode the request: protobuf refuses messages nested more than 100 levels deep, "
    "about 31 levels of JSON objects below the resource's root (spec, status or input); "
    "flatten the deepest value"
)
# Every Fatal message is cut to this many characters.
MAX_MESSAGE_CHARS = 4096
# gRPC's default message limit; the server passes its own send limit.
DEFAULT_MAX_RESPONSE_BYTES = 4 << 20


def _observed(req: fnv1.RunFunctionRequest) -> dict[str, dict[str, Any]]:
    return {key: observed_resource(item.resource) for key, item in req.observed.resources.items()}


def _size_errors(req: fnv1.RunFunctionRequest) -> list[ClaimError]:
    errors = []
    size = req.observed.composite.resource.ByteSize()
    if size > MAX_COMPOSITE_BYTES:
        errors.append(
            ClaimError(
                "observed.composite",
                f"the composite resource is {size} bytes, more than the "
                f"{MAX_COMPOSITE_BYTES} this function accepts",
            )
        )
    size = req.input.ByteSize()
    if size > MAX_INPUT_BYTES:
        errors.append(
            ClaimError(
                "input", f"the input is {size} bytes, more than the {MAX_INPUT_BYTES} accepted"
            )
        )
    return errors


def _decoded(s: structpb.Struct | structpb.Value, root: str) -> Any:  # JSON
    try:
        return to_dict(s) if isinstance(s, structpb.Struct) else value(s)
    except NonFiniteError as exc:
        raise InvalidClaimError([ClaimError(exc.path(root), str(exc))]) from None


def _meta(xr: structpb.Struct) -> XrMeta:
    """The XR's name, uid and claim labels; InvalidClaimError when one cannot be a label."""
    name = string_at(xr, "metadata", "name") or "unnamed"
    claim_name = string_at(xr, "metadata", "labels", CLAIM_NAME_LABEL) or ""
    claim_namespace = string_at(xr, "metadata", "labels", CLAIM_NAMESPACE_LABEL) or ""
    errors = meta_errors(
        name, {CLAIM_NAME_LABEL: claim_name, CLAIM_NAMESPACE_LABEL: claim_namespace}
    )
    if errors:
        raise InvalidClaimError(errors)
    uid = string_at(xr, "metadata", "uid") or ""
    return XrMeta(
        name=name, uid=bounded(uid, 128), claim_name=claim_name, claim_namespace=claim_namespace
    )


def plan_request(req: fnv1.RunFunctionRequest) -> Plan:
    """Decode ``req`` and plan it; raises InvalidClaimError or ClaimError for bad input."""
    errors = _size_errors(req)
    if errors:
        raise InvalidClaimError(errors)
    xr = req.observed.composite.resource
    kind = string_at(xr, "kind")
    if kind not in {PLATFORM_KIND, FLEET_KIND}:
        got = "missing" if kind is None else bounded(repr(kind), 80)
        raise InvalidClaimError(
            [ClaimError("kind", f"unsupported composite kind {got}; {EXPECTED}")]
        )
    key = _parsed_key(req, kind)
    parsed = _PARSED.get(key)
    if parsed is None:
        inputs = parse_input(_decoded(req.input, "input") if req.HasField("input") else {})
        meta = _meta(xr)
        spec = _decoded(xr.fields["spec"], "spec") if "spec" in xr.fields else None
        claim = parse_platform(spec, inputs) if kind == PLATFORM_KIND else parse_fleet(spec)
        parsed = _Parsed(inputs, spec, claim)
        _PARSED.put(key, parsed)
    else:
        meta = _meta(xr)
    observed = _observed(req)
    if isinstance(parsed.claim, PlatformSpec):
        metadata = xr.fields["metadata"] if "metadata" in xr.fields else None
        mine = {"metadata": _decoded(metadata, "metadata") if metadata else {}, "spec": parsed.spec}
        shared = exclusive.conflicts(mine, _required(req, exclusive.REQUIREMENT))
        if shared:
            raise InvalidClaimError(shared)
        return plan_platform(meta, parsed.claim, parsed.inputs, observed)
    return plan_fleet(meta, parsed.claim, parsed.inputs, observed)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A claim parsed: its input, its spec as decoded, the valid spec (frozen models)."""

    inputs: FunctionInput
    spec: Any  # JSON, as decoded; read, never changed
    claim: PlatformSpec | FleetSpec


# Parsed claims by the bytes they are parsed from (``_parsed_key``): between two
# calls for one XR, mostly its observed state changes, not its spec or input.
# Only valid claims are kept; the budget counts the keys (the XR is at most
# MAX_COMPOSITE_BYTES, the input MAX_INPUT_BYTES).
PARSED_MEMO_ENTRIES = 64
PARSED_MEMO_BYTES = 16 << 20
_PARSED: MemoLRU[_Parsed] = MemoLRU(PARSED_MEMO_ENTRIES, PARSED_MEMO_BYTES)


def _parsed_key(req: fnv1.RunFunctionRequest, kind: str | None) -> bytes:
    """What parsing reads: the XR's kind, its spec and the input, serialised deterministically."""
    xr = req.observed.composite.resource
    spec = xr.fields["spec"].SerializeToString(deterministic=True) if "spec" in xr.fields else b""
    data = req.input.SerializeToString(deterministic=True) if req.HasField("input") else b""
    return f"{kind}\0{len(spec)}\0".encode() + spec + data


def _required(req: fnv1.RunFunctionRequest, name: str) -> list[dict[str, Any]]:
    """The resources Crossplane fetched for requirement ``name`` (none on a first call)."""
    found = req.required_resources.get(name) or req.extra_resources.get(name)
    if not found:
        return []
    return [_decoded(item.resource, f"required resource {name}") for item in found.items]


def require_platforms(rsp: fnv1.RunFunctionResponse) -> None:
    """Ask Crossplane for every XOllamaPlatform (one platform per cluster)."""
    selector = rsp.requirements.resources[exclusive.REQUIREMENT]
    selector.api_version = exclusive.PLATFORM_API
    selector.kind = exclusive.PLATFORM_KIND
    selector.match_labels.SetInParent()  # no labels: every XOllamaPlatform


def announced(xr: structpb.Struct, kind: str) -> str | None:
    """The message of the observed XR's condition ``kind`` (None when it has none)."""
    status = xr.fields["status"] if "status" in xr.fields else None
    if status is None or status.WhichOneof("kind") != "struct_value":
        return None
    conditions = status.struct_value.fields.get("conditions")
    if conditions is None or conditions.WhichOneof("kind") != "list_value":
        return None
    for item in conditions.list_value.values:
        cond = item.struct_value if item.WhichOneof("kind") == "struct_value" else None
        if cond is not None and string_at(cond, "type") == kind:
            return string_at(cond, "message") or ""
    return None


def write(
    plan: Plan, rsp: fnv1.RunFunctionResponse, *, announced: str | None = None
) -> list[tuple[str, bytes]]:
    """Write the plan into ``rsp`` (XR status, conditions); return its composed resources.

    They come back as ``State.resources`` map entries (``wire.resource_entry``)
    for ``wire.response_bytes``, or ``merge`` for a response message; one that
    an earlier pipeline step passed through under the same key is updated in
    ``rsp`` instead (its other fields kept). The desired composite of earlier
    steps is kept as it is; only the status fields the plan sets are replaced,
    without decoding the rest. Warnings go out as Warning results (Events) only
    when they differ from ``announced``, the ``Advisories`` message the XR
    already carries: the condition holds them between changes.
    """
    entries = []
    earlier = rsp.desired.resources
    for item in plan.resources:
        data = item.encoded or struct_bytes(item.body)
        ready = fnv1.READY_TRUE if plan.ready.get(item.key) else fnv1.READY_FALSE
        if item.key in earlier:
            earlier[item.key].resource.ParseFromString(data)
            earlier[item.key].ready = ready
        elif item.encoded:
            entries.append((item.key, wire.memo_entry(item.key, data, ready)))
        else:
            entries.append((item.key, wire.resource_entry(item.key, data, ready)))
    _write_status(plan, rsp, announced)
    return entries


def merge(rsp: fnv1.RunFunctionResponse, entries: list[tuple[str, bytes]]) -> None:
    """Parse ``write``'s entries into ``rsp``'s desired resources."""
    rsp.desired.MergeFromString(b"".join(entry for _, entry in entries))


def _write_status(plan: Plan, rsp: fnv1.RunFunctionResponse, announced: str | None) -> None:
    composite = rsp.desired.composite
    fields = composite.resource.fields
    if "status" not in fields or fields["status"].WhichOneof("kind") != "struct_value":
        fields["status"].struct_value.Clear()
    status = fields["status"].struct_value
    ours = to_struct(plan.status)
    for key in sorted(ours.fields):
        status.fields[key].CopyFrom(ours.fields[key])
    for key in sorted(plan.connection_details):
        composite.connection_details[key] = plan.connection_details[key].encode()
    if not plan.composite_ready:
        composite.ready = fnv1.READY_FALSE
    advisory = next((c for c in plan.conditions if c.type == ADVISORIES), None)
    repeated = advisory is not None and announced == bounded(advisory.message, MAX_MESSAGE_CHARS)
    for message in () if repeated else plan.warnings:
        rsp.results.append(
            fnv1.Result(
                severity=fnv1.SEVERITY_WARNING,
                message=bounded(message, MAX_MESSAGE_CHARS),
                target=fnv1.TARGET_COMPOSITE_AND_CLAIM,
            )
        )
    for cond in plan.conditions:
        rsp.conditions.append(
            fnv1.Condition(
                type=cond.type,
                status=fnv1.STATUS_CONDITION_TRUE if cond.status else fnv1.STATUS_CONDITION_FALSE,
                reason=cond.reason,
                message=bounded(cond.message, MAX_MESSAGE_CHARS),
                target=fnv1.TARGET_COMPOSITE_AND_CLAIM,
            )
        )


class ResponseCache:
    """Serialised responses by request digest, bounded in entries and in bytes.

    The function is pure: the same request bytes always give the same response.
    Crossplane re-sends an unchanged request for every steady-state reconcile,
    so answering a byte-identical request from here skips decoding and planning.
    Only responses that can be sent are kept, and never an internal failure.
    """

    def __init__(self, size: int, max_bytes: int = 64 << 20, max_item: int | None = None) -> None:
        """Keep at most ``size`` responses and ``max_bytes`` bytes (size 0 disables it)."""
        self.size = size
        self._items = BytesLRU(size, max_bytes, max_item)

    @property
    def max_bytes(self) -> int:
        """Bytes it may hold in all."""
        return self._items.max_bytes

    @property
    def held_bytes(self) -> int:
        """Bytes held."""
        return self._items.bytes

    def __len__(self) -> int:
        """Responses held."""
        return len(self._items)

    def limit(self, max_item: int) -> None:
        """Keep no response larger than ``max_item`` bytes."""
        self._items.max_item = min(max_item, self._items.max_bytes)

    @staticmethod
    def key(req: fnv1.RunFunctionRequest) -> bytes:
        """A digest of the whole request, tag included."""
        return hashlib.sha256(req.SerializeToString(deterministic=True)).digest()

    def get_bytes(self, key: bytes) -> bytes | None:
        """The cached response for ``key`` as kept (serialised deterministically), if any."""
        return self._items.get(key)

    def put_bytes(self, key: bytes, data: bytes) -> bool:
        """Remember the response ``data`` (serialised deterministically) for ``key``.

        Unless it is too large; the oldest are evicted to fit.
        """
        if self.size <= 0:
            return False
        return self._items.put(key, data)


DEFAULT_CACHE_SIZE = 64
DEFAULT_CACHE_BYTES = 64 << 20
DEFAULT_WORKERS = 4
# Requests larger than this plan in a pool of their own (LARGE_WORKERS threads),
# so small claims never wait for a thread behind large ones. The small claim of
# the benchmark is ~25 KB, a 4-cluster, 8-model claim at steady state ~300 KB.
LARGE_REQUEST_BYTES = 128 << 10
LARGE_WORKERS = 2
# What a planning thread hands back: the response, or its serialised bytes.
_Answer = TypeVar("_Answer", fnv1.RunFunctionResponse, bytes, tuple[bytes, bool])


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Composes XOllamaPlatform and XOllamaFleet composite resources."""

    def __init__(
        self,
        cache_size: int = DEFAULT_CACHE_SIZE,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        """Create a runner: a response cache, a planning thread pool, the response limit."""
        self.log = logs.get_logger()
        self.max_response_bytes = max_response_bytes
        self.cache = ResponseCache(cache_size, cache_bytes, max_item=max_response_bytes)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan")
        self.large_executor = ThreadPoolExecutor(
            max_workers=min(workers, LARGE_WORKERS), thread_name_prefix="plan-large"
        )
        self.in_flight = 0  # calls being answered (counted on the event loop)
        self.answered = 0  # calls answered
        self.cancelled = 0  # calls cut off before their answer (the shutdown grace ran out)
        self._waiting: set[asyncio.Future[Any]] = set()
        self._giving_up = False

    def limit_responses(self, max_bytes: int) -> None:
        """Answer with a Fatal (never cached) when a response would exceed ``max_bytes``."""
        self.max_response_bytes = max_bytes
        self.cache.limit(max_bytes)

    async def RunFunction(  # noqa: N802  # gRPC requires this name
        self, req: fnv1.RunFunctionRequest, ctx: grpc.aio.ServicerContext | None = None
    ) -> fnv1.RunFunctionResponse:
        """Run the function off the event loop; always return a response.

        Large requests plan in their own, smaller pool: a small claim never
        queues for a thread behind them, and they hold fewer threads competing
        for the interpreter.
        """
        return await self._off_loop(self.run, req, ctx)

    async def RunFunctionBytes(  # noqa: N802  # beside RunFunction
        self,
        req: fnv1.RunFunctionRequest,
        ctx: grpc.aio.ServicerContext | None = None,
        *,
        size: int | None = None,
        missed: bytes | None = None,
    ) -> bytes:
        """``RunFunction``'s response serialised deterministically, as the server sends it.

        The serialising happens on the planning thread, not the event loop, and
        a cached response goes out as it is kept, without being parsed again.
        ``size`` is the request's size on the wire, when the caller knows it;
        ``missed`` the cache key ``cached`` found nothing under, when it looked.
        """
        job = self.run_bytes if missed is None else functools.partial(self.run_bytes, missed=missed)
        return await self._off_loop(job, req, ctx, size)

    async def RunFunctionElsewhere(  # noqa: N802  # beside RunFunction
        self, answer: Awaitable[_Answer], ctx: grpc.aio.ServicerContext | None = None
    ) -> _Answer:
        """The serialised answer another process computes (``function.workers``).

        Counted, drained and given up on at shutdown like the calls planned here.
        """
        return await self._track(asyncio.ensure_future(answer), ctx)

    async def _off_loop(
        self,
        job: Callable[[fnv1.RunFunctionRequest], _Answer],
        req: fnv1.RunFunctionRequest,
        ctx: grpc.aio.ServicerContext | None,
        size: int | None = None,
    ) -> _Answer:
        loop = asyncio.get_running_loop()
        large = (req.ByteSize() if size is None else size) > LARGE_REQUEST_BYTES
        plan = loop.run_in_executor(self.large_executor if large else self.executor, job, req)
        return await self._track(plan, ctx)

    async def _track(
        self, plan: asyncio.Future[_Answer], ctx: grpc.aio.ServicerContext | None
    ) -> _Answer:
        self._waiting.add(plan)
        self.in_flight += 1
        try:
            rsp = await plan
        except asyncio.CancelledError:
            self.cancelled += 1
            if ctx is not None and self._giving_up:
                # A clean UNAVAILABLE (Crossplane retries), not a cancelled coroutine.
                await ctx.abort(grpc.StatusCode.UNAVAILABLE, "the function is shutting down")
            raise
        finally:
            self._waiting.discard(plan)
            self.in_flight -= 1
        self.answered += 1
        return rsp

    async def drain(self, grace: float) -> bool:
        """Wait up to ``grace`` seconds for the calls in flight; True when none is left.

        Calls accepted while the server was stopping join the wait too.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._waiting and loop.time() < deadline:
            await asyncio.wait(set(self._waiting), timeout=deadline - loop.time())
        return not self._waiting

    def give_up(self) -> None:
        """Answer every call still planning with UNAVAILABLE (their plans finish unanswered)."""
        self._giving_up = True
        for plan in list(self._waiting):
            plan.cancel()

    def shutdown(self) -> None:
        """Stop the planning pools (plans under way finish on their threads, unanswered)."""
        for pool in (self.executor, self.large_executor):
            pool.shutdown(wait=False, cancel_futures=True)

    def bound_fatal(self, rsp: fnv1.RunFunctionResponse) -> None:
        """Keep a Fatal answer within the send limit.

        A Fatal passes through the desired state and context of earlier steps,
        which Crossplane does not apply after a Fatal anyway; when they would
        push the answer past the limit (gRPC would fail the call with
        RESOURCE_EXHAUSTED and the claim would never learn why), they are
        dropped and the message says so.
        """
        if not any(r.severity == fnv1.SEVERITY_FATAL for r in rsp.results):
            return
        if rsp.ByteSize() <= self.max_response_bytes:
            return
        dropped = rsp.desired.ByteSize() + rsp.context.ByteSize()
        rsp.ClearField("desired")
        rsp.ClearField("context")
        note = (
            f" (the desired state and context of earlier pipeline steps, {dropped} bytes, "
            f"are not passed through: with them the answer would exceed the "
            f"{self.max_response_bytes}-byte message limit)"
        )
        for result in rsp.results:
            if result.severity == fnv1.SEVERITY_FATAL:
                result.message = bounded(result.message, MAX_MESSAGE_CHARS - len(note)) + note
        for cond in rsp.conditions:
            if cond.reason == "FatalError":
                cond.message = bounded(cond.message, MAX_MESSAGE_CHARS - len(note)) + note
        self.log.info("dropped passed-through state from a Fatal answer", bytes=dropped)

    def undecodable(self) -> fnv1.RunFunctionResponse:
        """The answer to a request protobuf cannot decode (no tag, nothing to pass through)."""
        self.log.info("refused an undecodable request")
        rsp = fnv1.RunFunctionResponse()
        _fatal(rsp, UNDECODABLE)
        surface_fatal(rsp)
        return rsp

    def run(self, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
        """Answer ``req`` from the cache or by composing it (blocking): ``run_bytes`` parsed."""
        rsp: fnv1.RunFunctionResponse = fnv1.RunFunctionResponse.FromString(self.run_bytes(req))
        return rsp

    def run_bytes(self, req: fnv1.RunFunctionRequest, *, missed: bytes | None = None) -> bytes:
        """The answer to ``req`` serialised deterministically (blocking); the cache's as kept.

        ``missed``: the key ``cached`` gave when it found nothing (not looked up again).
        """
        if missed is None:
            found, key = self.cached(req)
            if found is not None:
                return found
        else:
            key = missed
        data, cacheable = self.answer_bytes(req)
        self.remember(key, data, cacheable=cacheable)
        return data

    def cached(self, req: fnv1.RunFunctionRequest) -> tuple[bytes | None, bytes]:
        """The kept answer to ``req`` (None when there is none) and its key (b"": cache off)."""
        key = self.cache.key(req) if self.cache.size > 0 else b""
        found = self.cache.get_bytes(key) if key else None
        if found is not None:
            self.log.debug("answered from cache", tag=bounded(req.meta.tag, 64))
        return found, key

    def remember(self, key: bytes, data: bytes, *, cacheable: bool) -> None:
        """Keep the answer ``data`` under ``key`` (from ``cached``) when it may be cached."""
        if key and cacheable:
            self.cache.put_bytes(key, data)

    def answer(self, req: fnv1.RunFunctionRequest) -> tuple[fnv1.RunFunctionResponse, bool]:
        """``compose``'s response, a Fatal surfaced and bounded; and whether it may be cached."""
        rsp, cacheable = self.compose(req)
        surface_fatal(rsp)
        self.bound_fatal(rsp)
        return rsp, cacheable

    def answer_bytes(self, req: fnv1.RunFunctionRequest) -> tuple[bytes, bool]:
        """``answer``'s response serialised deterministically, written as bytes.

        The composed resources are spliced in as encoded (``wire``), not parsed
        into the response and serialised again.
        """
        staged = self._staged(req)
        if staged.entries is not None:
            data = wire.response_bytes(staged.rsp, staged.entries)
            if len(data) <= self.max_response_bytes:
                return data, True
            rsp, cacheable = self.answer(req)  # rare: compose again, to its Fatal
        else:
            rsp, cacheable = staged.rsp, staged.cacheable
            surface_fatal(rsp)
            self.bound_fatal(rsp)
        return bytes(rsp.SerializeToString(deterministic=True)), cacheable

    def compose(self, req: fnv1.RunFunctionRequest) -> tuple[fnv1.RunFunctionResponse, bool]:
        """Plan ``req`` and write the response; every failure is one Fatal result.

        Returns the response and whether it may be cached (not an internal failure).
        A response over the send limit is a Fatal naming what to reduce.
        """
        staged = self._staged(req)
        if staged.entries is None or staged.plan is None:
            return staged.rsp, staged.cacheable
        merge(staged.rsp, staged.entries)
        size = staged.rsp.ByteSize()
        if size <= self.max_response_bytes:
            return staged.rsp, True
        kind, name = _identity(req)
        self.log.info(
            "response too large",
            tag=bounded(req.meta.tag, 64),
            kind=kind,
            xr=name,
            bytes=size,
            limit=self.max_response_bytes,
        )
        rsp = response.to(req)
        reason = too_large(staged.plan, staged.rsp, rsp.ByteSize(), self.max_response_bytes)
        _fatal(rsp, f"cannot compose {kind} {name}: {reason}")
        return rsp, True

    def _staged(self, req: fnv1.RunFunctionRequest) -> _Staged:
        """Plan ``req``: the response without the composed resources, and those as entries.

        A failure is the response with its Fatal, without entries.
        """
        rsp = response.to(req)
        kind, name = _identity(req)
        log = self.log.bind(tag=bounded(req.meta.tag, 64), kind=kind, xr=name)
        what = f"cannot compose {kind} {name}"
        try:
            plan = plan_request(req)
        except (InvalidClaimError, ClaimError) as exc:
            count = len(exc.errors) if isinstance(exc, InvalidClaimError) else 1
            log.info("refused an invalid composite resource", errors=count)
            _fatal(rsp, f"{what}: {exc}")
            return _Staged(rsp, None, None, cacheable=True)
        except Exception as exc:  # the server must keep serving
            log.error("unexpected error while planning", error=type(exc).__name__)
            _fatal(rsp, f"{what}: internal error: {type(exc).__name__}")
            return _Staged(rsp, None, None, cacheable=False)
        staged = response.to(req)
        try:
            entries = write(
                plan, staged, announced=announced(req.observed.composite.resource, ADVISORIES)
            )
            if kind == PLATFORM_KIND:
                require_platforms(staged)
        except Exception as exc:  # keep earlier pipeline state intact
            log.error("unexpected error while writing the response", error=type(exc).__name__)
            _fatal(rsp, f"cannot write desired state for {name}: {type(exc).__name__}")
            return _Staged(rsp, None, None, cacheable=False)
        log.debug("composed", resources=len(plan.resources), ready=plan.composite_ready)
        return _Staged(staged, entries, plan, cacheable=True)


@dataclass(frozen=True, slots=True)
class _Staged:
    """A planned answer: the response, the composed resources as map entries and the plan.

    ``entries`` and ``plan`` are None when the response is a Fatal.
    """

    rsp: fnv1.RunFunctionResponse
    entries: list[tuple[str, bytes]] | None
    plan: Plan | None
    cacheable: bool


def _shown_kind(body: dict[str, Any]) -> str:
    """A composed resource's kind; a provider-kubernetes Object's as ``Object/<manifest kind>``."""
    kind = str(body.get("kind"))
    manifest = (body.get("spec") or {}).get("forProvider", {}).get("manifest")
    return f"{kind}/{manifest.get('kind')}" if kind == "Object" and manifest else kind


def too_large(plan: Plan, staged: fnv1.RunFunctionResponse, passed: int, limit: int) -> str:
    """Why an answer cannot be sent, and what to reduce: the kinds that take the most bytes.

    ``passed`` is what the answer would carry without this function's output (the
    desired state and context of earlier pipeline steps).
    """
    size = staged.ByteSize()
    by_kind: dict[str, list[int]] = {}
    for item in plan.resources:
        count_bytes = by_kind.setdefault(_shown_kind(item.body), [0, 0])
        count_bytes[0] += 1
        count_bytes[1] += staged.desired.resources[item.key].ByteSize()
    largest = sorted(by_kind.items(), key=lambda kv: (-kv[1][1], kv[0]))[:3]
    shares = ", ".join(f"{count} {kind} ({total} bytes)" for kind, (count, total) in largest)
    message = (
        f"the response would be {size} bytes, more than the {limit}-byte message limit "
        f"(Crossplane receives at most 4 MiB): {len(plan.resources)} composed resources, "
        f"the largest shares: {shares}; {passed} bytes are passed through from earlier "
        "pipeline steps; "
    )
    if passed * 2 > size:
        return message + "reduce the desired state or context earlier pipeline steps pass on"
    return message + (
        "split the claim into claims of fewer clusters or models (each model on each "
        "cluster composes a fleet, gateway objects and usages), or shorten cluster and "
        "model names"
    )


def _fatal(rsp: fnv1.RunFunctionResponse, message: str) -> None:
    response.fatal(rsp, bounded(message, MAX_MESSAGE_CHARS))


def surface_fatal(rsp: fnv1.RunFunctionResponse) -> None:
    """Put a Fatal result's message where the claim's owner sees it.

    Crossplane 2.1 shows a Fatal result only in the XR's ``Synced`` condition;
    the claim copies none of it. Conditions the function returns with a Fatal
    are still applied, and those targeted at the claim are copied to it, so the
    message goes out as ``Progressing=False`` with reason ``FatalError`` too.
    """
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    if not fatal:
        return
    rsp.conditions.append(
        fnv1.Condition(
            type=PROGRESSING,
            status=fnv1.STATUS_CONDITION_FALSE,
            reason="FatalError",
            message="; ".join(fatal),
            target=fnv1.TARGET_COMPOSITE_AND_CLAIM,
        )
    )


def _identity(req: fnv1.RunFunctionRequest) -> tuple[str, str]:
    """The observed XR's kind and name for messages and logs; never mutates ``req``.

    An unknown kind reads as ``composite``, a name that is no label value as
    ``(invalid name)``: messages and logs never echo more than that.
    """
    xr = req.observed.composite.resource
    kind = string_at(xr, "kind")
    name = string_at(xr, "metadata", "name")
    if name is None:
        shown = "(unnamed)"
    else:
        shown = name if is_label_value(name) else "(invalid name)"
    return (kind if kind in {PLATFORM_KIND, FLEET_KIND} else "composite"), shown
