"""The in-cluster half for real: provider-helm and provider-kubernetes on a workload cluster.

Runs last, after the simulated tests have deleted their claims: the simulated
provider stops playing Release and Object, the real providers take over (see
``workload.py``), the examples' ProviderConfigs are pointed at the workload
cluster and the Composition takes every chart from the local Helm repository.
Then ``examples/existing``, ``examples/onprem`` and ``examples/aws`` (applied
together, each on a workload cluster of its own; aws's cloud half simulated, its
GPU node shaped from the NodeGroup the function composes) install for real: every Release ``deployed``
(helm's own state, read back by provider-helm), every Object Synced, the model's
pod scheduled onto the GPU-shaped kwok node with an endpoint behind its Service;
and deleting the claim removes the model's workload from the workload cluster.
``gateway.CASE`` runs the model gateway with its controllers real (``gateway.py``):
its routes and policies accepted, a removed model's rule gone and nothing else.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e import claims as c
from tests.e2e import gateway
from tests.e2e.kube import Kube, condition, wait_for
from tests.e2e.provider import SimulatedProvider
from tests.e2e.stack import ROOT, Stack
from tests.e2e.workload import (
    ENDPOINT_SLICE,
    POD,
    STAND_INS,
    Providers,
    Workload,
    chart_overrides,
    pool_node,
)

IN_CLUSTER = {"Release", "Object"}
INSTALL_BOUND_S = float(os.environ.get("E2E_INSTALL_BOUND_S", "1200"))
DELETE_BOUND_S = 300
STABLE_S = 30.0
GATEWAY_BOUND_S = 300
CASES = ("existing", "onprem", "aws")
# The kinds of composed GPU node pools: their nodes join the workload cluster
# (kwok, shaped from the pool) once the simulated cloud provider calls them Ready.
POOLS = {"NodeGroup"}


@pytest.fixture(scope="module")
def providers(stack: Stack, provider: SimulatedProvider, figures: dict[str, Any]) -> Iterator[Providers]:
    provider.skip |= IN_CLUSTER  # the real providers reconcile these from now on
    real = Providers(stack)
    try:
        real.bring_up()
        figures["real providers bring-up s"] = dict(real.timings)
        comp = yaml.safe_load((ROOT / "compositions" / "ollama-platform.yaml").read_text())
        step = comp["spec"]["pipeline"][0]
        step["input"]["spec"]["charts"] = chart_overrides(real.charts)
        stack.apply([comp])
        yield real
    finally:
        stack.apply([yaml.safe_load((ROOT / "compositions" / "ollama-platform.yaml").read_text())])


def _provider_configs(claim: c.Claim) -> list[str]:
    return [
        cl["kubeconfig"]["providerConfigName"]
        for cl in claim.body["spec"]["clusters"]
        if (cl.get("kubeconfig") or {}).get("providerConfigName")
    ]


def _kubeconfig_secrets(claim: c.Claim) -> list[dict[str, str]]:
    """The kubeconfig Secrets a claim names for its (existing) cloud clusters."""
    return [
        cl["kubeconfig"]["secretRef"]
        for cl in claim.body["spec"]["clusters"]
        if (cl.get("kubeconfig") or {}).get("secretRef")
    ]


def _no_stand_in_errors(wl: Workload) -> None:
    assert not wl.stand_in_errors, "stand-in errors:\n" + "\n".join(wl.stand_in_errors[:10])


def _in_cluster(kube: Kube, xr: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in c.tree(kube, xr) if o["kind"] in IN_CLUSTER]


def _release_state(obj: dict[str, Any]) -> str:
    return str(((obj.get("status") or {}).get("atProvider") or {}).get("state") or "")


def _summary(objs: list[dict[str, Any]]) -> str:
    lines = []
    for o in objs:
        synced, ready = condition(o, "Synced"), condition(o, "Ready")
        what = (o["spec"]["forProvider"].get("chart") or {}).get("name") or (
            o["spec"]["forProvider"].get("manifest") or {}
        ).get("kind")
        lines.append(
            f"{o['kind']} {what}: state={_release_state(o) or '-'} Synced={synced.get('status')} "
            f"Ready={ready.get('status')} {synced.get('message', '')[:300]} {ready.get('message', '')[:200]}"
        )
    return "\n".join(sorted(lines))


@pytest.fixture(scope="module")
def reals(
    stack: Stack, kube: Kube, providers: Providers, figures: dict[str, Any]
) -> Iterator[dict[str, tuple[c.Claim, Workload]]]:
    """Every claim in CASES installed for real, side by side, each on a workload cluster of its own."""
    out: dict[str, tuple[c.Claim, Workload]] = {}
    try:
        for index, case in enumerate(CASES):
            body = c.example_claim(case)
            if case == gateway.CASE:  # the model gateway, its controllers real (gateway.py)
                gateway.with_gateway(body)
            else:  # one claim is enough for the gateway (its controllers cost a core)
                body["spec"]["gateway"] = {"enabled": False}
            claim = c.Claim(body)
            workload = Workload(stack, name=f"workload-{case}", index=index)
            if case == gateway.CASE:
                workload.nodes |= gateway.EXTRA_NODES
            if any(cl.get("gpuNodePool") for cl in claim.body["spec"]["clusters"]):
                # Its GPU nodes come from the pool the function composes.
                workload.nodes = {n: spec for n, spec in workload.nodes.items() if "instance" not in spec}
            out[case] = (claim, workload)
            workload.bring_up()
            figures.setdefault("workload bring-up s", {})[case] = dict(workload.timings)
            providers.point_provider_configs(_provider_configs(claim), workload)
            for ref in _kubeconfig_secrets(claim):
                providers.kubeconfig_secret(ref, workload)
        stack.kubectl("create", "namespace", c.NAMESPACE, check=False)
        start = time.monotonic()
        for claim, _ in out.values():
            claim.apply(stack)
        for claim, workload in out.values():
            _installed(kube, claim, workload, figures, start)
        yield out
    finally:
        for case, (_, workload) in out.items():
            workload.tear_down()
            figures.setdefault("stand-in writes", {})[case] = dict(workload.stand_in_writes)


@pytest.fixture(params=CASES)
def real(request: pytest.FixtureRequest, reals: dict[str, tuple[c.Claim, Workload]]) -> tuple[c.Claim, Workload]:
    return reals[request.param]


def _installed(kube: Kube, claim: c.Claim, workload: Workload, figures: dict[str, Any], start: float) -> None:
    """Wait until every Release of ``claim`` (applied at ``start``) is deployed and every Object Synced."""
    last: list[dict[str, Any]] = []
    stable: list[Any] = [frozenset(), 0.0, 0.0]  # composed names, unchanged since, first done at

    def installed() -> bool:
        nonlocal last
        _no_stand_in_errors(workload)
        xr = claim.xr(kube)
        if xr is None:
            return False
        tree = c.tree(kube, xr)
        for pool in tree:
            name = f"pool-{pool['metadata']['name']}"
            if pool["kind"] in POOLS and c.ready(pool) and name not in workload.nodes:
                workload.add_node(name, pool_node(pool))
        last = [o for o in tree if o["kind"] in IN_CLUSTER]
        releases = [o for o in last if o["kind"] == "Release"]
        fleets = [o for o in tree if o["kind"] == "XOllamaFleet"]
        done = (
            bool(releases)
            and bool(fleets)
            and all(_release_state(r) == "deployed" and c.ready(r) for r in releases)
            and all(condition(o, "Synced").get("status") == "True" for o in last)
        )
        # The function composes in waves (what waits for a Release comes once it
        # is ready): done only when nothing new has been composed for STABLE_S.
        names = frozenset(o["metadata"]["name"] for o in tree)
        if not done or names != stable[0]:
            stable[:] = [names, time.monotonic(), 0.0]
            return False
        stable[2] = stable[2] or time.monotonic() - start
        return time.monotonic() - stable[1] >= STABLE_S

    try:
        wait_for("every Release deployed and every Object Synced", installed, INSTALL_BOUND_S, 5)
        took = stable[2]
    except TimeoutError as exc:
        msg = f"{exc}\n{_summary(last)}"
        raise AssertionError(msg) from exc
    figures.setdefault("real: claim to every Release deployed s", {})[claim.name] = round(took, 1)
    print(f"\n{claim.name}, for real: every Release deployed after {took:.0f}s\n{_summary(last)}", flush=True)


def test_real_releases_deployed_and_objects_synced(kube: Kube, real: tuple[c.Claim, Workload]) -> None:
    xr = real[0].xr(kube)
    assert xr is not None
    objs = _in_cluster(kube, xr)
    releases = [o for o in objs if o["kind"] == "Release"]
    assert len(releases) >= 9, _summary(objs)
    bad = [o for o in objs if condition(o, "Synced").get("status") != "True"]
    bad += [r for r in releases if _release_state(r) != "deployed"]
    assert not bad, _summary(bad)


def test_real_model_pod_scheduled_on_gpu_node_with_endpoint(kube: Kube, real: tuple[c.Claim, Workload]) -> None:
    existing, workload = real
    xr = existing.xr(kube)
    assert xr is not None
    sets = [
        o["spec"]["forProvider"]["manifest"]
        for o in _in_cluster(kube, xr)
        if o["kind"] == "Object" and o["spec"]["forProvider"]["manifest"].get("kind") == "StatefulSet"
    ]
    assert sets, "no model StatefulSet composed"
    for sts in sets:
        _model_running(workload, sts)


@pytest.fixture(scope="module")
def controllers(stack: Stack, reals: dict[str, tuple[c.Claim, Workload]]) -> Iterator[gateway.Controllers]:
    """Envoy Gateway and the AI Gateway controller on the gateway claim's workload cluster."""
    _, workload = reals[gateway.CASE]
    assert workload.kube is not None
    gateway.key_secrets(workload.kube)
    running = gateway.Controllers(stack, workload)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_real_gateway_translated_by_its_controllers(
    kube: Kube, reals: dict[str, tuple[c.Claim, Workload]], controllers: gateway.Controllers, figures: dict[str, Any]
) -> None:
    """Each AIGatewayRoute became its HTTPRoute; routes and policies Accepted, references resolved."""
    claim, workload = reals[gateway.CASE]
    assert workload.kube is not None
    check = gateway.probe(lambda: gateway.problems(workload.kube, gateway.models(claim.body)))  # type: ignore[arg-type]
    try:
        _, took = wait_for("the gateway translated and accepted", check, GATEWAY_BOUND_S, 3)
    except TimeoutError as exc:
        raise AssertionError("\n".join(check.last[0])) from exc  # type: ignore[attr-defined]
    figures["real: gateway translated s"] = round(took, 1)
    wait_for("Envoy Gateway's xDS through the AI Gateway's extension server", lambda: gateway.xds_extended(controllers),
             GATEWAY_BOUND_S, 2)


