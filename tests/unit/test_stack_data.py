"""The storage and observability stacks: Releases, Objects, gates and values."""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest
import yaml

from function import wrap
from function.composed import Composed, Gate, Need
from function.context import MONITORING_NAMESPACE, OTEL_COLLECTOR_HOST, PROMETHEUS_ADDRESS
from function.models.input import DEFAULT_CHARTS
from function.stack import observability, storage
from tests import toolchain
from tests.factories import cluster_context

REPO = Path(__file__).resolve().parents[2]
CHART_SCHEMAS = Path(
    os.environ.get("OLLAMA_PLATFORM_CHART_SCHEMAS", REPO.parent / "shared" / "chart-schemas")
)
CRDS = Path(os.environ.get("OLLAMA_PLATFORM_CRDS", REPO.parent / "shared" / "crds"))

CLOUDS = ("aws", "gcp", "azure", "existing")
PROFILES = ("production", "development")
CLUSTER = "aws-1"


# --- helpers -----------------------------------------------------------------


ROOK_RELEASES = {"rook-ceph", "ceph-csi-drivers", "rook-ceph-cluster"}


def build(cloud: str = "aws", profile: str = "production", **components: str) -> list[Composed]:
    ctx = cluster_context(cloud, profile, components=components or None)
    return storage.build(ctx) + observability.build(ctx)


def by_key(items: list[Composed]) -> dict[str, Composed]:
    out = {c.key: c for c in items}
    assert len(out) == len(items), "duplicate keys"
    return out


def release(items: list[Composed], component: str, cluster: str = CLUSTER) -> Composed:
    return by_key(items)[wrap.release_key(cluster, component)]


def obj(items: list[Composed], name: str, cluster: str = CLUSTER) -> Composed:
    return by_key(items)[wrap.object_key(cluster, name)]


def values(c: Composed) -> dict[str, Any]:
    return c.body["spec"]["forProvider"]["values"]  # type: ignore[no-any-return]


def manifest(c: Composed) -> dict[str, Any]:
    return c.body["spec"]["forProvider"]["manifest"]  # type: ignore[no-any-return]


def ready(component: str, cluster: str = CLUSTER) -> Gate:
    return Gate(wrap.release_key(cluster, component), Need.READY)


def release_components(items: list[Composed]) -> set[str]:
    return {
        c.body["metadata"]["annotations"]["crossplane.io/external-name"]
        for c in items
        if c.kind == "Release"
    }


def object_kinds(items: list[Composed]) -> list[str]:
    return sorted(manifest(c)["kind"] for c in items if c.kind == "Object")


def _drop_required(node: Any) -> Any:
    """A schema that checks the keys and types given, without demanding the chart's defaults."""
    if isinstance(node, dict):
        return {
            k: _drop_required(v)
            for k, v in node.items()
            if not (k == "required" and isinstance(v, list))
        }
    if isinstance(node, list):
        return [_drop_required(v) for v in node]
    return node


def chart_schema(name: str) -> dict[str, Any]:
    path = CHART_SCHEMAS / name
    if not path.is_file():
        toolchain.missing(f"chart schema {path} not present (set OLLAMA_PLATFORM_CHART_SCHEMAS)")
    return _drop_required(json.loads(path.read_text()))  # type: ignore[no-any-return]


