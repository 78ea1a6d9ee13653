"""The real server process: undecodable requests, SIGTERM and SIGINT with calls in flight."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from typing import Any

import grpc
import psutil
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from function import fn
from scripts.render import request
from scripts.stage import walk
from tests.toolchain import ROOT, free_port, wait_for_port
from tests.unit.test_hardening import final

# Crossplane's client limits: grpc-go's defaults (it receives 4 MiB, sends any size),
# the same as gRPC Python's.
OPTIONS: list[tuple[str, int]] = []
MIB = 1 << 20


def start(*extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "function.main", "--insecure", "--address", f"127.0.0.1:{port}", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_port(port, timeout=30)
    return proc, port


async def call(port: int, req: fnv1.RunFunctionRequest) -> tuple[Any, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS) as channel:
        stub = grpcv1.FunctionRunnerServiceStub(channel)
        try:
            rsp = await stub.RunFunction(req, timeout=60)
        except grpc.RpcError as exc:
            return exc.code(), time.monotonic()
        return rsp, time.monotonic()


def nested(levels: int) -> Any:
    node: Any = "x"
    for _ in range(levels):
        node = {"a": node}
    return node


def test_too_deeply_nested_request_is_a_fatal_not_unknown() -> None:
    proc, port = start()
    try:
        xr, _ = final("existing")
        ok = request(xr)
        ok.observed.composite.resource["spec"]["deep"] = nested(28)
        rsp, _ = asyncio.run(call(port, ok))
        assert isinstance(rsp, fnv1.RunFunctionResponse)
        deep = request(xr)
        deep.observed.composite.resource["spec"]["deep"] = nested(40)
        rsp, _ = asyncio.run(call(port, deep))
        assert isinstance(rsp, fnv1.RunFunctionResponse), rsp
        assert [r.message for r in rsp.results] == [fn.UNDECODABLE]
        assert rsp.results[0].severity == fnv1.SEVERITY_FATAL
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def answer_once(req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    """``req`` answered by a server started with the defaults (fails on a gRPC error)."""
    proc, port = start()
    try:
        rsp, _ = asyncio.run(call(port, req))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert isinstance(rsp, fnv1.RunFunctionResponse), rsp
    return rsp


def test_a_request_larger_than_crossplanes_answer_limit_is_answered() -> None:
    """Crossplane sends requests of any size; its observed state outgrows the answer.

    The largest claim's steady-state request was 5.5 MB against a 3.8 MB answer,
    and the server refused it (RESOURCE_EXHAUSTED) while receiving at most 4 MiB.
    """
    xr, observed = final("existing")
    req = request(xr, observed)
    key = sorted(req.observed.resources)[0]
    padded = req.observed.resources[key].resource
    padded["metadata"]["annotations"] = {"example.com/padding": "x" * (5 * MIB)}
    assert req.ByteSize() > 5 * MIB
    rsp = answer_once(req)
    assert not [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert key in rsp.desired.resources


def test_an_answer_too_large_for_crossplane_is_a_fatal_it_can_receive() -> None:
    """The send limit is Crossplane's 4 MiB receive limit, not the (larger) receive limit.

    Earlier pipeline steps' desired state (passed through) makes the answer 5 MiB.
    """
    xr, observed = final("existing")
    req = request(xr, observed)
    req.desired.composite.resource.update({"status": {"padding": "x" * (5 * MIB)}})
    rsp = answer_once(req)
    [fatal] = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert f"more than the {4 * MIB}-byte message limit" in fatal
    assert "reduce the desired state or context earlier pipeline steps pass on" in fatal
    assert rsp.ByteSize() <= 4 * MIB


def test_the_largest_claim_the_xrd_admits_gets_an_answer_crossplane_can_receive() -> None:
    """16 clusters x 32 models at steady state: composed, and within Crossplane's 4 MiB."""
    from bench.bench import largest_xr

    xr = largest_xr()
    runner = fn.FunctionRunner(cache_size=0)
    answer = runner.run_bytes(request(xr, walk(xr)[-1]))
    rsp = fnv1.RunFunctionResponse.FromString(answer)
    assert not [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(rsp.desired.resources) > 3000
    assert len(answer) <= 4 * MIB


@pytest.fixture(scope="module")
def large() -> fnv1.RunFunctionRequest:
    from bench.bench import large_xr

    xr = large_xr()
    return request(xr, walk(xr)[-1])


# The server planning on its own threads, and with large claims in worker processes.
MODES = {"threads": (), "processes": ("--processes", "2")}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_calls_in_flight_finish_after_a_signal(sig: signal.Signals, mode: str, large: Any) -> None:
    proc, port = start("--cache-size", "0", *MODES[mode])

    async def go() -> tuple[list[tuple[Any, float]], float]:
        # Calls keep arriving (one every 20 ms, each takes ~75 ms to plan) until the
        # signal is sent, which happens once the server has answered one: so the
        # server is answering calls when the signal comes, on a fast or a slow machine.
        calls: list[asyncio.Future[tuple[Any, float]]] = []
        for i in range(400):
            req = fnv1.RunFunctionRequest()
            req.CopyFrom(large)
            req.meta.tag = f"in-flight-{i}"
            calls.append(asyncio.ensure_future(call(port, req)))
            await asyncio.sleep(0.02)
            if i >= 4 and any(c.done() for c in calls):
                break
        sent = time.monotonic()
        proc.send_signal(sig)
        return await asyncio.gather(*calls), sent

    results, sent = asyncio.run(go())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert b"Aborted" not in err
    lines = {e["msg"]: e for e in map(json.loads, out.decode().splitlines())}
    in_flight = lines["shutting down"]["in_flight"]
    assert in_flight >= 1  # the server was answering calls when the signal came
    assert lines["stopped"]["unfinished"] == 0
    assert lines["stopped"]["cancelled"] == 0  # the grace was enough
    assert lines["stopped"]["answered"] >= in_flight
    assert b"Traceback" not in err
    answered = [r for r, done in results if isinstance(r, fnv1.RunFunctionResponse)]
    # the server's count is what the clients saw
    assert lines["stopped"]["answered_in_all"] == len(answered)
    assert all(not r.results for r in answered)
    assert len([1 for r, done in results if done > sent and r in answered]) >= in_flight
    # Calls that had not reached the server yet are refused, never left hanging.
    refused = [r for r, _ in results if not isinstance(r, fnv1.RunFunctionResponse)]
    assert set(refused) <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_idle_server_exits_cleanly_on_a_signal(sig: signal.Signals, mode: str) -> None:
    proc, _ = start(*MODES[mode])  # the signal comes as soon as the port accepts connections
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Aborted" not in err
    assert b"Traceback" not in err


def test_v1beta1_gets_the_same_bytes_as_v1() -> None:
    from crossplane.function.proto.v1beta1 import run_function_pb2 as fnv1beta1
    from crossplane.function.proto.v1beta1 import run_function_pb2_grpc as grpcv1beta1

    xr, observed = final("existing")
    req = request(xr, observed)
    beta_req = fnv1beta1.RunFunctionRequest.FromString(req.SerializeToString())
    proc, port = start()

    async def go() -> tuple[bytes, bytes, Any]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS) as channel:
            v1 = await grpcv1.FunctionRunnerServiceStub(channel).RunFunction(req)
            beta = grpcv1beta1.FunctionRunnerServiceStub(channel)
            got = await beta.RunFunction(beta_req)
            deep = fnv1beta1.RunFunctionRequest()
            deep.observed.composite.resource.update({"spec": nested(40)})
            undecodable = await beta.RunFunction(deep)
        return (
            v1.SerializeToString(deterministic=True),
            got.SerializeToString(deterministic=True),
            undecodable,
        )

    try:
        v1_bytes, beta_bytes, undecodable = asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert v1_bytes == beta_bytes
    assert len(fnv1.RunFunctionResponse.FromString(v1_bytes).desired.resources) > 5
    assert [r.message for r in undecodable.results] == [fn.UNDECODABLE]


