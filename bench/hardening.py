"""Hardening figures: RSS under cache churn, responsiveness, shutdown.

    python bench/hardening.py            (also run at the end of `make bench`)

- cache churn: distinct requests for the largest claim the XRD admits (every
  response about 1.6 MB, none repeated; each XR its own uid, so its 16 clusters'
  stacks are new to the stack memo too) against a server whose response cache
  is limited to CHURN_CACHE_MIB; RSS is sampled after each request and must
  level off instead of growing with the number of distinct responses;
- responsiveness: a small request's latency alone, and sent while the largest
  claim is being planned (planning runs in a thread pool);
- shutdown: seconds from SIGTERM / SIGINT to exit for an idle server; and with
  calls in flight, how many complete and how long the exit takes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.render import request  # noqa: E402
from scripts.stage import walk  # noqa: E402
from tests.toolchain import free_port, tree_rss, wait_for_port  # noqa: E402

CHURN_CACHE_MIB = 16
CHURN_REQUESTS = 40
IN_FLIGHT = 10
# The client is Crossplane's twin: grpc-go's defaults, which receive at most 4 MiB
# and send requests of any size (gRPC Python's client defaults are the same).
OPTIONS: list[tuple[str, int]] = []


def _server(*extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "function.main",
            "--insecure",
            "--address",
            f"127.0.0.1:{port}",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_port(port, timeout=30)
    return proc, port


def _tagged(req: fnv1.RunFunctionRequest, tag: str, uid: str = "") -> fnv1.RunFunctionRequest:
    out = fnv1.RunFunctionRequest()
    out.CopyFrom(req)
    out.meta.tag = tag
    if uid:
        metadata = out.observed.composite.resource.fields["metadata"].struct_value
        metadata.fields["uid"].string_value = uid
    return out


class CallFailedError(RuntimeError):
    """A call the benchmark needs answered failed; the message says how."""


async def _answer(
    port: int, req: fnv1.RunFunctionRequest, deadline: float = 120
) -> tuple[fnv1.RunFunctionResponse | grpc.aio.AioRpcError, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS) as channel:
        stub = grpcv1.FunctionRunnerServiceStub(channel)
        t = time.perf_counter()
        try:
            rsp = await stub.RunFunction(req, timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            return exc, time.perf_counter() - t
        return rsp, time.perf_counter() - t


async def _call(
    port: int, req: fnv1.RunFunctionRequest, deadline: float = 120
) -> tuple[bool, float, int]:
    rsp, seconds = await _answer(port, req, deadline)
    if isinstance(rsp, grpc.aio.AioRpcError):
        return False, seconds, 0
    return True, seconds, rsp.ByteSize()


def failure(what: str, req: fnv1.RunFunctionRequest, rsp: Any) -> str:
    """Why a call the benchmark needs answered was not: the gRPC status, or a Fatal result."""
    if isinstance(rsp, grpc.aio.AioRpcError):
        why = f"{rsp.code().name}: {rsp.details()}"
    else:
        why = "; ".join(r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL)
    return f"{what} failed (request {req.ByteSize()} bytes): {why}"


def churn(largest: fnv1.RunFunctionRequest, *extra: str) -> dict[str, Any]:
    proc, port = _server("--cache-bytes", str(CHURN_CACHE_MIB << 20), *extra)
    try:
        time.sleep(1.0)  # worker processes, if any, have started
        rss0 = tree_rss(proc.pid)
        samples = []
        size = 0

        async def go() -> None:
            nonlocal size
            for i in range(CHURN_REQUESTS):
                req = _tagged(largest, f"churn-{i}", f"churn-{i}")
                rsp, _ = await _answer(port, req)
                if isinstance(rsp, grpc.aio.AioRpcError) or any(
                    r.severity == fnv1.SEVERITY_FATAL for r in rsp.results
                ):
                    raise CallFailedError(failure(f"churn request {i}", req, rsp))
                size = rsp.ByteSize()
                samples.append(tree_rss(proc.pid))

        asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    half = CHURN_REQUESTS // 2
    return {
        "bytes": size,
        "rss0": rss0,
        "rss_half": samples[half - 1],
        "rss_end": samples[-1],
        "peak": max(samples),
        "unbounded": size * CHURN_REQUESTS,
    }


def responsiveness(
    small: fnv1.RunFunctionRequest, largest: fnv1.RunFunctionRequest, *extra: str
) -> dict[str, float]:
    proc, port = _server("--cache-size", "0", *extra)
    try:

        async def go() -> dict[str, float]:
            await _call(port, small)
            alone = min([(await _call(port, small))[1] for _ in range(5)])
            big = asyncio.ensure_future(_call(port, largest))
            await asyncio.sleep(0.2)  # the large plan is under way
            behind = (await _call(port, small))[1]
            _, big_s, _ = await big
            return {"alone": alone, "behind": behind, "largest": big_s}

        return asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def idle_exit(sig: signal.Signals) -> tuple[float, int, bool]:
    proc, _ = _server()
    time.sleep(0.5)
    t = time.perf_counter()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    return time.perf_counter() - t, proc.returncode, b"Aborted" in err


def in_flight_exit(sig: signal.Signals, largest: fnv1.RunFunctionRequest) -> dict[str, Any]:
    proc, port = _server("--cache-size", "0")

    async def go() -> tuple[list[tuple[bool, float, int]], float]:
        calls = [
            asyncio.ensure_future(_call(port, _tagged(largest, f"f-{i}"))) for i in range(IN_FLIGHT)
        ]
        await asyncio.sleep(1.0)  # calls received (1.9 MB each), the first ones planning
        t = time.perf_counter()
        proc.send_signal(sig)
        results = await asyncio.gather(*calls)
        await asyncio.to_thread(proc.wait, 60)
        return results, time.perf_counter() - t

    results, exit_s = asyncio.run(go())
    out, err = proc.communicate(timeout=30)
    log = {e["msg"]: e for e in map(json.loads, out.decode().splitlines())}
    return {
        "server_in_flight": log["shutting down"]["in_flight"],
        "server_answered": log["stopped"]["answered"],
        "server_cancelled": log["stopped"]["cancelled"],
        "server_unfinished": log["stopped"]["unfinished"],
        "completed": sum(ok for ok, _, _ in results),
        "exit_s": exit_s,
        "code": proc.returncode,
        "aborted": b"Aborted" in err,
    }


def report(
    small: fnv1.RunFunctionRequest, largest: fnv1.RunFunctionRequest, processes: int = 2
) -> None:
    """Churn and responsiveness on threads and with ``--processes``; shutdown on threads."""
    mib = 2**20
    modes = [("threads", ())]
    if processes:
        modes.append((f"--processes {processes}", ("--processes", str(processes))))
    for mode, extra in modes:
        c = churn(largest, *extra)
        print(
            f"cache churn ({mode}): {CHURN_REQUESTS} distinct largest-claim requests "
            f"({c['bytes']} bytes each, {c['unbounded'] / mib:.0f} MiB if all were kept), "
            f"cache limit {CHURN_CACHE_MIB} MiB: RSS of all processes {c['rss0'] / mib:.0f} MiB "
            f"before, {c['rss_half'] / mib:.0f} MiB after {CHURN_REQUESTS // 2}, "
            f"{c['rss_end'] / mib:.0f} MiB after {CHURN_REQUESTS}, peak {c['peak'] / mib:.0f} MiB"
        )
    for mode, extra in modes:
        r = responsiveness(small, largest, *extra)
        print(
            f"responsiveness ({mode}): small request {r['alone'] * 1e3:.1f} ms alone, "
            f"{r['behind'] * 1e3:.1f} ms while the largest claim plans ({r['largest']:.2f} s)"
        )
    for sig in (signal.SIGTERM, signal.SIGINT):
        seconds, code, aborted = idle_exit(sig)
        f = in_flight_exit(sig, largest)
        print(
            f"shutdown {sig.name}: idle exit {seconds:.2f} s (code {code}, Aborted! printed: "
            f"{aborted}); {IN_FLIGHT} largest-claim calls sent: {f['server_in_flight']} in flight "
            f"at the server at the signal, {f['server_answered']} answered after it, "
            f"{f['server_cancelled']} cut off by the grace, {f['server_unfinished']} unfinished; "
            f"the client got {f['completed']}/{IN_FLIGHT} "
            f"answers (calls that had not reached the server are refused); exit after "
            f"{f['exit_s']:.2f} s (code {f['code']}, Aborted! printed: {f['aborted']})"
        )


def main() -> int:
    import bench  # noqa: PLC0415  # bench/bench.py, beside this script; it imports this module

    small = request(bench.small_xr(), walk(bench.small_xr())[-1])
    xr = bench.largest_xr()
    largest = request(xr, walk(xr)[-1])
    report(small, largest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
