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

import fnmatch
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e import claims as c
from tests.e2e import gateway
from tests.e2e.kube import SECRET, Kube, condition, wait_for
from tests.e2e.provider import SimulatedProvider
from tests.e2e.stack import ROOT, Stack
from tests.e2e.workload import (
    ENDPOINT_SLICE,
    POD,
    PV,
    PVC,
    SERVICE,
    STAND_INS,
    STORAGE_CLASS,
    Providers,
    Workload,
    chart_overrides,
    inventory,
    pool_node,
    terminating,
)

IN_CLUSTER = {"Release", "Object"}
INSTALL_BOUND_S = float(os.environ.get("E2E_INSTALL_BOUND_S", "1200"))
DELETE_BOUND_S = 300
STABLE_S = 30.0
GATEWAY_BOUND_S = 300
CASES = tuple(os.environ.get("E2E_REAL_CASES", "existing,onprem,aws").split(","))
# The claims applied with ``stackDeletionPolicy: Delete`` on every cluster: their
# deletion uninstalls the whole stack (test_real_uninstall_leaves_only_what_readme_lists);
# the gateway's claim among them, so its uninstall runs with both controllers real.
UNINSTALL = ("onprem", gateway.CASE)
# Claim name -> its Releases once installed, as (component, namespace): what an
# uninstall may leave behind depends on them (``LEFT_BY``).
INSTALLED: dict[str, set[tuple[str, str]]] = {}
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
            if case in UNINSTALL:
                for cluster in body["spec"]["clusters"]:
                    cluster["stackDeletionPolicy"] = "Delete"
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
    INSTALLED[claim.name] = {
        (r["metadata"]["annotations"]["crossplane.io/external-name"], r["spec"]["forProvider"]["namespace"])
        for r in last
        if r["kind"] == "Release"
    }
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


