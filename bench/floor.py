"""The floor: a gRPC server that answers every RunFunction with one precomputed response.

It measures what protobuf and gRPC cost alone, with a response of the same size
as the function's.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1


class Echo(grpcv1.FunctionRunnerServiceServicer):
    def __init__(self, payload: bytes) -> None:
        self.rsp = fnv1.RunFunctionResponse.FromString(payload)

    async def RunFunction(self, req, context):  # noqa: N802
        return self.rsp


async def serve(address: str, payload: bytes) -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 4 << 20),
            ("grpc.max_send_message_length", 4 << 20),
        ]
    )
    grpcv1.add_FunctionRunnerServiceServicer_to_server(Echo(payload), server)
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    with open(sys.argv[2], "rb") as f:
        asyncio.run(serve(sys.argv[1], f.read()))