def validate_values(schema: dict[str, Any], instance: dict[str, Any]) -> None:
    cls = jsonschema.validators.validator_for(schema)
    errors = sorted(cls(schema).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def _strict(node: Any) -> Any:
    """An OpenAPI v3 CRD schema as JSON Schema that rejects unknown fields, like the API server."""
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd(path: str) -> tuple[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((CRDS / path).read_text(), Loader=loader)  # noqa: S506  # a safe loader
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    api_version = f"{crd['spec']['group']}/{version['name']}"
    return api_version, jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def crd_validator(path: str) -> tuple[str, Any]:
    """The storage version of the CRD at ``CRDS/path`` and a strict validator for it."""
    if not (CRDS / path).is_file():
        toolchain.missing(f"CRD {CRDS / path} not present (set OLLAMA_PLATFORM_CRDS)")
    return _crd(path)


def validate_crd(path: str, resource: dict[str, Any]) -> None:
    api_version, validator = crd_validator(path)
    assert resource["apiVersion"] == api_version
    errors = list(validator.iter_errors(resource))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


# --- common properties -------------------------------------------------------


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("profile", PROFILES)
def test_releases_use_catalogue_charts_and_every_ready_gate_waits(cloud: str, profile: str) -> None:
    items = build(cloud, profile, objectStorage="minio")
    keys = by_key(items)
    for c in items:
        if c.kind == "Release":
            component = c.body["metadata"]["annotations"]["crossplane.io/external-name"]
            chart = c.body["spec"]["forProvider"]["chart"]["name"]
            assert chart in {spec[1] for spec in DEFAULT_CHARTS.values()}, component
        for gate in c.gates:
            if gate.key.startswith(f"{cloud}-1-providerconfig-"):
                continue
            assert gate.key in keys, f"{c.key} waits for {gate.key}, which is not composed"
            if gate.need is Need.READY and keys[gate.key].kind == "Release":
                assert keys[gate.key].body["spec"]["forProvider"].get("wait") is True, gate.key


def test_deterministic() -> None:
    for cloud in CLOUDS:
        for profile in PROFILES:
            first = [(c.key, c.body, c.gates) for c in build(cloud, profile)]
            second = [(c.key, c.body, c.gates) for c in build(cloud, profile)]
            assert json.dumps(first, default=str) == json.dumps(second, default=str)


def test_in_cluster_wrapping_applies() -> None:
    for c in build("gcp", "production"):
        spec = c.body["spec"]
        assert spec["managementPolicies"] == wrap.IN_CLUSTER_MANAGEMENT_POLICIES
        assert spec["providerConfigRef"]["name"]
        assert "name" not in c.body["metadata"]


# --- block storage -----------------------------------------------------------


def test_rook_ceph_releases_and_gates() -> None:
    items = build(blockStorage="rook-ceph", objectStorage="cloud", observability="none")
    assert release_components(items) == ROOK_RELEASES
    operator = release(items, "rook-ceph")
    drivers = release(items, "ceph-csi-drivers")
    cluster = release(items, "rook-ceph-cluster")
    for r in (operator, drivers, cluster):
        assert r.body["spec"]["forProvider"]["namespace"] == "rook-ceph"
        assert r.body["spec"]["forProvider"]["wait"] is True
    # Rook v1.20: the drivers chart after the operator (its CRDs), the cluster after both.
    assert ready("rook-ceph") in drivers.gates
    assert ready("rook-ceph") in cluster.gates
    assert ready("ceph-csi-drivers") in cluster.gates
    assert ready("kube-prometheus-stack") not in cluster.gates
    assert values(cluster)["monitoring"] == {"enabled": False}


def test_rook_ceph_monitoring_waits_for_prometheus_crds() -> None:
    items = build(blockStorage="rook-ceph", observability="metrics")
    cluster = release(items, "rook-ceph-cluster")
    assert ready("kube-prometheus-stack") in cluster.gates
    assert values(cluster)["monitoring"] == {"enabled": True}
    assert values(release(items, "rook-ceph"))["monitoring"] == {"enabled": True}


def test_rook_ceph_carries_the_seed_cluster_spec() -> None:
    spec = values(release(build("aws", "production"), "rook-ceph-cluster"))["cephClusterSpec"]
    assert spec["dataDirHostPath"] == "/var/lib/rook"
    assert spec["mon"]["count"] == 3
    assert spec["mon"]["allowMultiplePerNode"] is False
    assert spec["dashboard"] == {"enabled": True, "ssl": True}
    assert spec["storage"]["config"]["osdsPerDevice"] == "1"
    # storeType moved to storage.store.type; FileStore journals are gone.
    assert "storeType" not in spec["storage"]["config"]
    assert "journalSizeMB" not in spec["storage"]["config"]
    assert spec["storage"]["store"] == {"type": "bluestore"}
    # The chart supplies cephVersion from cephImage.
    assert "cephVersion" not in spec


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "existing"])
def test_rook_ceph_cluster_spec_is_valid_for_the_crd(cloud: str) -> None:
    validate_crd(
        "rook/ceph.rook.io_cephclusters.yaml",
        {
            "apiVersion": "ceph.rook.io/v1",
            "kind": "CephCluster",
            "metadata": {"name": "rook-ceph", "namespace": "rook-ceph"},
            "spec": storage.ceph_cluster_spec(cluster_context(cloud)),
        },
    )


