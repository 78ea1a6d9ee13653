"""Planning in worker processes: one interpreter per core.

A ``FunctionRunner`` plans on threads of its own process, and they share one
interpreter lock: on a machine with several cores, concurrent uncached answers
queue for it, however many cores the pod has. With ``--processes N`` the server
hands requests, as received, to N worker processes instead. Each worker is a
``FunctionRunner`` of its own: it parses the request, answers from its response
cache or plans, and returns the serialised answer, which the server sends as it
is.

Which worker (``ProcessPool.choose``): the XR's own, picked by its uid read off
the wire (``composite_identity``), so the calls for one XR find their cached
answer and memos in one process; when that worker is busy, an idle one; when
none is idle, a large request queues for the least busy worker and a small one
plans on the server's threads, so a small claim never waits behind large ones.
The server keeps the cached answers of small requests itself (looking one up
costs less than handing the request over), the workers those of large ones
(computing the key costs a large request's parse and serialisation).

The response cache's budget is split between the server and the workers
(``split_cache``); every other memo is per process and bounded as documented
beside it, so memory grows with N. Workers ignore SIGINT and SIGTERM: the server
stops taking calls, lets those in flight finish, then stops the workers. A
worker that dies (killed for memory) costs the calls it held an ``UNAVAILABLE``
answer, which Crossplane retries; the server starts a new one in its place.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
import zlib
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


def _answer(data: bytes, *, cache: bool) -> tuple[bytes, bool]:
    """The serialised answer to the request ``data``, in a worker (``_start`` ran).

    With ``cache`` the worker's response cache answers or keeps it; else the
    server keeps it, and the flag says whether it may.
    """
    runner = _RUNNER["runner"]  # the pool runs _start first
    try:
        req = fnv1.RunFunctionRequest.FromString(data)
    except DecodeError:
        return bytes(runner.undecodable().SerializeToString(deterministic=True)), True
    if cache:
        return runner.run_bytes(req), False
    return runner.answer_bytes(req)


def _pid() -> int:
    return os.getpid()


# Field numbers (run_function.proto v1, google/protobuf/struct.proto).
_REQUEST_OBSERVED = 2
_STATE_COMPOSITE = 1
_RESOURCE_STRUCT = 1
_STRUCT_FIELDS = 1
_ENTRY_KEY = 1
_ENTRY_VALUE = 2
_VALUE_STRING = 3
_VALUE_STRUCT = 5
_LENGTH_DELIMITED = 2


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError(shift)


def _field(data: bytes, start: int, end: int, number: int) -> tuple[int, int] | None:
    """Where the first length-delimited field ``number`` of the message ``data[start:end]`` is."""
    pos = start
    while pos < end:
        tag, pos = _varint(data, pos)
        wire_type = tag & 7
        if wire_type == 0:
            _, pos = _varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == _LENGTH_DELIMITED:
            length, pos = _varint(data, pos)
            if tag >> 3 == number:
                return pos, pos + length
            pos += length
        else:
            raise ValueError(wire_type)
    return None


def _struct_value(data: bytes, span: tuple[int, int], key: bytes) -> tuple[int, int] | None:
    """The Value at ``key`` in the Struct at ``span``."""
    pos, end = span
    while pos < end:
        tag, pos = _varint(data, pos)
        if tag & 7 != _LENGTH_DELIMITED:
            raise ValueError(tag)
        length, pos = _varint(data, pos)
        entry = (pos, pos + length)
        pos += length
        if tag >> 3 != _STRUCT_FIELDS:
            continue
        name = _field(data, *entry, _ENTRY_KEY)
        if name is not None and data[name[0] : name[1]] == key:
            return _field(data, *entry, _ENTRY_VALUE)
    return None


def composite_identity(data: bytes) -> bytes:
    """The observed XR's ``metadata.uid`` (else its name), read off the request's wire bytes.

    Only the few fields on the way are read, not the request; b"" when it has
    neither or cannot be read (that request goes to the first worker).
    """
    try:
        span = _field(data, 0, len(data), _REQUEST_OBSERVED)
        for number in (_STATE_COMPOSITE, _RESOURCE_STRUCT):
            span = _field(data, *span, number) if span else None
        meta = _struct_value(data, span, b"metadata") if span else None
        meta = _field(data, *meta, _VALUE_STRUCT) if meta else None
        for key in (b"uid", b"name"):
            found = _struct_value(data, meta, key) if meta else None
            text = _field(data, *found, _VALUE_STRING) if found else None
            if text:
                return data[text[0] : text[1]]
    except (IndexError, ValueError):
        pass
    return b""


class ProcessPool:
    """N worker processes answering serialised requests (see the module's docstring)."""

    def __init__(self, processes: int, settings: WorkerSettings) -> None:
        """Start ``processes`` workers, each made with ``settings``."""
        self.processes = processes
        self.settings = settings
        self.restarts = 0
        self.log = logs.get_logger()
        self.busy = [0] * processes  # calls each worker holds (counted on the event loop)
        self._pools = [self._spawn() for _ in range(processes)]

    def _spawn(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server's gRPC threads must not be copied into a child.
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self.settings,),
        )
        # Start the worker now (a pool starts it with the first call), so the
        # first calls do not wait for an interpreter to start.
        warm: Future[int] = pool.submit(_pid)
        del warm
        return pool

    def choose(self, data: bytes, *, large: bool) -> int | None:
        """The worker for the request ``data``; None: plan it on the server's threads.

        Its XR's own worker when that is idle, else an idle one; with none idle,
        the least busy for a large request, and None for a small one.
        """
        home = zlib.crc32(composite_identity(data)) % self.processes
        if self.busy[home] == 0:
            return home
        idle = [i for i, n in enumerate(self.busy) if n == 0]
        if idle:
            return idle[0]
        if not large:
            return None
        return min(range(self.processes), key=lambda i: (self.busy[i], i != home))

    async def answer(self, data: bytes, worker: int, *, cache: bool = True) -> tuple[bytes, bool]:
        """The answer to ``data`` from ``worker`` and whether the server may keep it.

        With ``cache`` the worker's own response cache is used (and the server
        keeps nothing). WorkerLostError when the worker died meanwhile.
        """
        pool = self._pools[worker]
        self.busy[worker] += 1
        job = functools.partial(_answer, data, cache=cache)
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, job)
        except BrokenProcessPool:
            if pool is self._pools[worker]:
                self.restarts += 1
                self.log.error(
                    "a worker process died; starting a new one", restarts=self.restarts
                )
                pool.shutdown(wait=False, cancel_futures=True)
                self._pools[worker] = self._spawn()
            raise WorkerLostError from None
        finally:
            self.busy[worker] -= 1

    def shutdown(self, *, wait: bool = False) -> None:
        """Stop the workers once their current call is done; queued calls are dropped."""
        for pool in self._pools:
            pool.shutdown(wait=wait, cancel_futures=True)
