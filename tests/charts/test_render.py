"""Every Release of every example, profile and stage, rendered by helm with its real chart.

For each chart, every distinct set of values the function emits is rendered
with ``helm template`` (release name = external name, its namespace, valuesFrom
then values), and must render without error, use only values keys the chart
reads, fit the chart's published values schema where one exists, and produce
manifests valid against the Kubernetes schemas and the CRDs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from function import context, naming
from function.models.input import DEFAULT_CHARTS
from function.stack import monitors
from scripts.render import load_docs
from tests.charts import corpus, helm, rendered, schemas, valuekeys, wiring

CHART_NAMES = sorted({chart for _, chart, _ in DEFAULT_CHARTS.values()})
# Charts in the catalogue no example composes cannot be checked; there are none today.
STARTED = time.monotonic()


@pytest.fixture(scope="module")
def by_chart() -> dict[str, list[rendered.Distinct]]:
    helm.charts_dir()
    helm.helm_binary()
    found = rendered.by_chart()
    for distinct in found.values():
        for d in distinct:
            try:
                schemas.rendered_crds().add(helm.template(d.render))
            except helm.RenderError:
                continue
    return found


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_chart_renders_with_the_values_the_function_emits(
    chart: str, by_chart: dict[str, list[rendered.Distinct]]
) -> None:
    distinct = by_chart.get(chart)
    assert distinct, f"no example composes a Release of chart {chart}"
    problems: list[str] = []
    for d in distinct:
        where = f"{d.render.label} (e.g. {d.where[0]}, {len(d.where)} releases)"
        unknown = valuekeys.unknown_keys(d.render.chart.path, d.render.values)
        problems += [f"{where}: values key {k} is not read by the chart" for k in unknown]
        problems += [
            f"{where}: values schema: {e}" for e in schemas.values_schema_errors(d.render.chart, d.render.values)
        ]
        try:
            docs = helm.template(d.render)
        except helm.RenderError as exc:
            problems.append(f"{where}: helm template failed: {str(exc)[-1500:]}")
            continue
        assert docs, f"{where}: rendered nothing"
        _, errors = schemas.validate_all(docs)
        problems += [f"{where}: {e}" for e in errors]
    assert not problems, "\n".join(problems[:40]) + (
        f"\n... and {len(problems) - 40} more" if len(problems) > 40 else ""
    )


def test_totals(by_chart: dict[str, list[rendered.Distinct]]) -> None:
    """What was rendered and checked: every Release of the corpus, every chart, every source.

    Reads only the module's fixture (no other test's results), so it holds in any
    order and alone.
    """
    distinct = [d for ds in by_chart.values() for d in ds]
    objects: dict[str, int] = dict.fromkeys(by_chart, 0)
    for chart, ds in by_chart.items():
        for d in ds:
            try:
                objects[chart] += len(helm.template(d.render))
            except helm.RenderError:
                continue
    releases = rendered.release_count()
    line = (
        f"charts: {len(by_chart)} charts, {releases} Releases rendered "
        f"({len(distinct)} distinct renders), {sum(objects.values())} objects checked, "
        f"{time.monotonic() - STARTED:.1f}s"
    )
    helm.record_total(line)
    # Every chart of the catalogue is rendered, and renders objects.
    assert sorted(by_chart) == CHART_NAMES
    assert not [c for c, n in objects.items() if n == 0], objects
    # Deduplication loses no Release: every Release of every source and stage is behind a render.
    corpus_releases = [where for where, _ in corpus.releases()]
    assert releases == len(corpus_releases)
    assert sorted(w for d in distinct for w in d.where) == sorted(corpus_releases)
    assert releases > len(distinct) > len(CHART_NAMES)
    # Every platform example (under both profiles) and every option of the matrix is rendered.
    covered = {w.split(" stage ", 1)[0] for d in distinct for w in d.where}
    platforms = [
        p.name
        for p in sorted(corpus.EXAMPLES.iterdir())
        if (p / "xr.yaml").exists() and load_docs(p / "xr.yaml")[0]["kind"] == "XOllamaPlatform"
    ]
    assert platforms
    for name in platforms:
        assert name in covered, name
        assert {f"{name}@production", f"{name}@development"} & covered, name
    options = {
        f"multicloud+{option}={member.value}"
        for option, enum in corpus.OPTIONS.items()
        for member in enum
        if (option, member.value) not in corpus.REFUSED
    }
    assert options <= covered, sorted(options - covered)


# --- wiring ------------------------------------------------------------------------

# API groups built into Kubernetes (wrapped Objects of these kinds need no CRD).
BUILTIN_GROUPS = {"", "v1", "apps", "batch", "policy", "rbac.authorization.k8s.io", "networking.k8s.io",
                  "storage.k8s.io", "autoscaling", "admissionregistration.k8s.io", "scheduling.k8s.io"}
_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule", "NO_EXECUTE": "NoExecute"}


def pool_taints(state: corpus.ClusterState) -> list[dict[str, str]]:
    """Taints of the GPU pools composed for the cluster (existing clusters: the GPU taint)."""
    out: list[dict[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "taint" and isinstance(value, list):
                    out.extend(
                        {"key": t["key"], "value": str(t.get("value", "")), "effect": _EFFECTS.get(t.get("effect"), t.get("effect"))}
                        for t in value
                    )
                elif key == "nodeTaints" and isinstance(value, list):
                    for text in value:
                        kv, _, effect = text.partition(":")
                        k, _, v = kv.partition("=")
                        out.append({"key": k, "value": v, "effect": effect})
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for pool in state.pools:
        walk(pool.get("spec", {}).get("forProvider", {}))
    if state.spec.get("cloud") == "existing":
        out.append({"key": naming.GPU_TAINT_KEY, "value": "true", "effect": "NoSchedule"})
    unique = {json.dumps(t, sort_keys=True): t for t in out}
    return [unique[k] for k in sorted(unique)]


@pytest.fixture(scope="module")
def clusters(by_chart: dict[str, list[rendered.Distinct]]) -> list[wiring.Cluster]:
    # a fleet by itself: its objects are checked where a platform runs it
    return [wiring_cluster(state) for state in corpus.cluster_states() if state.releases]


def wiring_cluster(state: corpus.ClusterState) -> wiring.Cluster:
    """What the wiring checks read of one cluster."""
    return wiring.Cluster(
        label=state.label,
        cloud=str(state.spec.get("cloud", "existing")),
        distribution=str(state.spec.get("distribution", "generic")),
        rendered=rendered.cluster_objects(state),
        wrapped=state.objects,
        releases=state.releases,
        taints=pool_taints(state) if state.spec else [],
        addons=[a["spec"]["forProvider"]["addonName"] for a in state.addons],
    )


def _clusters_with(values: dict[str, Any], example: str = "azure", **components: str) -> list[wiring.Cluster]:
    """The example's clusters with the input's values overrides (here: undoing a fix)."""
    xr = copy.deepcopy(load_docs(corpus.EXAMPLES / example / "xr.yaml")[0])
    if components:
        xr["spec"]["components"] = components
    src = corpus.walk_with_input(f"{example}+override", xr, {"values": values})
    return [wiring_cluster(s) for s in corpus.states_of(src)]


def _problems(check: str, clusters: list[wiring.Cluster]) -> list[str]:
    return [p for c in clusters for p in wiring.CHECKS[check](c)[1]]


def test_wiring_catches_contour_scraped_twice_and_default_class() -> None:
    """Before the fix: exposeMetrics on the LoadBalancer Service, IngressClass default."""
    broken = _clusters_with({"contour": {"envoy": {"service": {"exposeMetrics": True}}, "contour": {"ingressClass": {"default": True}}}})
    assert any("contour-envoy" in p and "scraped 2 times" in p for p in _problems("scraping", broken))
    assert any("makes itself the cluster's default" in p for p in _problems("ingress classes", broken))


def test_wiring_catches_gpu_agents_without_the_spot_toleration() -> None:
    """Before the fix: the GPU operator and Longhorn tolerated only nvidia.com/gpu."""
    only_gpu = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    broken = _clusters_with(
        {
            "gpu-operator": {"daemonsets": {"tolerations": only_gpu}},
            "longhorn": {"longhornManager": {"tolerations": []}, "defaultSettings": {"taintToleration": None}},
        },
        blockStorage="longhorn",
    )
    found = _problems("GPU taints", broken)
    assert any("ClusterPolicy" in p and "scalesetpriority" in p for p in found), found
    assert any("longhorn-manager" in p for p in found), found
    assert any("Longhorn CSI plugin" in p for p in found), found


def test_wiring_catches_eks_volumes_without_the_ebs_csi_driver() -> None:
    """Before the fix no EBS CSI driver add-on: Rook's OSD and mon volumes on gp2 never provisioned."""
    [cluster] = _clusters_with({}, example="aws")
    assert "aws-ebs-csi-driver" in cluster.addons
    assert not _problems("storage classes", [cluster])
    cluster.addons = [a for a in cluster.addons if a != "aws-ebs-csi-driver"]
    found = _problems("storage classes", [cluster])
    assert found, "the check did not notice"
    assert all("'gp2' uses ebs.csi.aws.com, whose CSI driver is not installed" in p for p in found), found