def test_the_benchmark_claims_are_valid_and_compose_what_they_claim() -> None:
    """A refused claim would make the benchmark time error paths and report nothing."""
    from bench.bench import large_xr, largest_xr
    from function.models.input import FunctionInput
    from function.validation import parse_platform

    for xr in (large_xr(), largest_xr()):
        parse_platform(xr["spec"], FunctionInput())
    largest = largest_xr()
    assert (len(largest["spec"]["clusters"]), len(largest["spec"]["models"])) == (16, 32)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_grace_that_runs_out_cuts_calls_off_in_json_and_counts_them(
    mode: str, large: Any
) -> None:
    """Before the fix the cut-off plans printed bare tracebacks and went uncounted."""
    proc, port = start("--cache-size", "0", "--shutdown-grace", "0.05", *MODES[mode])

    async def go() -> list[tuple[Any, float]]:
        calls = []
        for i in range(40):  # ~75 ms of planning each, two at a time: 1.5 s of work
            req = fnv1.RunFunctionRequest()
            req.CopyFrom(large)
            req.meta.tag = f"cut-{i}"
            calls.append(asyncio.ensure_future(call(port, req)))
        await asyncio.sleep(0.3)  # calls received, the first ones planning
        proc.send_signal(signal.SIGTERM)
        return await asyncio.gather(*calls)

    results = asyncio.run(go())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert b"Traceback" not in err and b"Traceback" not in out
    entries = [json.loads(line) for line in out.decode().splitlines()]  # every line is JSON
    stopped = next(e for e in entries if e["msg"] == "stopped")
    answered = [r for r, _ in results if isinstance(r, fnv1.RunFunctionResponse)]
    assert stopped["cancelled"] >= 1
    assert stopped["answered_in_all"] == len(answered)
    assert stopped["cancelled"] + len(answered) <= len(results)
    # the calls given up on get a clean UNAVAILABLE, which Crossplane retries
    refused = {r for r, _ in results if not isinstance(r, fnv1.RunFunctionResponse)}
    assert grpc.StatusCode.UNAVAILABLE in refused
    assert refused <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}