def test_real_gateway_model_removed_leaves_the_rest(
    stack: Stack, kube: Kube, reals: dict[str, tuple[c.Claim, Workload]], controllers: gateway.Controllers
) -> None:
    """Removing a model removes its route rule (in both routes) and changes nothing else of the gateway.

    Its Backend and AIServiceBackend stay, unrouted, like the rest of the shared
    stack (``stackDeletionPolicy: Orphan``, the default).
    """
    claim, workload = reals[gateway.CASE]
    wk = workload.kube
    assert wk is not None
    removed = gateway.SECOND_MODEL["name"]
    before = gateway.snapshot(wk)
    smaller = c.without_model(claim, removed)
    smaller.apply(stack)
    reals[gateway.CASE] = (smaller, workload)
    kept = gateway.models(smaller.body)
    check = gateway.probe(lambda: gateway.problems(wk, kept))
    try:
        wait_for(f"{removed}'s route rule to go", check, GATEWAY_BOUND_S, 3)
    except TimeoutError as exc:
        raise AssertionError("\n".join(check.last[0])) from exc  # type: ignore[attr-defined]
    after = gateway.snapshot(wk)
    routes = {k for k in before if k[0] in {"AIGatewayRoute", "HTTPRoute"}}
    assert {("Backend", removed), ("AIServiceBackend", removed)} <= set(before), sorted(before)
    changed = sorted(k for k in before if k not in routes and before[k] != after.get(k))
    assert not changed, f"changed besides the routes: {changed}"
    assert set(after) == set(before), sorted(set(before) ^ set(after))
    for key in routes:
        rules = [r for r in before[key][2]["rules"] if removed not in json.dumps(r)]
        assert after[key][2]["rules"] == rules, (key, after[key][2]["rules"])