def test_wiring_catches_rook_without_its_csi_drivers_and_a_route_without_class() -> None:
    """Before the fix: no ceph-csi-drivers Release; HTTPProxies without ingressClassName."""
    [cluster] = _clusters_with({}, example="aws")
    assert not _problems("storage classes", [cluster])
    cluster.rendered = [(r, d) for r, d in cluster.rendered if r != "ceph-csi-drivers"]
    assert any("rook-ceph-block" in p and "CSI driver is not installed" in p for p in _problems("storage classes", [cluster]))
    # a route as the fleet wrote it before the fix: no ingressClassName
    cluster.wrapped.append(
        {
            "apiVersion": "projectcontour.io/v1",
            "kind": "HTTPProxy",
            "metadata": {"name": "ollama", "namespace": "ollama-llama2"},
            "spec": {"virtualhost": {"fqdn": "llama2.example.com"}, "routes": []},
        }
    )
    assert any("HTTPProxy ollama-llama2/ollama" in p for p in _problems("ingress classes", [cluster]))


def test_eks_volumes_name_their_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """EKS from 1.30 has no default StorageClass: without block storage, every claim names gp2.

    Before the fix the models' claim templates and Loki's volume named no class
    (the cluster's default), so on a new EKS cluster they would stay Pending.
    """
    [cluster] = _clusters_with({}, example="aws", blockStorage="none")
    count, found = wiring.CHECKS["storage classes"](cluster)
    assert count and not found, found
    assert any(sc == "gp2" for o in cluster.wrapped for sc, _ in wiring._storage_class_uses(o, ""))
    monkeypatch.setattr(context, "CLOUD_BLOCK_STORAGE_CLASS", {})  # the fix undone
    [cluster] = _clusters_with({}, example="aws", blockStorage="none")
    _, found = wiring.CHECKS["storage classes"](cluster)
    assert any("StatefulSet monitoring/loki" in p and "no default" in p for p in found), found
    assert any("StatefulSet ollama-" in p and "volumeClaimTemplates" in p for p in found), found