def _workers(proc: subprocess.Popen[bytes], count: int) -> list[psutil.Process]:
    """The server's planning processes, once all ``count`` have started."""

    def found() -> list[psutil.Process]:
        kids = psutil.Process(proc.pid).children()
        return [k for k in kids if "spawn_main" in " ".join(k.cmdline())]

    deadline = time.monotonic() + 30
    while len(found()) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(found()) == count, found()
    return found()


def test_worker_processes_answer_with_the_same_bytes(large: Any) -> None:
    """With --processes, workers parse and plan, and answer with the bytes the threads give.

    An undecodable request is the same Fatal; the answers come from the workers
    (they used the CPU).
    """
    xr, observed = final("existing")
    small = request(xr, observed)
    deep = fnv1.RunFunctionRequest()
    deep.CopyFrom(large)
    deep.observed.composite.resource["spec"]["deep"] = nested(40)
    assert small.ByteSize() < fn.LARGE_REQUEST_BYTES < large.ByteSize()
    here = fn.FunctionRunner(cache_size=0)
    proc, port = start("--cache-size", "0", "--processes", "2")
    try:
        workers = _workers(proc, 2)
        cpu = sum(sum(w.cpu_times()[:2]) for w in workers)

        async def go() -> list[Any]:
            return [(await call(port, r))[0] for r in (large, small, large, deep)]

        got = asyncio.run(go())
        used = sum(sum(w.cpu_times()[:2]) for w in workers) - cpu
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert all(isinstance(r, fnv1.RunFunctionResponse) for r in got), got
    assert got[0].SerializeToString(deterministic=True) == here.run_bytes(large)
    assert got[2].SerializeToString(deterministic=True) == here.run_bytes(large)
    assert got[1].SerializeToString(deterministic=True) == here.run_bytes(small)
    assert [r.message for r in got[3].results] == [fn.UNDECODABLE]
    assert used > 0.02  # the workers planned


def test_a_worker_that_dies_costs_at_most_its_call_and_is_replaced(large: Any) -> None:
    """A worker killed (as for memory) gives UNAVAILABLE at most; new workers answer after."""
    proc, port = start("--cache-size", "0", "--processes", "1")
    try:
        [worker] = _workers(proc, 1)
        worker.kill()
        worker.wait(timeout=10)

        async def go() -> list[Any]:
            return [(await call(port, large))[0] for _ in range(3)]

        got = asyncio.run(go())
        [replaced] = _workers(proc, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"Traceback" not in err and b"Traceback" not in out
    assert replaced.pid != worker.pid
    refused = [r for r in got if not isinstance(r, fnv1.RunFunctionResponse)]
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE}
    assert len(refused) <= 1
    assert isinstance(got[-1], fnv1.RunFunctionResponse)
    assert not got[-1].results
    died = [json.loads(line) for line in out.decode().splitlines() if "died" in line]
    assert len(died) == len(refused)


def test_the_response_cache_budget_is_split_between_the_processes() -> None:
    """With workers, the server and each worker keep a share: together what the flags allow."""
    from function import workers

    assert workers.split_cache(64, 64 << 20, 2) == (21, (64 << 20) // 3)
    assert workers.split_cache(0, 64 << 20, 2)[0] == 0  # caching off stays off
    assert workers.split_cache(2, 90, 3) == (1, 22)  # at least one entry each when on


def test_with_workers_a_repeated_small_request_is_answered_by_the_server_from_its_cache() -> None:
    """The server keeps small requests' answers itself: planned once (in a worker), then kept.

    A large request's answer is kept by its worker: planned once too.
    """
    xr, observed = final("existing")
    small = request(xr, observed)
    from bench.bench import large_xr

    big = large_xr()
    large = request(big, walk(big)[-1])
    proc, port = start("--processes", "2", "--debug")
    try:
        _workers(proc, 2)

        async def go() -> list[Any]:
            return [(await call(port, r))[0] for r in (small, small, small, large, large)]

        got = asyncio.run(go())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert all(isinstance(r, fnv1.RunFunctionResponse) for r in got), got
    assert got[0] == got[1] == got[2] and got[3] == got[4]
    lines = [json.loads(line) for line in out.decode().splitlines()]
    composed = [e["xr"] for e in lines if e["msg"] == "composed"]
    hits = [e for e in lines if e["msg"] == "answered from cache"]
    assert sorted(composed) == sorted([xr["metadata"]["name"], big["metadata"]["name"]]), composed
    assert len(hits) == 3
