"""Planning large claims in worker processes: one interpreter per core.

A ``FunctionRunner`` plans on threads of its own process, and they share one
interpreter lock: on a machine with several cores, concurrent uncached answers
for large claims queue for it, however many cores the pod has. With
``--processes N`` the server hands each large request (``fn.LARGE_REQUEST_BYTES``
and more, as received) to one of N worker processes instead. Each worker is a
``FunctionRunner`` of its own: it parses the request, answers from its response
cache or plans, and returns the serialised answer, which the server sends as it
is. Small requests plan on the server's own threads as before, so they never
wait for a worker.

The response cache's budget is split between the server and the workers
(``split_cache``); every other memo is per process and bounded as documented
beside it, so memory grows with N. Workers ignore SIGINT and SIGTERM: the server
stops taking calls, lets those in flight finish, then stops the workers. A
worker that dies (killed for memory) costs the calls it held an ``UNAVAILABLE``
answer, which Crossplane retries; the server starts new workers.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf.message import DecodeError

from function import fn, logs

__all__ = ["ProcessPool", "WorkerLostError", "WorkerSettings", "split_cache"]


class WorkerLostError(Exception):
    """A worker process died while it held the call (the answer is UNAVAILABLE)."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What each worker's runner is made with (passed to the new process)."""

    cache_size: int
    cache_bytes: int
    max_response_bytes: int
    debug: bool = False


def split_cache(cache_size: int, cache_bytes: int, processes: int) -> tuple[int, int]:
    """The response cache's entries and bytes per process, the server included.

    The server and each worker keep their own cache; together they hold at most
    what ``--cache-size`` and ``--cache-bytes`` allow (a process keeps at least
    one entry when caching is on).
    """
    shares = processes + 1
    size = 0 if cache_size == 0 else max(1, cache_size // shares)
    return size, cache_bytes // shares


# The worker's runner, set up once per worker process by ``_start``.
_RUNNER: dict[str, fn.FunctionRunner] = {}


def _start(settings: WorkerSettings) -> None:
    """A worker's set-up: ignore stop signals (the server stops it), build its runner."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.configure(debug=settings.debug)
    _RUNNER["runner"] = fn.FunctionRunner(
        settings.cache_size,
        cache_bytes=settings.cache_bytes,
        max_response_bytes=settings.max_response_bytes,
        workers=1,
    )


def _answer(data: bytes) -> bytes:
    """The serialised answer to the request ``data``, in a worker (``_start`` ran)."""
    runner = _RUNNER["runner"]  # the pool runs _start first
    try:
        req = fnv1.RunFunctionRequest.FromString(data)
    except DecodeError:
        return bytes(runner.undecodable().SerializeToString(deterministic=True))
    return runner.run_bytes(req)


def _pid() -> int:
    return os.getpid()


class ProcessPool:
    """N worker processes answering serialised requests (see the module's docstring)."""

    def __init__(self, processes: int, settings: WorkerSettings) -> None:
        """Start ``processes`` workers, each made with ``settings``."""
        self.processes = processes
        self.settings = settings
        self.restarts = 0
        self.log = logs.get_logger()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server's gRPC threads must not be copied into a child.
        pool = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self.settings,),
        )
        # Start every worker now (the pool starts them as calls find none idle),
        # so the first large calls do not wait for interpreters to start.
        warm: list[Future[int]] = [pool.submit(_pid) for _ in range(self.processes)]
        del warm
        return pool

    async def answer(self, data: bytes) -> bytes:
        """The answer to ``data`` from a worker; WorkerLostError when the worker died meanwhile."""
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _answer, data)
        except BrokenProcessPool:
            if pool is self._pool:
                self.restarts += 1
                self.log.error("a worker process died; starting new ones", restarts=self.restarts)
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()
            raise WorkerLostError from None

    def pids(self) -> list[int]:
        """The workers' process ids (for the benchmark's memory figures and tests)."""
        return sorted(p.pid for p in getattr(self._pool, "_processes", {}).values() if p.pid)

    def shutdown(self, *, wait: bool = False) -> None:
        """Stop the workers once their current call is done; queued calls are dropped."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
