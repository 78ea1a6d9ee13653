"""A simulated provider: plays provider-helm, provider-kubernetes and the upjet providers.

Nothing reconciles managed resources in the test control plane, so this thread
does what the providers would, round by round: a composed resource it sees for
the first time gets ``Synced=True`` and ``Ready=False`` (Creating); one round
later ``Ready=True`` (Available) and the ``status.atProvider`` fields the
function reads (bucket ARN/URL, blob endpoint; ``scripts/stage.py`` says which).
A test can make a resource fail (``Ready=False ReconcileError``) or flap.

It finds composed resources through the XRs' ``spec.resourceRefs`` (legacy
XRs list everything they compose), lists each kind once per round, and writes
only when a status must change, so a steady state stays unwritten.

A round that fails (an API error, a bug here) is recorded in ``errors`` and the
thread goes on; ``conftest.py`` fails the test during which an error was
recorded, printing it. The one answer that is not an error: a resource deleted
between the round's list and its write (404), which is what deletion looks like.
"""

from __future__ import annotations

import datetime
import threading
import time
import traceback
from collections import Counter
from typing import Any

from scripts.stage import _at_provider
from tests.e2e.kube import FLEET_XR, PLATFORM_XR, ApiError, Kind, Kube, condition

# Kinds a real Crossplane reconciles itself (XRs) or that have no status (ProviderConfigs).
NOT_MANAGED = {"XOllamaFleet", "XOllamaPlatform", "ProviderConfig"}
# Reconciled by Crossplane's Usage controllers, which run only with its webhooks on.
USAGES = {"ClusterUsage", "Usage"}


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedProvider(threading.Thread):
    """Marks composed managed resources Synced and Ready, round by round."""

    def __init__(self, kube: Kube, interval: float = 1.0, *, usages_enforced: bool = False) -> None:
        super().__init__(name="simulated-provider", daemon=True)
        self.kube = kube
        self.skip = NOT_MANAGED | (USAGES if usages_enforced else set())
        self.interval = interval
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.failing: dict[str, str] = {}  # resource name -> message
        self.seen: dict[str, int] = {}  # resource name -> round first seen
        self.round = 0
        self.writes: Counter[str] = Counter()
        self.errors: list[str] = []
        self.reported = 0  # errors already reported by a test
        self.paused = threading.Event()

    def fail(self, name: str, message: str) -> None:
        """Make ``name`` report Ready=False with ``message`` until ``recover``."""
        with self.lock:
            self.failing[name] = message

    def recover(self, name: str) -> None:
        """Let ``name`` become Ready again."""
        with self.lock:
            self.failing.pop(name, None)

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        while not self.stopped.is_set():
            if not self.paused.is_set():
                try:
                    self.step()
                except Exception as exc:  # recorded; the test in progress fails
                    where = "".join(traceback.format_tb(exc.__traceback__, limit=-2)).strip()
                    with self.lock:
                        self.errors.append(f"round {self.round}: {type(exc).__name__}: {exc}"[:600] + f"\n{where}")
            self.stopped.wait(self.interval)

    def new_errors(self) -> list[str]:
        """The errors recorded since the last call (each is reported once)."""
        with self.lock:
            out = self.errors[self.reported :]
            self.reported = len(self.errors)
        return out

    def kinds(self) -> dict[tuple[str, str], Kind]:
        """Every managed kind the XRs compose right now."""
        out: dict[tuple[str, str], Kind] = {}
        for xr_kind in (PLATFORM_XR, FLEET_XR):
            for xr in self.kube.list(xr_kind):
                for ref in (xr.get("spec") or {}).get("resourceRefs") or []:
                    if ref["kind"] in self.skip:
                        continue
                    key = (ref["apiVersion"], ref["kind"])
                    if key not in out:
                        out[key] = self.kube.kind(*key)
        return out

    def step(self) -> None:
        """One round: every composed managed resource moves one step towards Ready."""
        self.round += 1
        for (_, kind_name), kind in sorted(self.kinds().items()):
            for obj in self.kube.list(kind):
                self._advance(kind, kind_name, obj)

    def _advance(self, kind: Kind, kind_name: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        if meta.get("deletionTimestamp"):
            return
        first = self.seen.setdefault(name, self.round)
        with self.lock:
            failing = self.failing.get(name)
        ready = condition(obj, "Ready")
        synced = condition(obj, "Synced")
        want_ready = failing is None and self.round > first
        status: dict[str, Any] = {}
        conditions = []
        if synced.get("status") != "True":
            conditions.append(
                {"type": "Synced", "status": "True", "reason": "ReconcileSuccess",
                 "lastTransitionTime": _stamp()}
            )
        if failing is not None:
            if ready.get("status") != "False" or ready.get("message") != failing:
                conditions.append(
                    {"type": "Ready", "status": "False", "reason": "ReconcileError",
                     "message": failing, "lastTransitionTime": _stamp()}
                )
        elif want_ready and ready.get("status") != "True":
            conditions.append(
                {"type": "Ready", "status": "True", "reason": "Available",
                 "lastTransitionTime": _stamp()}
            )
            seen = _at_provider({**obj, "kind": kind_name}, name)
            if seen and (obj.get("status") or {}).get("atProvider", {}) != seen:
                status["atProvider"] = seen
        elif not ready:
            conditions.append(
                {"type": "Ready", "status": "False", "reason": "Creating",
                 "lastTransitionTime": _stamp()}
            )
        if not conditions and not status:
            return
        if conditions:
            # A merge patch replaces the list: keep the conditions not changed here.
            kept = [
                c
                for c in (obj.get("status") or {}).get("conditions") or []
                if c.get("type") not in {x["type"] for x in conditions}
            ]
            status["conditions"] = kept + conditions
        try:
            self.kube.patch_status(kind, name, {"status": status}, meta.get("namespace", ""))
        except ApiError as exc:
            if exc.status == 404:
                return  # deleted since this round listed it
            raise
        self.writes[name] += 1

    def settle(self, rounds: int = 2) -> None:
        """Block until ``rounds`` more rounds have run."""
        target = self.round + rounds
        while self.round < target and not self.stopped.is_set():
            time.sleep(0.2)
