"""The end-to-end harness's ``wait_for``: what it waits out and what it fails on at once.

A probe with a typo must fail with its own error, not become a timeout minutes
later; an object not created yet (404) or a conflict (409) is "not yet"; a busy
API server (5xx) is waited out for a short grace only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.kube import ApiError, wait_for

TIMEOUT = 5.0
FAST = {"interval": 0.01}


def answers(*steps: Any) -> Callable[[], Any]:
    """A probe that gives each step in turn (raising it when it is an exception), then the last."""
    it: Iterator[Any] = iter(steps)
    last: list[Any] = [None]

    def probe() -> Any:
        step = next(it, last[0])
        last[0] = step
        if isinstance(step, BaseException):
            raise step
        return step

    return probe


def test_returns_the_first_truthy_value_and_the_time() -> None:
    value, took = wait_for("x", answers(None, {}, 0, {"a": 1}), TIMEOUT, **FAST)
    assert value == {"a": 1}
    assert 0 <= took < TIMEOUT


@pytest.mark.parametrize("status", [404, 409])
def test_not_yet_converged_answers_are_waited_out(status: int) -> None:
    probe = answers(*[ApiError(status, "not yet")] * 5, "done")
    assert wait_for("x", probe, TIMEOUT, **FAST)[0] == "done"


@pytest.mark.parametrize(
    "error",
    [KeyError("statsu"), TypeError("'NoneType' object is not subscriptable"), ApiError(403, "forbidden"),
     ApiError(422, "invalid")],
    ids=["KeyError", "TypeError", "403", "422"],
)
def test_a_probe_error_fails_at_once_with_that_error(error: Exception) -> None:
    start = time.monotonic()
    with pytest.raises(type(error)) as raised:
        wait_for("the typo", answers(None, error), TIMEOUT, **FAST)
    assert raised.value is error
    assert time.monotonic() - start < 1.0  # not a timeout


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_waited_out_for_the_grace_only(status: int) -> None:
    # within the grace: the wait goes on and succeeds
    probe = answers(ApiError(status, "etcd busy"), ApiError(status, "etcd busy"), "ok")
    assert wait_for("x", probe, TIMEOUT, grace=1.0, **FAST)[0] == "ok"
    # past it: the server's error, long before the timeout
    start = time.monotonic()
    with pytest.raises(ApiError) as raised:
        wait_for("x", answers(ApiError(status, "etcd down")), TIMEOUT, grace=0.2, **FAST)
    assert raised.value.status == status
    assert time.monotonic() - start < 1.5
    # a success in between restarts the grace
    flapping = answers(*([ApiError(status, "busy"), None] * 15), "ok")  # 0.6 s in all
    assert wait_for("x", flapping, TIMEOUT, grace=0.2, interval=0.02)[0] == "ok"


def test_a_dropped_connection_is_a_server_error() -> None:
    assert wait_for("x", answers(ConnectionResetError("reset"), "ok"), TIMEOUT, **FAST)[0] == "ok"
    with pytest.raises(ConnectionResetError):
        wait_for("x", answers(ConnectionResetError("reset")), TIMEOUT, grace=0.1, **FAST)


def test_the_timeout_names_the_last_value_and_the_last_error() -> None:
    probe = answers(ApiError(404, '{"reason":"NotFound","message":"xollamafleets \\"f\\" not found"}'), [])
    with pytest.raises(TimeoutError) as raised:
        wait_for("the fleet", probe, 0.2, **FAST)
    message = str(raised.value)
    assert message.startswith("timed out after 0s waiting for the fleet")
    assert "last value: []" in message
    assert 'last error: ApiError: 404: {"reason":"NotFound"' in message
    assert isinstance(raised.value.__cause__, ApiError)