def test_rook_ceph_block_pool_and_storage_class() -> None:
    v = values(release(build(), "rook-ceph-cluster"))
    [pool] = v["cephBlockPools"]
    assert pool["spec"]["replicated"] == {"size": 3}
    assert pool["storageClass"]["enabled"] is True
    assert pool["storageClass"]["name"] == "rook-ceph-block"
    assert cluster_context().components.storage_class() == "rook-ceph-block"
    # Helm replaces lists: the entry must carry the CSI secrets itself.
    params = pool["storageClass"]["parameters"]
    assert params["csi.storage.k8s.io/provisioner-secret-name"] == "rook-csi-rbd-provisioner"
    assert params["csi.storage.k8s.io/node-stage-secret-namespace"] == "rook-ceph"
    assert v["cephFileSystems"] == []
    assert v["cephObjectStores"] == []
    validate_crd(
        "rook/ceph.rook.io_cephblockpools.yaml",
        {
            "apiVersion": "ceph.rook.io/v1",
            "kind": "CephBlockPool",
            "metadata": {"name": pool["name"], "namespace": "rook-ceph"},
            "spec": pool["spec"],
        },
    )


@pytest.mark.parametrize(("profile", "replicas"), [("production", 3), ("development", 1)])
def test_longhorn(profile: str, replicas: int) -> None:
    items = build("existing", profile, blockStorage="longhorn", observability="none")
    assert release_components(items) == {"longhorn"}
    r = release(items, "longhorn", "existing-1")
    fp = r.body["spec"]["forProvider"]
    assert fp["namespace"] == "longhorn-system"
    assert fp["wait"] is True
    assert fp["values"]["persistence"]["defaultClassReplicaCount"] == replicas
    assert fp["values"]["defaultSettings"]["defaultReplicaCount"] == replicas
    ctx = cluster_context("existing", profile, components={"blockStorage": "longhorn"})
    assert ctx.components.storage_class() == storage.LONGHORN_STORAGE_CLASS == "longhorn"


def test_block_storage_none() -> None:
    items = build(blockStorage="none", objectStorage="cloud", observability="none")
    assert items == []


def test_development_defaults_to_longhorn() -> None:
    comps = release_components(build("aws", "development"))
    assert "longhorn" in comps
    assert not comps & {"rook-ceph", "rook-ceph-cluster"}


# --- object storage ----------------------------------------------------------


def test_minio_releases_and_gates() -> None:
    items = build(objectStorage="minio")
    operator = release(items, "minio-operator")
    tenant = release(items, "minio-tenant")
    assert operator.body["spec"]["forProvider"]["namespace"] == "minio-operator"
    assert operator.body["spec"]["forProvider"]["wait"] is True
    assert tenant.body["spec"]["forProvider"]["namespace"] == "minio-tenant"
    assert ready("minio-operator") in tenant.gates
    assert ready("rook-ceph-cluster") in tenant.gates
    chart = tenant.body["spec"]["forProvider"]["chart"]
    assert (chart["repository"], chart["name"], chart["version"]) == DEFAULT_CHARTS["minio-tenant"]


def test_minio_tenant_carries_the_seed_tenant() -> None:
    tenant = values(release(build(objectStorage="minio"), "minio-tenant"))["tenant"]
    [pool] = tenant["pools"]
    assert (pool["servers"], pool["volumesPerServer"], pool["size"]) == (4, 4, "1Ti")
    assert pool["storageClassName"] == "rook-ceph-block"
    # prometheusOperator mode edits the Helm-owned Prometheus and errors every reconcile.
    assert tenant["prometheusOperator"] is False


def test_minio_credentials_come_from_a_named_secret() -> None:
    v = values(release(build(objectStorage="minio"), "minio-tenant"))
    secret = v["tenant"]["configSecret"]
    assert secret["name"] == storage.MINIO_CONFIG_SECRET
    assert secret["existingSecret"] is True
    assert secret["accessKey"] == secret["secretKey"] == ""
    assert "secrets" not in v
    assert "configuration" not in v["tenant"]


def test_minio_on_longhorn_in_development() -> None:
    items = build("existing", "development", objectStorage="minio")
    tenant = release(items, "minio-tenant", "existing-1")
    assert values(tenant)["tenant"]["pools"][0]["storageClassName"] == "longhorn"
    assert ready("longhorn", "existing-1") in tenant.gates


