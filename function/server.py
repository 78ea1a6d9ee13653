"""Serve the runner over gRPC: byte-stable responses and a graceful shutdown.

The SDK's ``runtime.serve`` registers the servicer with protobuf's default
serializer, whose map order (every ``Struct`` is a map) changes from process to
process; we promise the same bytes for the same request, so the two services
(v1 and v1beta1) are registered here with deterministic serialization. A
request protobuf cannot decode (nested too deeply) gets a Fatal, not
``UNKNOWN``. Shutdown differs from the SDK's too: SIGTERM and SIGINT both stop
the server, calls in flight get ``grace`` seconds to finish, and an idle server
exits at once.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from crossplane.function import runtime
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha import reflection

from function import fn, workers

SERVICE = "apiextensions.fn.proto.{}.FunctionRunnerService"
# Kubernetes waits 30 s by default between SIGTERM and SIGKILL.
DEFAULT_GRACE_SECONDS = 20.0
SWITCH_INTERVAL_SECONDS = 0.0005
WORKER_LOST = "a planning process stopped while it held this call (it is being restarted)"
# After the grace, how long the calls given up on have to send their UNAVAILABLE.
CUT_OFF_SECONDS = 2.0
# Message limits, in MiB. Crossplane 2.1.4 dials functions with grpc-go's client
# defaults (internal/xfn/function_runner.go sets no MaxCallRecvMsgSize or
# MaxCallSendMsgSize): it receives at most 4 MiB and sends requests of any size.
# A request carries the observed state of every composed resource (their status,
# and each Object's manifest as it is in the cluster), so it outgrows the
# response it asks for: the largest claim's steady-state request is 1.4 times its
# response. Receiving is bounded at 32 MiB; sending at Crossplane's 4 MiB, so an
# answer too large for Crossplane is a Fatal it can read, never a transport error.
CROSSPLANE_MAX_RECV_MIB = 4
DEFAULT_MAX_RECV_MIB = 32


def _deterministic(message: Any) -> bytes:  # any protobuf message, or one serialised already
    if isinstance(message, bytes):
        return message
    return bytes(message.SerializeToString(deterministic=True))


def _decoder(data: bytes) -> tuple[fnv1.RunFunctionRequest | None, int]:
    """The request and its size, or None when protobuf refuses it (nested beyond its depth limit).

    The size on the wire picks the planning pool without measuring the request again.
    """
    try:
        req: fnv1.RunFunctionRequest = fnv1.RunFunctionRequest.FromString(data)
    except DecodeError:
        return None, len(data)
    return req, len(data)


def _received(data: bytes) -> bytes:
    """The request as received: with worker processes, the worker parses it."""
    return data


async def serve(
    runner: fn.FunctionRunner,
    address: str,
    *,
    creds: grpc.ServerCredentials | None,
    options: Sequence[tuple[str, Any]],
    grace: float = DEFAULT_GRACE_SECONDS,
    pool: workers.ProcessPool | None = None,
) -> None:
    """Serve ``runner`` on ``address`` (insecure when ``creds`` is None) until a signal.

    With ``pool``, its worker processes answer (``workers.ProcessPool.choose``).
    """
    stop = asyncio.Event()  # handled before the port opens: no KeyboardInterrupt
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = grpc.aio.server(options=options)

    async def answer(
        decoded: tuple[fnv1.RunFunctionRequest | None, int] | bytes,
        ctx: grpc.aio.ServicerContext,
    ) -> fnv1.RunFunctionResponse | bytes:
        if isinstance(decoded, bytes):  # with worker processes (_received)
            return await shared(decoded, ctx)
        req, size = decoded
        if req is None:
            return runner.undecodable()
        return await runner.RunFunctionBytes(req, ctx, size=size)

    async def shared(
        data: bytes, ctx: grpc.aio.ServicerContext
    ) -> fnv1.RunFunctionResponse | bytes:
        """A request for the workers (``workers.ProcessPool.choose``), or planned here."""
        if pool is None:  # pragma: no cover  # _received is used with a pool only
            raise TypeError(type(data))
        if len(data) > fn.LARGE_REQUEST_BYTES:  # the worker's cache answers or keeps it
            worker = pool.choose(data, large=True)
            answered, _ = await elsewhere(pool, data, worker if worker is not None else 0, ctx)
            return answered
        req, size, key = None, len(data), b""
        if runner.cache.size > 0:  # small: this process keeps the cached answer
            req, size = _decoder(data)
            if req is None:
                return runner.undecodable()
            found, key = runner.cached(req)
            if found is not None:
                return found
        worker = pool.choose(data, large=False)
        if worker is None:  # no worker idle: plan here, never behind a large claim
            if req is None:
                req, size = _decoder(data)
                if req is None:
                    return runner.undecodable()
            return await runner.RunFunctionBytes(req, ctx, size=size, missed=key)
        answered, cacheable = await elsewhere(pool, data, worker, ctx, cache=False)
        runner.remember(key, answered, cacheable=cacheable)
        return answered

    async def elsewhere(
        pool: workers.ProcessPool,
        data: bytes,
        worker: int,
        ctx: grpc.aio.ServicerContext,
        *,
        cache: bool = True,
    ) -> tuple[bytes, bool]:
        try:
            return await runner.RunFunctionElsewhere(pool.answer(data, worker, cache=cache), ctx)
        except workers.WorkerLostError:
            await ctx.abort(grpc.StatusCode.UNAVAILABLE, WORKER_LOST)  # raises
            raise

    # v1beta1 messages are wire-identical to v1's (the SDK's adapter converts them by
    # serialising and parsing again), so one handler answers both services.
    method = grpc.unary_unary_rpc_method_handler(
        answer,
        request_deserializer=_decoder if pool is None else _received,
        response_serializer=_deterministic,
    )
    for version in ("v1", "v1beta1"):
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE.format(version), {"RunFunction": method}
                ),
            )
        )
    reflection.enable_server_reflection(runtime.SERVICE_NAMES, server)
    if creds is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, creds)
    await server.start()
    try:
        await stop.wait()
    finally:
        before, cut = runner.answered, runner.cancelled
        runner.log.info("shutting down", grace_seconds=grace, in_flight=runner.in_flight)
        # Refuse new calls; let those in flight finish for ``grace`` seconds, then
        # answer what is left UNAVAILABLE ourselves: gRPC's own cut-off cancels the
        # calls' coroutines and prints a bare traceback for each.
        stopping = asyncio.ensure_future(server.stop(grace + CUT_OFF_SECONDS))
        if not await runner.drain(grace):
            runner.give_up()
        await stopping
        runner.log.info(
            "stopped",
            answered=runner.answered - before,
            cancelled=runner.cancelled - cut,
            unfinished=runner.in_flight,
            answered_in_all=runner.answered,
        )
        runner.shutdown()
        if pool is not None:
            pool.shutdown()


def run(  # the SDK's standard options
    runner: fn.FunctionRunner,
    *,
    address: str,
    tls_certs_dir: str | None,
    insecure: bool,
    max_recv_message_size: int,
    max_send_message_size: int | None,
    grace: float = DEFAULT_GRACE_SECONDS,
    processes: int = 0,
    debug: bool = False,
) -> None:
    """The SDK's ``cli.run``, serving through :func:`serve`.

    Unlike the SDK, the send limit does not follow the receive limit: it is
    Crossplane's receive limit unless given. With ``processes``, that many worker
    processes answer (``function.workers``), each with a runner like ``runner``.
    """
    send = (max_send_message_size or CROSSPLANE_MAX_RECV_MIB) * 1024 * 1024
    options = [
        ("grpc.max_receive_message_length", max_recv_message_size * 1024 * 1024),
        ("grpc.max_send_message_length", send),
    ]
    if not insecure and tls_certs_dir is None:
        msg = "no credentials were provided - did you provide credentials or use the insecure flag?"
        raise ValueError(msg)
    creds = None if insecure else runtime.load_credentials(str(tls_certs_dir))
    runner.limit_responses(send)
    # Planning threads hold the GIL; a shorter switch interval (default 5 ms) lets
    # the event loop receive and answer other calls while a large claim plans.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    pool = None
    if processes > 0:
        settings = workers.WorkerSettings(
            cache_size=runner.cache.size,
            cache_bytes=runner.cache.max_bytes,
            max_response_bytes=runner.max_response_bytes,
            debug=debug,
        )
        pool = workers.ProcessPool(processes, settings)
    asyncio.run(serve(runner, address, creds=creds, options=options, grace=grace, pool=pool))