# --- the stack fixes, read on the rendered charts ------------------------------------
# Each test runs the check on the example as composed (it must hold and check
# something) and with the fix undone through a values override or the old
# objects (it must fail): a check that cannot fail proves nothing.


def _run(check: str, clusters: list[wiring.Cluster]) -> tuple[int, list[str]]:
    count, problems = 0, []
    for cluster in clusters:
        n, found = wiring.CHECKS[check](cluster)
        count += n
        problems += found
    return count, problems


def _holds(check: str, clusters: list[wiring.Cluster]) -> None:
    count, problems = _run(check, clusters)
    assert count > 0, f"{check}: nothing checked"
    assert not problems, problems


def test_aks_cilium_pod_cidr_clears_the_service_cidr() -> None:
    """Before the fix Cilium kept the chart's pod pool 10.0.0.0/8, over AKS's Service CIDR 10.0.0.0/16."""
    _holds("pod CIDRs", _clusters_with({}, example="azure"))
    chart = helm.find_chart("cilium", DEFAULT_CHARTS["cilium"][2])
    default = valuekeys.load(chart.path).defaults["ipam"]["operator"]["clusterPoolIPv4PodCIDRList"]
    assert default == ["10.0.0.0/8"]  # what the pod pool was before the fix: the chart's
    undone = {"cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": default}}}}
    _, found = _run("pod CIDRs", _clusters_with(undone, example="azure"))
    assert found == ["ConfigMap cilium-config: pod CIDR 10.0.0.0/8 overlaps the azure Service CIDR 10.0.0.0/16"]