def test_minio_without_prometheus() -> None:
    tenant = release(build(objectStorage="minio", observability="none"), "minio-tenant")
    assert values(tenant)["tenant"]["prometheusOperator"] is False


def test_minio_tenant_shape_is_valid_for_the_crd() -> None:
    tenant = values(release(build(objectStorage="minio"), "minio-tenant"))["tenant"]
    pools = [
        {
            "name": p["name"],
            "servers": p["servers"],
            "volumesPerServer": p["volumesPerServer"],
            "volumeClaimTemplate": {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": p["storageClassName"],
                    "resources": {"requests": {"storage": p["size"]}},
                },
            },
            "securityContext": p["securityContext"],
            "containerSecurityContext": p["containerSecurityContext"],
        }
        for p in tenant["pools"]
    ]
    validate_crd(
        "minio/minio.min.io_tenants.yaml",
        {
            "apiVersion": "minio.min.io/v2",
            "kind": "Tenant",
            "metadata": {"name": tenant["name"], "namespace": "minio-tenant"},
            "spec": {
                "configuration": {"name": tenant["configSecret"]["name"]},
                "pools": pools,
                "prometheusOperator": tenant["prometheusOperator"],
            },
        },
    )


def test_ceph_object_store() -> None:
    items = build(blockStorage="rook-ceph", objectStorage="rook-ceph", observability="none")
    store = obj(items, "ceph-object-store")
    m = manifest(store)
    assert m["apiVersion"] == "ceph.rook.io/v1"
    assert m["kind"] == "CephObjectStore"
    assert m["metadata"] == {"name": "ollama-models", "namespace": "rook-ceph"}
    assert m["spec"]["metadataPool"]["replicated"] == {"size": 3}
    assert m["spec"]["dataPool"]["replicated"] == {"size": 3}
    assert m["spec"]["gateway"] == {"port": 80, "instances": 1}
    assert ready("rook-ceph-cluster") in store.gates
    validate_crd("rook/ceph.rook.io_cephobjectstores.yaml", m)


@pytest.mark.parametrize("choice", ["cloud", "none"])
def test_object_storage_cloud_or_none_adds_nothing(choice: str) -> None:
    items = build(blockStorage="rook-ceph", objectStorage=choice, observability="none")
    assert release_components(items) == ROOK_RELEASES
    assert object_kinds(items) == []


def test_existing_clusters_have_no_cloud_object_storage() -> None:
    items = build("existing", "production", observability="none")
    assert release_components(items) == ROOK_RELEASES


# --- observability -----------------------------------------------------------

FULL_RELEASES = {
    "opentelemetry-operator",
    "kube-prometheus-stack",
    "grafana-operator",
    "loki",
    "jaeger",
}


def only_observability(cloud: str = "aws", profile: str = "production", **c: str) -> list[Composed]:
    return build(cloud, profile, blockStorage="none", objectStorage="none", **c)


def test_observability_none() -> None:
    assert only_observability(observability="none") == []


def test_observability_metrics() -> None:
    items = only_observability(observability="metrics")
    assert release_components(items) == {"kube-prometheus-stack", "grafana-operator"}
    assert object_kinds(items) == ["Grafana", "GrafanaDashboard", "GrafanaDatasource"]
    assert (
        manifest(obj(items, "grafana-datasource-prometheus"))["spec"]["datasource"]["type"]
        == "prometheus"
    )


def test_observability_full() -> None:
    items = only_observability(observability="full")
    assert release_components(items) == FULL_RELEASES
    assert object_kinds(items) == [
        "Grafana",
        "GrafanaDashboard",
        "GrafanaDatasource",
        "GrafanaDatasource",
        "GrafanaDatasource",
        "OpenTelemetryCollector",  # the collector (deployment)
        "OpenTelemetryCollector",  # the node log agent (daemonset)
    ]
    agent = obj(items, "otel-logs")
    assert manifest(agent)["spec"]["mode"] == "daemonset"
    validate_crd("otel/opentelemetry.io_opentelemetrycollectors.yaml", manifest(agent))
    for component in FULL_RELEASES - {"opentelemetry-operator"}:
        assert release(items, component).body["spec"]["forProvider"]["namespace"] == (
            MONITORING_NAMESPACE
        )
    ns = release(items, "opentelemetry-operator").body["spec"]["forProvider"]["namespace"]
    assert ns == "opentelemetry-operator-system"


