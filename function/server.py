"""Serve the runner over gRPC with byte-stable responses.

The SDK's ``runtime.serve`` registers servicers with protobuf's default
serializer, whose map order (every ``Struct`` is a map) changes from process to
process. Crossplane compares desired state semantically, but we promise the
same bytes for the same request, so this module registers the same two
services (v1, and v1beta1 through the SDK's adapter) with deterministic
serialization. Credentials, options and signal handling follow the SDK.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from crossplane.function import logging, runtime
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from crossplane.function.proto.v1beta1 import run_function_pb2 as fnv1beta1
from grpc_reflection.v1alpha import reflection

SERVICES = {
    "apiextensions.fn.proto.v1.FunctionRunnerService": fnv1,
    "apiextensions.fn.proto.v1beta1.FunctionRunnerService": fnv1beta1,
}


def _deterministic(message: Any) -> bytes:  # any protobuf message
    return bytes(message.SerializeToString(deterministic=True))


def _register(
    server: grpc.aio.Server, service: str, module: Any, handler: Callable[..., Any]
) -> None:
    methods = {
        "RunFunction": grpc.unary_unary_rpc_method_handler(
            handler,
            request_deserializer=module.RunFunctionRequest.FromString,
            response_serializer=_deterministic,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, methods),))


def serve(
    runner: grpcv1.FunctionRunnerServiceServicer,
    address: str,
    *,
    creds: grpc.ServerCredentials | None,
    insecure: bool,
    options: Sequence[tuple[str, Any]],
) -> None:
    """Serve ``runner`` until SIGTERM; like the SDK's serve, with stable bytes."""
    if creds is None and not insecure:
        msg = "no credentials were provided - did you provide credentials or use the insecure flag?"
        raise ValueError(msg)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = grpc.aio.server(options=options)
    beta = runtime.BetaFunctionRunner(wrapped=runner)
    handlers = {fnv1: runner.RunFunction, fnv1beta1: beta.RunFunction}
    for name, module in SERVICES.items():
        _register(server, name, module, handlers[module])
    reflection.enable_server_reflection((*SERVICES, reflection.SERVICE_NAME), server)
    if creds is not None and not insecure:
        server.add_secure_port(address, creds)
    else:
        server.add_insecure_port(address)
    loop.add_signal_handler(
        signal.SIGTERM,
        lambda: asyncio.ensure_future(server.stop(grace=runtime.SHUTDOWN_GRACE_PERIOD_SECONDS)),
    )

    async def start() -> None:
        await server.start()
        await server.wait_for_termination()

    try:
        loop.run_until_complete(start())
    finally:
        loop.run_until_complete(server.stop(grace=runtime.SHUTDOWN_GRACE_PERIOD_SECONDS))
        loop.close()


def run(  # the SDK's standard options
    runner: grpcv1.FunctionRunnerServiceServicer,
    *,
    debug: bool,
    address: str,
    tls_certs_dir: str | None,
    insecure: bool,
    max_recv_message_size: int,
    max_send_message_size: int | None,
) -> None:
    """The SDK's ``cli.run``, serving through :func:`serve`."""
    logging.configure(level=logging.Level.DEBUG if debug else logging.Level.INFO)
    send = max_send_message_size or max_recv_message_size
    options = [
        ("grpc.max_receive_message_length", max_recv_message_size * 1024 * 1024),
        ("grpc.max_send_message_length", send * 1024 * 1024),
    ]
    creds = None if insecure or tls_certs_dir is None else runtime.load_credentials(tls_certs_dir)
    serve(runner, address, creds=creds, insecure=insecure, options=options)