def test_real_every_object_ready(kube: Kube, real: tuple[c.Claim, Workload]) -> None:
    """Every Object turns Ready under its readiness policy, read from what is really written.

    Built-in kinds' statuses come from the workload cluster's real controllers;
    operators' kinds from the stand-ins, which write what each operator writes at
    the pinned version (``STAND_INS``): a policy that waits for something the
    kind never reports (``DeriveFromObject`` on a Grafana dashboard) stays False.
    """
    xr = real[0].xr(kube)
    assert xr is not None
    last: list[dict[str, Any]] = []

    def ready() -> bool:
        nonlocal last
        last = [o for o in _in_cluster(kube, xr) if o["kind"] == "Object" and not c.ready(o)]
        return not last

    try:
        wait_for("every Object Ready", ready, timeout=180, interval=5)
    except TimeoutError as exc:
        msg = f"{exc}\n{_summary(last)}"
        raise AssertionError(msg) from exc


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

    Its Backend and AIServiceBackend go too, and only after the rule has left
    the AIGatewayRoute and the HTTPRoute generated from it (the function keeps
    them while the route Object's observed manifest names the model), so Envoy
    never routes the model to a missing backend. Followed every 0.3 s.
    """
    claim, workload = reals[gateway.CASE]
    wk = workload.kube
    assert wk is not None
    removed = gateway.SECOND_MODEL["name"]
    before = gateway.snapshot(wk)
    backends = {("Backend", removed), ("AIServiceBackend", removed)}
    assert backends <= set(before), sorted(before)
    assert gateway.rule_seen(wk, removed) == {"AIGatewayRoute": True, "HTTPRoute": True}
    smaller = c.without_model(claim, removed)
    start = time.monotonic()
    smaller.apply(stack)
    reals[gateway.CASE] = (smaller, workload)
    timeline: list[tuple[float, dict[str, bool]]] = []

    def follow() -> bool:
        seen = {**gateway.rule_seen(wk, removed), **gateway.present(wk, backends)}
        timeline.append((round(time.monotonic() - start, 2), seen))
        return not any(seen.values())

    try:
        wait_for(f"{removed}'s rule, then its backends, to go", follow, GATEWAY_BOUND_S, 0.3)
    except TimeoutError as exc:
        msg = f"{exc}\n{timeline[-5:]}"
        raise AssertionError(msg) from exc
    first = {what: next(t for t, seen in timeline if not seen[what]) for what in timeline[-1][1]}
    print(f"\n{removed} removed: gone after (s) {first}", flush=True)
    rule_gone = max(first["AIGatewayRoute"], first["HTTPRoute"])
    at = next(seen for t, seen in timeline if t == rule_gone)
    assert at["Backend"] and at["AIServiceBackend"], (
        f"the backends went before (or with) the rule: {first}"
    )
    kept = gateway.models(smaller.body)
    check = gateway.probe(lambda: gateway.problems(wk, kept))
    try:
        wait_for(f"the gateway without {removed} accepted", check, GATEWAY_BOUND_S, 3)
    except TimeoutError as exc:
        raise AssertionError("\n".join(check.last[0])) from exc  # type: ignore[attr-defined]
    after = gateway.snapshot(wk)
    routes = {k for k in before if k[0] in {"AIGatewayRoute", "HTTPRoute"}}
    changed = sorted(k for k in before if k not in routes | backends and before[k] != after.get(k))
    assert not changed, f"changed besides the routes: {changed}"
    assert set(after) == set(before) - backends, sorted(set(before) ^ set(after))
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


def test_real_volumes_bound_through_the_chosen_class(kube: Kube, real: tuple[c.Claim, Workload]) -> None:
    """Every PVC in the workload cluster is Bound, to a volume of its class; a model's class is the function's.

    A model's claims come from its StatefulSet's volumeClaimTemplates (the class
    the function chose, or none for the cluster's default); the volume the
    stand-in CSI driver provisions carries the class the PVC names, and the real
    PV controller binds them.
    """
    claim, workload = real
    assert workload.kube is not None
    wk = workload.kube
    xr = claim.xr(kube)
    assert xr is not None
    chosen: dict[tuple[str, str], str | None] = {}  # (namespace, PVC name prefix) -> class
    for o in _in_cluster(kube, xr):
        manifest = o["spec"]["forProvider"]["manifest"] if o["kind"] == "Object" else {}
        if manifest.get("kind") != "StatefulSet":
            continue
        for vct in manifest["spec"].get("volumeClaimTemplates") or []:
            prefix = f"{vct['metadata']['name']}-{manifest['metadata']['name']}-"
            chosen[(manifest["metadata"]["namespace"], prefix)] = vct["spec"].get("storageClassName")
    default = [
        sc["metadata"]["name"]
        for sc in wk.list(STORAGE_CLASS)
        if (sc["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    problems: list[str] = []
    models = 0

    def check() -> bool:
        nonlocal models
        problems.clear()
        models = 0
        pvs = {pv["metadata"]["name"]: pv for pv in wk.list(PV)}
        for pvc in wk.list(PVC):
            meta, spec = pvc["metadata"], pvc["spec"]
            where = f"{meta['namespace']}/{meta['name']}"
            pv = pvs.get(spec.get("volumeName") or "")
            if (pvc.get("status") or {}).get("phase") != "Bound" or pv is None:
                problems.append(f"{where}: {(pvc.get('status') or {}).get('phase')} (class {spec.get('storageClassName')})")
                continue
            if pv["spec"].get("storageClassName") != spec.get("storageClassName"):
                problems.append(f"{where}: class {spec.get('storageClassName')}, volume's {pv['spec'].get('storageClassName')}")
            for (ns, prefix), want in chosen.items():
                if meta["namespace"] == ns and meta["name"].startswith(prefix):
                    models += 1
                    expected = want or (default[0] if default else None)
                    if spec.get("storageClassName") != expected:
                        problems.append(f"{where}: class {spec.get('storageClassName')}, the function chose {want!r}")
        return not problems and models >= len(chosen)

    try:
        wait_for("every PVC Bound through its class", check, timeout=120, interval=3)
    except TimeoutError as exc:
        msg = f"{exc}\n" + "\n".join(problems) + f"\nmodel claims {models}, templates {chosen}"
        raise AssertionError(msg) from exc


# Monitor findings that are kwok's, not the stack's: the problem (a glob over
# ``monitor_problems``' lines) -> why. Each target is one something that does not
# run here would make in a real cluster.
MONITOR_TARGETS_ELSEWHERE: dict[str, str] = {
    "ServiceMonitor monitoring/kube-prometheus-stack-kubelet: selects nothing": (
        "the kubelet Service in kube-system is created and kept by the prometheus-operator "
        "(--kubelet-service, kube-prometheus-stack's prometheusOperator.kubeletService), which kwok does not run"
    ),
    "PodMonitor ollama-*/ollama-mesh: port 'http-envoy-prom' not among *": (
        "http-envoy-prom is the port of the istio-proxy container istiod's sidecar injector adds to the model pod "
        "at admission; the stand-in webhook admits pods unchanged"
    ),
    "PodMonitor ollama-*/ollama-mesh: port 'linkerd-admin' not among *": (
        "linkerd-admin is the port of the linkerd-proxy container Linkerd's proxy injector adds to the model pod "
        "at admission; the stand-in webhook admits pods unchanged"
    ),
    "PodMonitor envoy-gateway-system/ollama-gateway-proxy: port 'aigw-admin' not among *": (
        "aigw-admin (1064) is the port of the AI Gateway's external processor, the sidecar the AI Gateway "
        "controller's mutating webhook adds to Envoy's pods at admission; the stand-in webhook admits pods unchanged"
    ),
}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        have, op, values = labels.get(expr["key"]), expr["operator"], expr.get("values") or []
        if (op == "In" and have not in values) or (op == "NotIn" and have in values):
            return False
        if (op == "Exists" and have is None) or (op == "DoesNotExist" and have is not None):
            return False
    return True


def _in_namespaces(monitor: dict[str, Any], namespace: str) -> bool:
    ns_sel = monitor["spec"].get("namespaceSelector") or {}
    if ns_sel.get("any"):
        return True
    return namespace in (ns_sel.get("matchNames") or [monitor["metadata"]["namespace"]])


def monitor_problems(wk: Kube) -> tuple[list[str], int]:
    """(monitors whose endpoints name no port of anything they select, monitors checked)."""
    problems: list[str] = []
    checked = 0
    kinds = {
        "ServiceMonitor": (wk.kind("monitoring.coreos.com/v1", "ServiceMonitor"), "endpoints", SERVICE),
        "PodMonitor": (wk.kind("monitoring.coreos.com/v1", "PodMonitor"), "podMetricsEndpoints", POD),
    }
    for name, (kind, field_, target_kind) in kinds.items():
        targets = wk.list(target_kind)
        for mon in wk.list(kind):
            where = f"{name} {mon['metadata']['namespace']}/{mon['metadata']['name']}"
            checked += 1
            picked = [
                t for t in targets
                if _in_namespaces(mon, t["metadata"]["namespace"])
                and _selects(mon["spec"].get("selector") or {}, t["metadata"].get("labels") or {})
            ]
            if not picked:
                problems.append(f"{where}: selects nothing")
                continue
            ports: set[Any] = set()
            for t in picked:
                if name == "ServiceMonitor":
                    ports |= {p.get("name") for p in t["spec"].get("ports") or []}
                    ports |= {p.get("targetPort") for p in t["spec"].get("ports") or []}
                else:
                    ports |= {
                        p.get(k) for ctr in t["spec"]["containers"] + (t["spec"].get("initContainers") or [])
                        for p in ctr.get("ports") or [] for k in ("name", "containerPort")
                    }
            for ep in mon["spec"].get(field_) or []:
                port = ep.get("port") or ep.get("targetPort") or ep.get("portNumber")
                if port not in ports:
                    problems.append(f"{where}: port {port!r} not among {sorted(map(str, ports - {None}))}")
    return [x for x in problems if not any(fnmatch.fnmatchcase(x, p) for p in MONITOR_TARGETS_ELSEWHERE)], checked


def test_real_monitors_select_existing_ports(real: tuple[c.Claim, Workload]) -> None:
    """Every ServiceMonitor and PodMonitor in the workload cluster selects a Service or pod with its port.

    Charts' monitors and the function's Objects alike, with their namespace
    selectors; the exceptions (targets an operator or kubelet makes) are in
    ``MONITOR_TARGETS_ELSEWHERE`` with their reasons.
    """
    workload = real[1]
    assert workload.kube is not None
    problems, checked = monitor_problems(workload.kube)
    assert checked, "no ServiceMonitor or PodMonitor in the workload cluster"
    assert not problems, "\n".join(problems)


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
        _no_stand_in_errors(workload)
        return all(not wk.list(POD, ns) for ns in namespaces) and c.gone(kube, refs)

    try:
        wait_for("the model workload and every composed object gone", removed, timeout=DELETE_BOUND_S, interval=2)
    except TimeoutError as exc:
        msg = f"{exc}\nReleases left:\n{_summary(_releases_left(kube, existing))}"
        msg += "\nbeing deleted in the workload cluster:\n  " + "\n  ".join(terminating(wk))
        raise AssertionError(msg) from exc
    took = c.elapsed(start)
    figures.setdefault("real: deletion s", {})[existing.name] = took
    print(f"\n{existing.name}: deleted, every composed object gone, in {took}s (bound {DELETE_BOUND_S}s)", flush=True)


def test_real_stand_ins_listed(real: tuple[c.Claim, Workload]) -> None:
    """The stand-ins are the ones README names, and none of them failed."""
    _no_stand_in_errors(real[1])
    assert set(STAND_INS) >= {"PersistentVolumeClaim", "ScaledObject"}


# What an uninstall (``stackDeletionPolicy: Delete``) leaves in the workload
# cluster, beyond what it held before the claim: "Kind [namespace/]name" (globs)
# -> why. README "End to end" states the same list; the test below requires the
# leftovers to be exactly these (each pattern matched, nothing unmatched).
_CRDS_DIR = (
    "in the chart's crds/ directory, which Helm installs and never deletes (deleting a CRD "
    "deletes every object of its kind in the cluster)"
)
_KEPT = "annotated helm.sh/resource-policy: keep, which Helm's uninstall leaves in place"
_NAMESPACE = (
    "a Release's namespace, which provider-helm creates (forProvider.namespace, skipCreateNamespace "
    "unset) and neither it nor Helm deletes; empty"
)
LEFT_BEHIND: dict[str, str] = {
    "CustomResourceDefinition *.monitoring.coreos.com": f"kube-prometheus-stack 88.5.3: {_CRDS_DIR}",
    "CustomResourceDefinition *.nvidia.com": f"gpu-operator v26.7.0: {_CRDS_DIR}",
    "CustomResourceDefinition *.nfd.k8s-sigs.io": f"gpu-operator's node-feature-discovery subchart: {_CRDS_DIR}",
    "CustomResourceDefinition *.grafana.integreatly.org": f"grafana-operator 5.24.0 templates/crds.yaml: {_KEPT}",
    "CustomResourceDefinition *.gateway.networking.k8s.io": (
        f"linkerd-crds 2026.8.3 (the Gateway API routes): {_KEPT}; with the model gateway, "
        f"gateway-helm v1.8.1's crds subchart (the whole Gateway API): {_CRDS_DIR}"
    ),
    "CustomResourceDefinition *.gateway.networking.x-k8s.io": f"gateway-helm v1.8.1's crds subchart: {_CRDS_DIR}",
    "CustomResourceDefinition *.gateway.envoyproxy.io": f"gateway-helm v1.8.1's crds subchart: {_CRDS_DIR}",
    "ConfigMap kyverno/kyverno": f"kyverno 3.9.0 templates/config/configmap.yaml: {_KEPT}",
    "Secret envoy-gateway-system/envoy*": (
        "written by gateway-helm v1.8.1's certgen Job (envoy-gateway certgen: the control plane's and proxies' "
        "certificates, the OIDC HMAC secret), not rendered by the chart, so no uninstall deletes them"
    ),
    "Secret envoy-gateway-system/ollama-gateway-ollama-gateway*": (
        "the AI Gateway controller v1.1.0 writes its external processor's configuration for the Gateway "
        "(internal/controller/gateway.go) into the proxies' namespace without an owner and never deletes it"
    ),
    "MutatingWebhookConfiguration envoy-gateway-topology-injector.envoy-gateway-system": (
        "gateway-helm v1.8.1 templates/envoy-proxy-topology-injector-webhook.yaml: a pre-install hook Envoy "
        "Gateway needs while it runs, and Helm never deletes hooks on uninstall; failurePolicy Ignore, so with "
        "its Service gone it refuses nothing"
    ),
    **{
        f"Namespace {ns}": _NAMESPACE
        for ns in (
            "envoy-ai-gateway-system", "envoy-gateway-system", "gpu-operator", "keda", "kyverno", "linkerd",
            "longhorn-system", "minio-operator", "minio-tenant", "monitoring", "projectcontour",
        )
    },
}
# The Releases (components) whose uninstall leaves each row that is not a Release's
# namespace: a row is required of a claim that installed one of them. A row
# "Namespace <ns>" is required of a claim with a Release in <ns>.
LEFT_BY: dict[str, tuple[str, ...]] = {
    "CustomResourceDefinition *.monitoring.coreos.com": ("kube-prometheus-stack",),
    "CustomResourceDefinition *.nvidia.com": ("gpu-operator",),
    "CustomResourceDefinition *.nfd.k8s-sigs.io": ("gpu-operator",),
    "CustomResourceDefinition *.grafana.integreatly.org": ("grafana-operator",),
    "CustomResourceDefinition *.gateway.networking.k8s.io": ("linkerd-crds", "envoy-gateway"),
    "CustomResourceDefinition *.gateway.networking.x-k8s.io": ("envoy-gateway",),
    "CustomResourceDefinition *.gateway.envoyproxy.io": ("envoy-gateway",),
    "ConfigMap kyverno/kyverno": ("kyverno",),
    "Secret envoy-gateway-system/envoy*": ("envoy-gateway",),
    "Secret envoy-gateway-system/ollama-gateway-ollama-gateway*": ("ai-gateway",),
    "MutatingWebhookConfiguration envoy-gateway-topology-injector.envoy-gateway-system": ("envoy-gateway",),
}
# What may stay or not, by a race: each with why. Not required, never unexplained.
MAY_STAY: dict[str, str] = {
    "ClusterRole kyverno:*-controller": (
        "empty (no rules, labels or aggregationRule): kube-controller-manager's clusterrole-aggregation "
        "controller (v1.34.4 applyClusterRoles) writes an aggregated role by server-side apply, which creates "
        "it anew when Helm has just deleted it together with the roles it aggregates; it grants nothing"
    ),
}

# A namespace's own objects, made by the API server and controller-manager for
# every namespace: they go with it, so they are counted as the namespace.
_NAMESPACE_DEFAULTS = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}


def _leftovers(workload: Workload) -> set[str]:
    assert workload.kube is not None
    now = inventory(workload.kube) - workload.baseline
    namespaces = {name for _, kind, _, name in now if kind == "Namespace"}
    crd_groups = {name.split(".", 1)[1] for _, kind, _, name in now if kind == "CustomResourceDefinition"}
    return {
        f"{kind} {ns + '/' if ns else ''}{name}"
        for _, kind, ns, name in now
        if not (ns in namespaces and (kind, name) in _NAMESPACE_DEFAULTS)
        # kube-apiserver registers an APIService per version of each CRD group it serves
        and not (kind == "APIService" and name.split(".", 1)[1] in crd_groups)
    }


def _releases_left(kube: Kube, claim: c.Claim) -> list[dict[str, Any]]:
    """The claim's Releases still in the control plane (the XR may be gone already)."""
    kind = kube.kind("helm.crossplane.io/v1beta1", "Release")
    return [r for r in kube.list(kind) if (r["metadata"].get("labels") or {}).get("crossplane.io/claim-name") == claim.name]


def _required(pattern: str, releases: set[tuple[str, str]]) -> bool:
    """Whether a claim that installed ``releases`` must leave what ``pattern`` names."""
    if pattern.startswith("Namespace "):
        return pattern.removeprefix("Namespace ") in {ns for _, ns in releases}
    return any(component in LEFT_BY[pattern] for component, _ in releases)


def _unexplained(left: set[str], releases: set[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(leftovers no pattern explains, patterns ``releases`` must leave that explain nothing)."""
    extra = sorted(x for x in left if not any(fnmatch.fnmatchcase(x, p) for p in {**LEFT_BEHIND, **MAY_STAY}))
    unused = sorted(
        p for p in LEFT_BEHIND if _required(p, releases) and not any(fnmatch.fnmatchcase(x, p) for x in left)
    )
    return extra, unused


@pytest.mark.parametrize("case", [c_ for c_ in UNINSTALL if c_ in CASES])
def test_real_uninstall_leaves_only_what_readme_lists(
    stack: Stack, kube: Kube, reals: dict[str, tuple[c.Claim, Workload]], case: str, figures: dict[str, Any]
) -> None:
    """With ``stackDeletionPolicy: Delete`` deleting the claim uninstalls every Release.

    Helm's release Secrets are gone (helm's own record of what is installed), no
    model workload, pod or Job remains, and what stays in the workload cluster,
    compared with what it held before the claim, is exactly ``LEFT_BEHIND``,
    each entry with its reason, which README "End to end" states.
    """
    claim, workload = reals[case]
    assert workload.kube is not None
    wk = workload.kube
    releases = INSTALLED[claim.name]
    # Normally deleted already by test_real_delete_removes_model_workload.
    stack.kubectl("delete", claim.kind.plural, claim.name, "-n", claim.namespace, "--wait=false", "--ignore-not-found")
    start = time.monotonic()

    def uninstalled() -> bool:
        _no_stand_in_errors(workload)
        return claim.xr(kube) is None and not wk.list(SECRET, selector="owner=helm")

    try:
        wait_for("every helm release Secret gone", uninstalled, timeout=DELETE_BOUND_S, interval=2)
    except TimeoutError as exc:
        left = sorted(f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in wk.list(SECRET, selector="owner=helm"))
        msg = f"{exc}\nhelm release Secrets left: {left}\nReleases:\n{_summary(_releases_left(kube, claim))}"
        msg += "\nbeing deleted:\n  " + "\n  ".join(terminating(wk))
        msg += "\nleft behind so far:\n  " + "\n  ".join(sorted(_leftovers(workload)))
        raise AssertionError(msg) from exc
    figures.setdefault("real: uninstall s (after the claim's deletion test)", {})[case] = c.elapsed(start)
    pods = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in wk.list(POD)]
    assert not pods, f"pods left after the uninstall: {pods}"
    # What goes after helm's record does (a namespace terminating, the APIServices
    # kube-apiserver drops with a CRD group) is given a minute to go.
    try:
        wait_for("the leftovers to be what LEFT_BEHIND says", lambda: _unexplained(_leftovers(workload), releases) == ([], []),
                 timeout=90, interval=5)
    except TimeoutError:
        pass  # reported below
    left = _leftovers(workload)
    print(f"\n{case}: left behind after the uninstall ({len(left)}):\n  " + "\n  ".join(sorted(left)), flush=True)
    figures.setdefault("real: left behind after the uninstall", {})[case] = len(left)
    extra, unused = _unexplained(left, releases)
    assert not extra, "left behind, not in LEFT_BEHIND (README):\n" + "\n".join(extra)
    assert not unused, "LEFT_BEHIND entries nothing matched (README says they stay):\n" + "\n".join(unused)


def test_left_behind_is_what_readme_states() -> None:
    """Every LEFT_BEHIND entry is in README "End to end" with its reason."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## End to end", 1)[1].split("\n## ", 1)[0]
    text = " ".join(section.split())
    missing = [p for p, why in {**LEFT_BEHIND, **MAY_STAY}.items() if f"`{p}`" not in text or why not in text]
    assert LEFT_BEHIND
    assert not missing, missing
    # Every row is required of some claim: a Release's namespace, or a component's in LEFT_BY.
    assert {p for p in LEFT_BEHIND if not p.startswith("Namespace ")} == set(LEFT_BY)
