"""Worker processes: which worker answers (``function.workers``), read off the wire."""

from __future__ import annotations

import random

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import workers
from scripts.render import request
from tests.unit.test_hardening import final

CASES = ["existing", "multicloud", "fleet", "onprem"]


@pytest.mark.parametrize("case", CASES)
def test_the_composite_identity_is_the_xr_uid_read_off_the_wire(case: str) -> None:
    xr, observed = final(case)
    xr = {**xr, "metadata": {**xr["metadata"], "uid": f"uid-of-{case}"}}
    req = request(xr, observed)
    assert workers.composite_identity(req.SerializeToString()) == f"uid-of-{case}".encode()
    # Go's protobuf writes map entries in any order: the reader does not depend on it.
    assert workers.composite_identity(req.SerializeToString(deterministic=True)) == (
        f"uid-of-{case}".encode()
    )


def test_without_a_uid_the_name_identifies_the_xr_and_without_both_nothing() -> None:
    xr, observed = final("existing")
    meta = {k: v for k, v in xr["metadata"].items() if k != "uid"}
    req = request({**xr, "metadata": meta}, observed)
    assert workers.composite_identity(req.SerializeToString()) == meta["name"].encode()
    req.observed.composite.resource["metadata"].Clear()
    assert workers.composite_identity(req.SerializeToString()) == b""
    assert workers.composite_identity(b"") == b""


def test_garbage_never_raises() -> None:
    xr, observed = final("existing")
    data = request(xr, observed).SerializeToString()
    rng = random.Random(7)  # noqa: S311  # reproducible garbage, not secrets
    for _ in range(2000):
        cut = data[: rng.randrange(len(data))]
        flipped = bytearray(data)
        for _ in range(5):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        for garbage in (cut, bytes(flipped), rng.randbytes(rng.randrange(64))):
            assert isinstance(workers.composite_identity(garbage), bytes)


def _pool(busy: list[int]) -> workers.ProcessPool:
    pool = object.__new__(workers.ProcessPool)  # the choice alone, no processes
    pool.processes = len(busy)
    pool.busy = busy
    return pool


def _req(uid: str) -> bytes:
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.update({"metadata": {"uid": uid}})
    return req.SerializeToString()


def test_an_xr_goes_to_its_own_worker_while_it_is_idle() -> None:
    homes = {uid: _pool([0, 0, 0]).choose(_req(uid), large=True) for uid in map(str, range(60))}
    assert set(homes.values()) == {0, 1, 2}  # XRs spread over the workers
    for uid, home in homes.items():
        assert _pool([0, 0, 0]).choose(_req(uid), large=False) == home  # same for any size
        busy_elsewhere = [0 if i == home else 3 for i in range(3)]
        assert _pool(busy_elsewhere).choose(_req(uid), large=True) == home


def test_a_busy_worker_hands_over_to_an_idle_one_and_small_requests_never_queue() -> None:
    uid = next(u for u in map(str, range(100)) if _pool([0, 0]).choose(_req(u), large=True) == 0)
    assert _pool([1, 0]).choose(_req(uid), large=True) == 1  # idle one
    assert _pool([1, 0]).choose(_req(uid), large=False) == 1
    assert _pool([1, 1]).choose(_req(uid), large=False) is None  # plans on the server's threads
    assert _pool([1, 1]).choose(_req(uid), large=True) == 0  # its own, at equal load
    assert _pool([3, 1]).choose(_req(uid), large=True) == 1  # else the least busy