def _model_running(workload: Workload, sts: dict[str, Any]) -> None:
    """The StatefulSet's pods run on a GPU node and its Service has a ready endpoint."""
    assert workload.kube is not None
    wk = workload.kube
    ns = sts["metadata"]["namespace"]
    selector = ",".join(f"{k}={v}" for k, v in sts["spec"]["selector"]["matchLabels"].items())

    def running() -> list[dict[str, Any]]:
        _no_stand_in_errors(workload)
        pods = wk.list(POD, ns, selector)
        return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]

    try:
        pods, _ = wait_for(f"a running model pod in {ns}", running, timeout=300, interval=2)
    except TimeoutError as exc:
        pods = wk.list(POD, ns, selector)
        conds = [(p["metadata"]["name"], (p.get("status") or {}).get("conditions")) for p in pods]
        msg = f"{exc}\npods: {conds}"
        raise AssertionError(msg) from exc
    for pod in pods:
        gpu_nodes = {n for n, spec in workload.nodes.items() if "instance" in spec}
        assert pod["spec"]["nodeName"] in gpu_nodes, (pod["spec"]["nodeName"], gpu_nodes)
        requests = pod["spec"]["containers"][0]["resources"].get("limits") or {}
        assert requests.get("nvidia.com/gpu"), pod["spec"]["containers"][0]["resources"]

    def endpoint() -> bool:
        slices = wk.list(ENDPOINT_SLICE, ns)
        return any(
            (e.get("conditions") or {}).get("ready") and e.get("addresses")
            for s in slices
            for e in s.get("endpoints") or []
        )

    wait_for(f"a ready endpoint for the model Service in {ns}", endpoint, timeout=120, interval=2)