def test_profiles_choose_observability() -> None:
    assert release_components(only_observability("gcp", "production")) == FULL_RELEASES
    assert release_components(only_observability("gcp", "development")) == {
        "kube-prometheus-stack",
        "grafana-operator",
    }


def test_otel_operator_values_are_valid_for_the_chart_schema() -> None:
    items = only_observability()
    v = values(release(items, "opentelemetry-operator"))
    assert v["manager"]["collectorImage"]["repository"]
    assert v["manager"]["collectorImage"]["tag"]
    assert v["admissionWebhooks"]["certManager"]["enabled"] is False
    assert v["admissionWebhooks"]["autoGenerateCert"]["enabled"] is True
    assert release(items, "opentelemetry-operator").body["spec"]["forProvider"]["wait"] is True
    validate_values(chart_schema("opentelemetry-operator-0.122.0.values.schema.json"), v)


def test_otel_values_schema_check_catches_typos() -> None:
    schema = chart_schema("opentelemetry-operator-0.122.0.values.schema.json")
    bad = copy.deepcopy(observability.otel_operator_values())
    bad["manager"]["collectorImage"]["repo"] = "x"
    with pytest.raises(AssertionError):
        validate_values(schema, bad)


def test_otel_collector() -> None:
    items = only_observability()
    collector = obj(items, "otel-collector")
    m = manifest(collector)
    assert m["kind"] == "OpenTelemetryCollector"
    assert m["spec"]["mode"] == "deployment"
    assert f"{m['metadata']['name']}-collector.{m['metadata']['namespace']}.svc" == (
        OTEL_COLLECTOR_HOST
    )
    assert ready("opentelemetry-operator") in collector.gates
    assert ready("kube-prometheus-stack") in collector.gates
    validate_crd("otel/opentelemetry.io_opentelemetrycollectors.yaml", m)


def test_otel_collector_pipelines() -> None:
    config = manifest(obj(only_observability(), "otel-collector"))["spec"]["config"]
    assert isinstance(config, dict)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["processors"]["memory_limiter"] == {"check_interval": "1s", "limit_mib": 1000}
    assert config["processors"]["batch"] == {"timeout": "1s", "send_batch_size": 1024}
    exporters = config["exporters"]
    assert set(exporters) == {"prometheus", "otlphttp/loki", "otlp/jaeger"}
    assert "jaeger" not in exporters
    assert "loki" not in exporters
    assert exporters["prometheus"]["endpoint"] == "0.0.0.0:8889"
    assert exporters["otlphttp/loki"]["endpoint"] == "http://loki-gateway.monitoring.svc/otlp"
    assert exporters["otlp/jaeger"]["tls"] == {"insecure": True}
    assert exporters["otlp/jaeger"]["endpoint"] == observability.JAEGER_OTLP_ENDPOINT
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"metrics", "logs", "traces"}
    expected = {"metrics": "prometheus", "logs": "otlphttp/loki", "traces": "otlp/jaeger"}
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["processors"] == ["memory_limiter", "batch"]
        assert pipeline["exporters"] == [expected[name]]