def test_gke_cilium_node_init_takes_kubelet_over_and_drops_cbr0() -> None:
    """Before the fix node-init ran without reconfigureKubelet and removeCbrBridge (the script did neither).

    Neither key is in the chart's values.yaml, so null (which deletes a key in
    Helm) gives the pre-fix values.
    """
    _holds("GKE node-init", _clusters_with({}, example="gcp"))
    undone = {"cilium": {"nodeinit": {"reconfigureKubelet": None, "removeCbrBridge": None}}}
    _, found = _run("GKE node-init", _clusters_with(undone, example="gcp"))
    assert len(found) == 2, found
    assert any("never reconfigures kubelet" in p for p in found)
    assert any("never removes the cbr0 bridge" in p for p in found)


def test_cilium_and_hubble_metrics_services_are_scraped_once() -> None:
    """Before the fix no ServiceMonitor selected Cilium's agent, operator, Envoy and Hubble metrics Services."""
    clusters = _clusters_with({}, example="azure")
    _holds("metrics Services", clusters)
    for cluster in clusters:
        cluster.wrapped = [
            o for o in cluster.wrapped if not (o.get("kind") == "ServiceMonitor" and wiring._ns(o) == "kube-system")
        ]
    _, found = _run("metrics Services", clusters)
    names = sorted(p.split(" port ")[0] for p in found)
    assert names == [
        "Service kube-system/cilium-agent",
        "Service kube-system/cilium-envoy",
        "Service kube-system/cilium-operator",
        "Service kube-system/hubble-metrics",
    ], found
    # scraped twice (a second monitor over the same pods and port) is caught too
    [cluster] = _clusters_with({}, example="azure")
    twin = next(o for o in cluster.wrapped if o.get("kind") == "ServiceMonitor" and wiring._name(o) == "cilium-agent")
    cluster.wrapped.append({**twin, "metadata": {**twin["metadata"], "name": "cilium-agent-2"}})
    _, found = _run("metrics Services", [cluster])
    assert any("cilium-agent port metrics" in p and "scraped 2 times" in p for p in found), found


def test_minio_tenant_leaves_the_prometheus_alone() -> None:
    """Before the fix the Tenant carried prometheusOperator: true."""
    _holds("MinIO tenants", _clusters_with({}, example="aws", objectStorage="minio"))
    undone = {"minio-tenant": {"tenant": {"prometheusOperator": True}}}
    _, found = _run("MinIO tenants", _clusters_with(undone, example="aws", objectStorage="minio"))
    assert len(found) == 1, found
    assert "prometheusOperator is true" in found[0]


def test_no_metrics_port_on_the_ingress_load_balancers() -> None:
    """Before the fix Contour's exposeMetrics put Envoy's /stats port 8002 on the LoadBalancer Service.

    Both cases: the internal load balancer (private by default) and the
    internet-facing one (a model with public exposure, the production example).
    """
    for example in ("azure", "production"):
        clusters = _clusters_with({}, example=example)
        balancers = [
            s for c in clusters for s in c.of_kind("Service") if (s.get("spec") or {}).get("type") == "LoadBalancer"
        ]
        assert balancers, example
        _holds("load balancer ports", clusters)
        undone = {"contour": {"envoy": {"service": {"exposeMetrics": True}}}}
        _, found = _run("load balancer ports", _clusters_with(undone, example=example))
        assert any("contour-envoy" in p and "Envoy /stats (Contour)" in p for p in found), found


def test_contour_installs_on_an_existing_cluster_without_a_public_model() -> None:
    """Before the fix the chart's externalTrafficPolicy: Local stayed on the ClusterIP Service.

    The real API server refused it (``may only be set for externally-accessible
    services``), so Contour never installed on an existing cluster.
    """
    clusters = _clusters_with({}, example="existing")
    envoy = [s for c in clusters for s in c.of_kind("Service") if s["metadata"]["name"] == "contour-envoy"]
    assert envoy and all(s["spec"]["type"] == "ClusterIP" for s in envoy)
    _holds("Service types", clusters)
    undone = {"contour": {"envoy": {"service": {"externalTrafficPolicy": "Local"}}}}
    _, found = _run("Service types", _clusters_with(undone, example="existing"))
    assert any("contour-envoy of type ClusterIP sets spec.externalTrafficPolicy" in p for p in found), found