def test_real_delete_removes_model_workload(
    stack: Stack, kube: Kube, real: tuple[c.Claim, Workload], figures: dict[str, Any]
) -> None:
    existing, workload = real
    assert workload.kube is not None
    wk = workload.kube
    xr = existing.xr(kube)
    assert xr is not None
    namespaces = {
        o["spec"]["forProvider"]["manifest"]["metadata"]["namespace"]
        for o in _in_cluster(kube, xr)
        if o["kind"] == "Object" and o["spec"]["forProvider"]["manifest"].get("kind") == "StatefulSet"
    }
    refs = c.all_refs(kube, xr)
    start = time.monotonic()
    stack.kubectl("delete", existing.kind.plural, existing.name, "-n", existing.namespace, "--wait=false")

    def removed() -> bool:
        return all(not wk.list(POD, ns) for ns in namespaces) and c.gone(kube, refs)

    wait_for("the model workload and every composed object gone", removed, timeout=DELETE_BOUND_S, interval=2)
    figures.setdefault("real: deletion s", {})[existing.name] = c.elapsed(start)


def test_real_stand_ins_listed(real: tuple[c.Claim, Workload]) -> None:
    """The stand-ins are the ones README names, and none of them failed."""
    _no_stand_in_errors(real[1])
    assert set(STAND_INS) >= {"PersistentVolumeClaim", "ScaledObject"}
