"""The end-to-end session: one control plane for every test, always torn down.

Run through ``make e2e`` (``scripts/e2e.sh``), which builds the tools and runs
pytest inside a fresh loopback-only network namespace. Outside CI a missing
tool or namespace skips the whole directory with the reason; under ``CI=true``
it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import claims as c
from tests.e2e.kube import Kube
from tests.e2e.provider import SimulatedProvider
from tests.e2e.stack import ROOT, WEBHOOKS, Stack, binaries

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
FIGURES: dict[str, Any] = {}


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"end-to-end tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _loopback_only() -> bool:
    done = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False)
    names = [line.split(":")[1].strip() for line in done.stdout.splitlines() if ":" in line]
    return done.returncode == 0 and names == ["lo"]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    if os.environ.get("E2E_NETNS") != "1" or not _loopback_only():
        _unavailable("run through `make e2e`: it needs its own loopback-only network namespace")
    try:
        bins = binaries()
    except RuntimeError as exc:
        _unavailable(str(exc))
    keep = os.environ.get("E2E_WORKDIR")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="fop-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    stack = Stack(work, bins)
    try:
        stack.bring_up()
        FIGURES["bring-up s"] = {k: round(v, 1) for k, v in stack.timings.items()}
        yield stack
    finally:
        FIGURES["memory MiB at teardown"] = {k: round(v) for k, v in stack.rss_mib().items()}
        stack.tear_down()
        (work / "figures.json").write_text(json.dumps(FIGURES, indent=2, sort_keys=True))


@pytest.fixture(scope="session")
def kube(stack: Stack) -> Kube:
    assert stack.kube is not None
    return stack.kube


# The simulated provider once started (the tests' fixtures share one).
PROVIDERS: list[SimulatedProvider] = []


@pytest.fixture(scope="session")
def provider(kube: Kube) -> Iterator[SimulatedProvider]:
    sim = SimulatedProvider(kube, usages_enforced=WEBHOOKS)
    sim.start()
    PROVIDERS.append(sim)
    try:
        yield sim
    finally:
        sim.stop()
        sim.join(timeout=10)
        assert not sim.is_alive(), "the simulated provider did not stop"
        _fail_on_provider_errors("after the last test")


def _fail_on_provider_errors(when: str) -> None:
    for sim in PROVIDERS:
        errors = sim.new_errors()
        if errors:
            listed = "\n".join(f"  {e}" for e in errors[:20])
            pytest.fail(
                f"the simulated provider recorded {len(errors)} error(s) {when}:\n{listed}", pytrace=False
            )


@pytest.fixture(autouse=True)
def no_provider_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test during which (or before which) the simulated provider recorded errors.

    The provider runs in a thread: its errors would otherwise only show up as a
    wait that times out, or not at all.
    """
    yield
    _fail_on_provider_errors(f"up to the end of {request.node.name}")


@pytest.fixture(scope="session")
def figures() -> dict[str, Any]:
    return FIGURES


CASES = ("existing", "fleet", "multicloud", "onprem")
# Generous: the 2-core CI machine may be shared; E2E_READY_BOUND_S lowers it for a quick run.
READY_BOUND_S = float(os.environ.get("E2E_READY_BOUND_S", "600"))


@pytest.fixture(scope="session")
def broken_claims(stack: Stack, provider: SimulatedProvider) -> dict[str, c.Claim]:
    """examples/existing bound to broken Compositions, applied just before the good claims.

    They get the same time as the good ones; test_2_claims shows the harness's
    own checks fail on them, then deletes them.
    """
    stack.kubectl("create", "namespace", c.NAMESPACE, check=False)
    compositions = c.broken_compositions()
    stack.apply(list(compositions.values()))
    out = {case: c.broken_claim(case, comp["metadata"]["name"]) for case, comp in compositions.items()}
    for claim in out.values():
        claim.apply(stack)
    return out


@pytest.fixture(scope="session")
def ready_claims(
    stack: Stack,
    kube: Kube,
    provider: SimulatedProvider,
    figures: dict[str, Any],
    broken_claims: dict[str, c.Claim],
) -> dict[str, c.Claim]:
    out = {case: c.Claim(c.example_claim(case)) for case in CASES}
    start = time.monotonic()
    for claim in out.values():
        claim.apply(stack)
    took: dict[str, float] = {}
    for case, claim in out.items():
        remaining = READY_BOUND_S - (time.monotonic() - start)
        c.wait_ready(kube, claim, timeout=max(remaining, 1))
        took[case] = c.elapsed(start)
    figures["claim to Ready s (applied together)"] = took
    figures["memory MiB with all claims Ready"] = {k: round(v) for k, v in stack.rss_mib().items()}
    print(f"\nclaim to Ready: {took}")
    return out


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("end-to-end figures")
    for key, value in FIGURES.items():
        terminalreporter.write_line(f"{key}: {json.dumps(value, sort_keys=True)}")


def now() -> float:
    return time.monotonic()


__all__ = ["ROOT", "now"]