def test_every_metrics_service_of_the_stack_is_scraped() -> None:
    """Before the fix (no function/stack/monitors.py) 13 metrics ports of 8 charts were scraped by nothing.

    Istio, KEDA, Kyverno, the Grafana and OpenTelemetry operators, Jaeger and Loki
    (multicloud: every option), the Knative operator (serving: knative), Cilium's Envoy.
    """
    clusters = _clusters_with({}, example="multicloud") + _clusters_with({}, example="aws", serving="knative")
    _holds("metrics Services", clusters)
    ours = {m.name for m in monitors.MONITORS} | {"cilium-envoy"}
    for cluster in clusters:
        cluster.wrapped = [
            o for o in cluster.wrapped if not (o.get("kind") == "ServiceMonitor" and wiring._name(o) in ours)
        ]
    _, found = _run("metrics Services", clusters)
    names = {p.split(": ")[0] for p in found}
    assert names == {
        "Service istio-system/istiod port http-monitoring (15014)",
        "Service keda/keda-operator-metrics-apiserver port metrics (8080)",
        "Service knative-operator/operator-webhook port http-metrics (9090)",
        "Service kube-system/cilium-envoy port envoy-metrics (9964)",
        "Service kyverno/kyverno-background-controller-metrics port metrics-port (8000)",
        "Service kyverno/kyverno-cleanup-controller-metrics port metrics-port (8000)",
        "Service kyverno/kyverno-reports-controller-metrics port metrics-port (8000)",
        "Service kyverno/kyverno-svc-metrics port metrics-port (8000)",
        "Service monitoring/grafana-operator-metrics-service port metrics (9090)",
        "Service monitoring/jaeger port internal-metrics (8888)",
        "Service monitoring/loki port http-metrics (3100)",
        "Service monitoring/loki-gateway-exporter port http-metrics (4040)",
        "Service opentelemetry-operator-system/opentelemetry-operator port metrics (8443)",
    }, sorted(names)


# --- values overrides through the real chart -----------------------------------------


def test_a_valid_override_renders_through_the_real_chart() -> None:
    """Overrides reach the rendered manifests, merged over the computed values.

    Cilium publishes a values schema (the function checks the override against
    it); Contour does not (merged as given).
    """
    values = {
        "cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["172.16.0.0/14"]}}},
        "contour": {"envoy": {"service": {"annotations": {"example.com/team": "ml"}}}},
    }
    [cluster] = _clusters_with(values, example="azure")
    [config] = [o for o in cluster.of_kind("ConfigMap") if wiring._name(o) == "cilium-config"]
    assert config["data"]["cluster-pool-ipv4-cidr"] == "172.16.0.0/14"
    [envoy] = [o for o in cluster.of_kind("Service") if wiring._name(o) == "contour-envoy"]
    annotations = envoy["metadata"]["annotations"]
    assert annotations["example.com/team"] == "ml"
    # the computed settings of the map are kept (maps merge key by key): the
    # example exposes a model, so a public load balancer open to its callers only
    assert envoy["spec"]["type"] == "LoadBalancer"
    assert envoy["spec"]["loadBalancerSourceRanges"]
    _holds("pod CIDRs", [cluster])


def test_an_override_the_chart_schema_refuses_is_refused_before_helm() -> None:
    """The function refuses what Helm would refuse at install, naming the input field.

    The same wrong value rendered straight through helm fails the chart's own
    values.schema.json, so the function's check is no stricter than Helm's.
    """
    xr = load_docs(corpus.EXAMPLES / "azure" / "xr.yaml")[0]
    wrong = {"cilium": {"hubble": {"relay": {"enabled": "yes"}}}}
    src = corpus.walk_with_input("azure+wrong", xr, {"values": wrong})
    assert src.stages == []  # a Fatal on the first call: nothing composed
    rsp_text = corpus.fatal_of(xr, {"values": wrong})
    assert 'input.spec.values.cilium.hubble.relay.enabled: is string "yes"' in rsp_text
    [cluster] = _clusters_with({}, example="azure")
    [release] = [r for r in cluster.releases if r["metadata"]["annotations"][helm.EXTERNAL_NAME] == "cilium"]
    broken = copy.deepcopy(release)
    broken["spec"]["forProvider"]["values"]["hubble"]["relay"]["enabled"] = "yes"
    with pytest.raises(helm.RenderError, match="/hubble/relay/enabled': got string, want boolean"):
        helm.template(helm.render_of(broken))