def test_kube_prometheus_stack() -> None:
    items = only_observability("aws", "production", cni="cilium")
    r = release(items, "kube-prometheus-stack")
    v = values(r)
    assert r.body["spec"]["forProvider"]["wait"] is True
    # Release name kube-prometheus-stack, fullname pinned: <fullname>-prometheus.monitoring.
    host = f"{v['fullnameOverride']}-prometheus.{MONITORING_NAMESPACE}.svc"
    assert PROMETHEUS_ADDRESS == f"http://{host}:9090"
    assert v["grafana"] == {"enabled": False}
    spec = v["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert v["kubeControllerManager"] == {"enabled": False}
    assert v["kubeProxy"] == {"enabled": False}


def test_kube_prometheus_stack_on_existing_clusters_scrapes_the_control_plane() -> None:
    v = values(
        release(
            only_observability("existing", "development", cni="none"),
            "kube-prometheus-stack",
            "existing-1",
        )
    )
    assert "kubeControllerManager" not in v
    assert "kubeProxy" not in v


def test_grafana_objects() -> None:
    items = only_observability()
    grafana = manifest(obj(items, "grafana"))
    assert grafana["metadata"]["labels"] == {"dashboards": "ollama"}
    validate_crd("grafana/grafana.integreatly.org_grafanas.yaml", grafana)
    assert release(items, "grafana-operator").body["spec"]["forProvider"]["wait"] is True
    urls = {}
    for name in ("prometheus", "loki", "jaeger"):
        ds = obj(items, f"grafana-datasource-{name}")
        m = manifest(ds)
        assert ready("grafana-operator") in ds.gates
        assert m["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "ollama"}}
        urls[name] = m["spec"]["datasource"]["url"]
        validate_crd("grafana/grafana.integreatly.org_grafanadatasources.yaml", m)
    assert urls["prometheus"] == PROMETHEUS_ADDRESS
    assert urls["loki"] == observability.LOKI_URL
    assert urls["jaeger"] == observability.JAEGER_QUERY_URL
    assert ready("grafana-operator") in obj(items, "grafana").gates


@pytest.mark.parametrize(
    ("mesh", "metric"),
    [("istio", "istio_requests_total"), ("linkerd", "request_total"), ("none", None)],
)
def test_gpu_dashboard(mesh: str, metric: str | None) -> None:
    items = only_observability(mesh=mesh)
    dashboard = obj(items, "grafana-dashboard-ollama-gpu")
    m = manifest(dashboard)
    assert m["metadata"]["name"] == "ollama-gpu"
    assert ready("grafana-operator") in dashboard.gates
    validate_crd("grafana/grafana.integreatly.org_grafanadashboards.yaml", m)
    board = json.loads(m["spec"]["json"])
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert any("DCGM_FI_DEV_GPU_UTIL" in e for e in exprs)
    assert any("DCGM_FI_DEV_FB_USED" in e for e in exprs)
    metrics = [p for p in board["panels"] if p["type"] != "logs"]
    if metric:
        assert any(metric in e for e in exprs)
        assert len(metrics) == 3
    else:
        assert len(metrics) == 2
    for p in metrics:
        assert p["datasource"]["uid"] == observability.PROMETHEUS_DATASOURCE_UID
    # production observability is full: the models' logs from Loki beside the metrics
    [logs] = [p for p in board["panels"] if p["type"] == "logs"]
    assert logs["datasource"] == {"type": "loki", "uid": "loki"}
    assert logs["targets"][0]["expr"] == '{k8s_namespace_name=~"ollama-.+"}'


def test_loki_values_are_valid_for_the_chart_schema() -> None:
    r = release(only_observability(), "loki")
    v = values(r)
    assert r.body["spec"]["forProvider"]["chart"]["name"] == DEFAULT_CHARTS["loki"][1]
    assert v["deploymentMode"] == "Monolithic"
    assert v["loki"]["storage"]["type"] == "filesystem"
    assert v["singleBinary"]["replicas"] == 1
    assert all(v[t]["replicas"] == 0 for t in ("read", "write", "backend"))
    assert v["loki"]["commonConfig"]["replication_factor"] == 1
    validate_values(chart_schema("loki-18.11.0.values.schema.json"), v)


def test_jaeger_all_in_one_takes_otlp() -> None:
    v = values(release(only_observability(), "jaeger"))
    assert v["jaeger"] == {"enabled": True}
    # Chart 4.x: no provisionDataStore; storage.* configures only the Spark and
    # Elasticsearch jobs (cassandra | elasticsearch), the all-in-one keeps traces in memory.
    assert "provisionDataStore" not in v
    assert "storage" not in v
    assert observability.JAEGER_OTLP_ENDPOINT == (
        f"{v['fullnameOverride']}.{MONITORING_NAMESPACE}.svc:4317"
    )


def test_crd_check_rejects_unknown_fields() -> None:
    # The seed's storeType, placed as a storage field, is not a CephCluster field.
    seed = storage.ceph_cluster_spec(cluster_context("existing"))
    seed["storage"]["storeType"] = "bluestore"
    with pytest.raises(AssertionError, match="storeType"):
        validate_crd(
            "rook/ceph.rook.io_cephclusters.yaml",
            {"apiVersion": "ceph.rook.io/v1", "kind": "CephCluster", "metadata": {}, "spec": seed},
        )
