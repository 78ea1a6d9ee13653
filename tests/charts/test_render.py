"""Every Release of every example, profile and stage, rendered by helm with its real chart.

For each chart, every distinct set of values the function emits is rendered
with ``helm template`` (release name = external name, its namespace, valuesFrom
then values), and must render without error, use only values keys the chart
reads, fit the chart's published values schema where one exists, and produce
manifests valid against the Kubernetes schemas and the CRDs.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from function import naming
from function.models.input import DEFAULT_CHARTS
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
    """Print what was rendered and checked (and assert the corpus is not trivially small)."""
    distinct = [d for ds in by_chart.values() for d in ds]
    objects = 0
    for d in distinct:
        try:
            objects += len(helm.template(d.render))
        except helm.RenderError:
            continue
    releases = rendered.release_count()
    line = (
        f"charts: {len(by_chart)} charts, {releases} Releases rendered "
        f"({len(distinct)} distinct renders), {objects} objects checked, "
        f"{time.monotonic() - STARTED:.1f}s"
    )
    helm.record_total(line)
    assert len(by_chart) == len(CHART_NAMES)
    assert releases > len(distinct) > len(CHART_NAMES)


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


@pytest.mark.parametrize("check", sorted(wiring.CHECKS))
def test_wiring(check: str, clusters: list[wiring.Cluster]) -> None:
    problems: list[str] = []
    links = 0
    for cluster in clusters:
        count, found = wiring.CHECKS[check](cluster)
        links += count
        problems += [f"{cluster.label}: {p}" for p in found]
    unique = list(dict.fromkeys(problems))
    assert not unique, f"{len(unique)} broken:\n" + "\n".join(unique[:30])
    assert links > 0, f"{check}: nothing to check"
    WIRING[check] = links


def test_wrapped_kinds_have_their_crds(clusters: list[wiring.Cluster]) -> None:
    problems: list[str] = []
    for cluster in clusters:
        _, found = wiring.check_kinds_installed(cluster, BUILTIN_GROUPS)
        problems += [f"{cluster.label}: {p}" for p in found]
    unique = list(dict.fromkeys(problems))
    assert not unique, f"{len(unique)} broken:\n" + "\n".join(unique[:30])


WIRING: dict[str, int] = {}


def test_wiring_totals(clusters: list[wiring.Cluster]) -> None:
    objects = sum(len(c.rendered) + len(c.wrapped) for c in clusters)
    line = (
        f"wiring: {len(clusters)} clusters, {objects} objects, links checked: "
        + ", ".join(f"{k} {v}" for k, v in sorted(WIRING.items()))
    )
    helm.record_total(line)
    assert len(clusters) > 50