@pytest.fixture(scope="module")
def wiring_results(clusters: list[wiring.Cluster]) -> Callable[[str], tuple[int, list[str]]]:
    """(links checked, problems) of one wiring check over every cluster, run once per check."""
    done: dict[str, tuple[int, list[str]]] = {}

    def result(check: str) -> tuple[int, list[str]]:
        if check not in done:
            links, problems = 0, []
            for cluster in clusters:
                count, found = wiring.CHECKS[check](cluster)
                links += count
                problems += [f"{cluster.label}: {p}" for p in found]
            done[check] = (links, list(dict.fromkeys(problems)))
        return done[check]

    return result


@pytest.mark.parametrize("check", sorted(wiring.CHECKS))
def test_wiring(check: str, wiring_results: Callable[[str], tuple[int, list[str]]]) -> None:
    links, unique = wiring_results(check)
    assert not unique, f"{len(unique)} broken:\n" + "\n".join(unique[:30])
    assert links > 0, f"{check}: nothing to check"


def test_wrapped_kinds_have_their_crds(clusters: list[wiring.Cluster]) -> None:
    problems: list[str] = []
    for cluster in clusters:
        _, found = wiring.check_kinds_installed(cluster, BUILTIN_GROUPS)
        problems += [f"{cluster.label}: {p}" for p in found]
    unique = list(dict.fromkeys(problems))
    assert not unique, f"{len(unique)} broken:\n" + "\n".join(unique[:30])


def test_wiring_totals(
    clusters: list[wiring.Cluster], wiring_results: Callable[[str], tuple[int, list[str]]]
) -> None:
    """What the wiring checks covered: every cluster of every platform source, every check.

    Runs the checks itself (once per module, shared with ``test_wiring``), so it
    holds in any order and alone.
    """
    links = {check: wiring_results(check)[0] for check in sorted(wiring.CHECKS)}
    objects = sum(len(c.rendered) + len(c.wrapped) for c in clusters)
    line = (
        f"wiring: {len(clusters)} clusters, {objects} objects, links checked: "
        + ", ".join(f"{k} {v}" for k, v in links.items())
    )
    helm.record_total(line)
    # Every check found something to check somewhere in the corpus.
    assert not [k for k, v in links.items() if v == 0], links
    # Every cluster of every source's ready state that runs Releases is checked, with its charts rendered.
    expected = {s.label for s in corpus.cluster_states() if s.releases}
    assert {c.label for c in clusters} == expected
    assert not [c.label for c in clusters if not c.rendered or not c.releases]
    assert len(clusters) > 50


def test_loki_gets_every_nodes_container_logs() -> None:
    """Before the fix Loki was installed and nothing sent it a log line."""
    clusters = _clusters_with({}, example="production")
    _holds("log shipping", clusters)
    _holds("GPU taints", clusters)  # the agent is a node agent that tolerates the GPU taint
    agents = [a for c in clusters for a, _ in wiring._log_agents(c)]
    assert agents
    # the check fails when the agent is not there
    loki_clusters = [c for c in clusters if any(wiring._name(s) == "loki-gateway" for s in c.of_kind("Service"))]
    assert loki_clusters
    stripped = [
        dataclasses.replace(c, wrapped=[o for o in c.wrapped if o.get("kind") != "OpenTelemetryCollector" or o["spec"]["mode"] != "daemonset"])
        for c in loki_clusters
    ]
    _, found = _run("log shipping", stripped)
    assert any("no daemonset collector reads container logs" in p for p in found), found


def test_every_cloud_exports_gpu_metrics_to_the_stacks_prometheus() -> None:
    """Before the fix GKE's GPU nodes ran no DCGM exporter, so the GPU panels were empty there."""
    for example in ("aws", "azure", "gcp", "existing"):
        clusters = _clusters_with({}, example=example)
        _holds("GPU metrics", clusters)
        assert [ds for c in clusters for ds in wiring.gpu_exporters(c)], example
    # GKE without the exporter's Objects: the check fails
    gke = _clusters_with({}, example="gcp")
    stripped = [
        dataclasses.replace(c, wrapped=[o for o in c.wrapped if (o.get("metadata") or {}).get("name") != "dcgm-exporter"])
        for c in gke
    ]
    _, found = _run("GPU metrics", stripped)
    assert found and all("no DCGM exporter runs there (gcp)" in p for p in found), found
    # the operator's exporter without its ServiceMonitor is caught; and off GPU nodes
    unscraped = _clusters_with({"gpu-operator": {"dcgmExporter": {"serviceMonitor": {"enabled": False}}}}, example="azure")
    _, found = _run("GPU metrics", unscraped)
    assert any("nvidia-dcgm-exporter: its metrics port is scraped by no monitor" in p for p in found), found
    [cluster] = gke[:1]
    for ds in wiring.gpu_exporters(cluster):
        ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"][0]["matchExpressions"][0]["key"] = "example.com/not-a-gpu-label"
    _, found = _run("GPU metrics", [cluster])
    assert any("cannot run on a GPU node" in p for p in found), found


def test_gateway_wiring_follows_each_model_to_a_pod_port() -> None:
    """The gateway check holds, and fails when a Backend, a route's Gateway or a policy target is wrong."""
    clusters = _clusters_with({}, example="aws")
    _holds("model gateway", clusters)
    _holds("endpoints", clusters)  # the extension manager's and the Backends' fqdn forms

    def broken(kind: str, change: Callable[[dict[str, Any]], None]) -> list[str]:
        out = []
        for cluster in clusters:
            wrapped = copy.deepcopy(cluster.wrapped)
            for obj in wrapped:
                if obj.get("kind") == kind:
                    change(obj)
            out += wiring.CHECKS["model gateway"](dataclasses.replace(cluster, wrapped=wrapped))[1]
        return out

    def port(obj: dict[str, Any]) -> None:
        obj["spec"]["endpoints"][0]["fqdn"]["port"] = 8080

    def parent(obj: dict[str, Any]) -> None:
        obj["spec"]["parentRefs"][0]["name"] = "elsewhere"

    def target(obj: dict[str, Any]) -> None:
        obj["spec"]["targetRefs"][0]["name"] = "elsewhere"

    assert any("has no port 8080" in p for p in broken("Backend", port))
    assert any("parent Gateway elsewhere does not exist" in p for p in broken("AIGatewayRoute", parent))
    assert any("does not exist" in p for p in broken("ClientTrafficPolicy", target))


@pytest.mark.parametrize("example", ["gateway-teams", "gateway-oidc"])
def test_gateway_quota_buckets_count_the_authenticated_team_in_a_redis_that_serves(example: str) -> None:
    """Keys and JWT: each bucket's client header is set only by authentication (a caller's
    own removed first), each model bucket's model is routed, and the rate limit's Redis serves."""
    clusters = _clusters_with({}, example=example)
    count, problems = 0, []
    for cluster in clusters:
        links, found = wiring._check_quotas(cluster)
        count, problems = count + links, problems + found
    assert count >= 5 and not problems, (count, problems)  # 3 buckets: 4 headers, and Redis

    def broken(kind: str, change: Callable[[dict[str, Any]], None], values: dict[str, Any] | None = None) -> list[str]:
        out = []
        for cluster in _clusters_with(values or {}, example=example) if values else clusters:
            wrapped = copy.deepcopy(cluster.wrapped)
            for obj in wrapped:
                if obj.get("kind") == kind:
                    change(obj)
            out += wiring._check_quotas(dataclasses.replace(cluster, wrapped=wrapped))[1]
        return out

    def no_strip(obj: dict[str, Any]) -> None:
        del obj["spec"]["headers"]

    def unrouted(obj: dict[str, Any]) -> None:
        obj["spec"]["rateLimit"]["global"]["rules"][-1]["clientSelectors"][0]["headers"][-1]["value"] = "gone"

    def no_forward(obj: dict[str, Any]) -> None:
        for provider in (obj["spec"].get("jwt") or {}).get("providers") or []:
            del provider["claimToHeaders"]
        obj["spec"].get("apiKeyAuth", {}).pop("forwardClientIDHeader", None)

    assert any("can come from the caller" in p for p in broken("ClientTrafficPolicy", no_strip))
    assert any("bucket for model 'gone', which no route matches" in p for p in broken("BackendTrafficPolicy", unrouted))
    assert any("set by no authentication" in p for p in broken("SecurityPolicy", no_forward))
    wrong_redis = {"envoy-gateway": {"config": {"envoyGateway": {"rateLimit": {"backend": {"redis": {
        "url": "ollama-gateway-redis.envoy-gateway-system.svc.cluster.local:6380"}}}}}}}
    assert any("Redis" in p and "6380" in p for p in broken("Namespace", lambda o: None, wrong_redis))
