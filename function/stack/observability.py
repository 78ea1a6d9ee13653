"""In-cluster observability: OpenTelemetry, Prometheus, Grafana, Loki and Jaeger.

``full`` installs the OpenTelemetry operator with one collector
(``otel-collector.monitoring.svc``: OTLP in, Prometheus / Loki / Jaeger out) and a
log agent on every node (``otel-logs``, a collector in daemonset mode that reads
the container logs under ``/var/log/pods`` and ships them to Loki),
kube-prometheus-stack, the Grafana operator with a Grafana, its data sources and
the Ollama GPU dashboard, Loki (monolithic, filesystem) and Jaeger (all-in-one,
in memory). ``metrics`` installs only kube-prometheus-stack and Grafana with the
Prometheus data source and the dashboard. ``none`` installs nothing.

The seed's collector exported with ``jaeger`` (removed from the collector) and
``loki`` (deprecated); traces now go to Jaeger over OTLP and logs to Loki's OTLP
endpoint, and ``memory_limiter`` runs before ``batch`` in every pipeline.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from function import wrap
from function.composed import Composed, Gate, Need
from function.context import (
    MONITORING_NAMESPACE,
    OTEL_COLLECTOR_HOST,
    PROMETHEUS_ADDRESS,
    ClusterContext,
)
from function.models.common import Cloud, Cni, Distribution, Mesh, Observability

OTEL_OPERATOR_NAMESPACE = "opentelemetry-operator-system"
# The operator names the collector's Service ``<name>-collector``: otel-collector.
OTEL_COLLECTOR_NAME = OTEL_COLLECTOR_HOST.split(".", 1)[0].removesuffix("-collector")
# The collector image the operator runs; the operator and the collector are
# released in step (opentelemetry-operator chart 0.122.0 ships operator 0.158.0).
OTEL_COLLECTOR_IMAGE = (
    "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector-contrib"
)
OTEL_COLLECTOR_TAG = "0.158.0"

# kube-prometheus-stack's Prometheus Service is ``<fullname>-prometheus``.
KPS_FULLNAME = "kube-prometheus-stack"

GRAFANA_NAME = "grafana"
GRAFANA_INSTANCE_LABELS = {"dashboards": "ollama"}

# Loki's gateway fronts the monolithic Loki; Loki takes OTLP logs under /otlp.
LOKI_URL = f"http://loki-gateway.{MONITORING_NAMESPACE}.svc"
LOKI_OTLP_ENDPOINT = f"{LOKI_URL}/otlp"
# The Jaeger chart's all-in-one Service carries OTLP (4317) and the query API (16686).
JAEGER_FULLNAME = "jaeger"
JAEGER_OTLP_ENDPOINT = f"{JAEGER_FULLNAME}.{MONITORING_NAMESPACE}.svc:4317"
JAEGER_QUERY_URL = f"http://{JAEGER_FULLNAME}.{MONITORING_NAMESPACE}.svc:16686"

PROMETHEUS_DATASOURCE_UID = "prometheus"
LOKI_DATASOURCE_UID = "loki"  # the data source's uid is its name (grafana_datasource_manifest)
DASHBOARD_NAME = "ollama-gpu"

# Clusters whose control plane the cloud runs: their scheduler, controller
# manager and etcd cannot be scraped.
MANAGED_CLOUDS = frozenset({Cloud.AWS, Cloud.GCP, Cloud.AZURE})


def _ready(ctx: ClusterContext, component: str) -> Gate:
    return Gate(wrap.release_key(ctx.name, component), Need.READY)


# --- OpenTelemetry -----------------------------------------------------------


def otel_operator_values() -> dict[str, Any]:
    """Values of the opentelemetry-operator chart (cert-manager is not installed)."""
    return {
        "manager": {
            "collectorImage": {"repository": OTEL_COLLECTOR_IMAGE, "tag": OTEL_COLLECTOR_TAG},
        },
        "admissionWebhooks": {
            "certManager": {"enabled": False},
            "autoGenerateCert": {"enabled": True},
        },
    }


def otel_collector_config() -> dict[str, Any]:
    """Build the collector pipeline: the seed's receivers and exporters, modernised."""
    processors = ["memory_limiter", "batch"]
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "0.0.0.0:4317"},
                    "http": {"endpoint": "0.0.0.0:4318"},
                }
            }
        },
        "processors": _limited(1000),
        "exporters": {
            "prometheus": {"endpoint": "0.0.0.0:8889"},
            "otlphttp/loki": {"endpoint": LOKI_OTLP_ENDPOINT},
            "otlp/jaeger": {"endpoint": JAEGER_OTLP_ENDPOINT, "tls": {"insecure": True}},
        },
        "service": {
            "pipelines": {
                "metrics": {
                    "receivers": ["otlp"],
                    "processors": list(processors),
                    "exporters": ["prometheus"],
                },
                "logs": {
                    "receivers": ["otlp"],
                    "processors": list(processors),
                    "exporters": ["otlphttp/loki"],
                },
                "traces": {
                    "receivers": ["otlp"],
                    "processors": list(processors),
                    "exporters": ["otlp/jaeger"],
                },
            }
        },
    }


def _collector(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An OpenTelemetryCollector in the monitoring namespace (v1beta1: ``config`` is an object)."""
    return {
        "apiVersion": "opentelemetry.io/v1beta1",
        "kind": "OpenTelemetryCollector",
        "metadata": {"name": name, "namespace": MONITORING_NAMESPACE},
        "spec": spec,
    }


def _limited(limit_mib: int) -> dict[str, Any]:
    """The processors every pipeline runs: ``memory_limiter`` at ``limit_mib``, then ``batch``."""
    return {
        "memory_limiter": {"check_interval": "1s", "limit_mib": limit_mib},
        "batch": {"timeout": "1s", "send_batch_size": 1024},
    }


def otel_collector_manifest() -> dict[str, Any]:
    """Build the OpenTelemetryCollector that receives OTLP."""
    return _collector(
        OTEL_COLLECTOR_NAME,
        {
            "mode": "deployment",
            # ServiceMonitors for the collector and its prometheus exporter, so
            # Prometheus scrapes the metrics the collector receives.
            "observability": {"metrics": {"enableMetrics": True}},
            # Above memory_limiter's 1000 MiB, so the limiter acts before the OOM killer.
            "resources": {
                "requests": {"cpu": "200m", "memory": "512Mi"},
                "limits": {"memory": "1200Mi"},
            },
            "config": otel_collector_config(),
        },
    )


# The node log agent: the kubelet writes every container's log under
# /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log (CRI format).
LOG_AGENT_NAME = "otel-logs"
POD_LOGS = "/var/log/pods"


def log_agent_config() -> dict[str, Any]:
    """The node agent's pipeline: container log files -> Loki's OTLP endpoint.

    The ``container`` operator parses the CRI line format and sets
    ``k8s.namespace.name``, ``k8s.pod.name``, ``k8s.container.name`` and the pod
    uid from the file's path, which Loki indexes as labels (``k8s_namespace_name``
    ...); no API access is needed. The agent's own logs are left out, and files
    are read from their end, so a restart does not ship old lines twice.
    """
    own = f"{POD_LOGS}/{MONITORING_NAMESPACE}_{LOG_AGENT_NAME}-collector-*/*/*.log"
    return {
        "receivers": {
            "filelog": {
                "include": [f"{POD_LOGS}/*/*/*.log"],
                "exclude": [own],
                "start_at": "end",
                "include_file_path": True,
                "include_file_name": False,
                "operators": [{"type": "container", "id": "container-parser"}],
            }
        },
        "processors": _limited(200),
        "exporters": {"otlphttp/loki": {"endpoint": LOKI_OTLP_ENDPOINT}},
        "service": {
            "pipelines": {
                "logs": {
                    "receivers": ["filelog"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": ["otlphttp/loki"],
                }
            }
        },
    }


def log_agent_manifest() -> dict[str, Any]:
    """The node log agent: a collector on every node, GPU and otherwise tainted ones included.

    It tolerates every taint (a log agent belongs on every node) and reads the
    host's pod logs read-only, as root: the kubelet writes them owned by root.
    """
    return _collector(
        LOG_AGENT_NAME,
        {
            "mode": "daemonset",
            "tolerations": [{"operator": "Exists"}],
            "securityContext": {
                "runAsUser": 0,
                "runAsGroup": 0,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumes": [{"name": "pod-logs", "hostPath": {"path": POD_LOGS}}],
            "volumeMounts": [{"name": "pod-logs", "mountPath": POD_LOGS, "readOnly": True}],
            # Above memory_limiter's 200 MiB, so the limiter acts before the OOM killer.
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"memory": "300Mi"},
            },
            "config": log_agent_config(),
        },
    )


def _otel(ctx: ClusterContext) -> list[Composed]:
    operator = wrap.release(
        ctx,
        "opentelemetry-operator",
        chart="opentelemetry-operator",
        namespace=OTEL_OPERATOR_NAMESPACE,
        values=otel_operator_values(),
        wait=True,
    )
    # kube-prometheus-stack brings the monitoring namespace and the ServiceMonitor
    # CRD the operator writes to. Loki need not be up (the log agent retries), so
    # logs never hold the stack back.
    after = (_ready(ctx, "opentelemetry-operator"), _ready(ctx, "kube-prometheus-stack"))
    collector = wrap.k8s_object(ctx, "otel-collector", otel_collector_manifest(), after=after)
    agent = wrap.k8s_object(ctx, "otel-logs", log_agent_manifest(), after=after)
    return [operator, collector, agent]


# --- Prometheus --------------------------------------------------------------


def kube_prometheus_stack_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of kube-prometheus-stack: Prometheus at PROMETHEUS_ADDRESS, no bundled Grafana."""
    values: dict[str, Any] = {
        "fullnameOverride": KPS_FULLNAME,
        # Grafana comes from the Grafana operator.
        "grafana": {"enabled": False},
        "prometheus": {
            "prometheusSpec": {
                # Select every ServiceMonitor, PodMonitor and rule, not only the
                # ones labelled with this release.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
            }
        },
    }
    if ctx.cloud in MANAGED_CLOUDS or ctx.distribution is Distribution.K3S:
        # Managed control planes cannot be scraped; K3s runs its control plane
        # in one process that exposes none of these endpoints by default.
        values["kubeControllerManager"] = {"enabled": False}
        values["kubeScheduler"] = {"enabled": False}
        values["kubeEtcd"] = {"enabled": False}
    if ctx.components.cni is Cni.CILIUM or ctx.distribution is Distribution.K3S:
        # Cilium replaces kube-proxy; K3s's kube-proxy is in-process too.
        values["kubeProxy"] = {"enabled": False}
    return values


def _prometheus(ctx: ClusterContext) -> list[Composed]:
    return [
        wrap.release(
            ctx,
            "kube-prometheus-stack",
            chart="kube-prometheus-stack",
            namespace=MONITORING_NAMESPACE,
            values=kube_prometheus_stack_values(ctx),
            wait=True,
        )
    ]


# --- Grafana -----------------------------------------------------------------


def grafana_manifest() -> dict[str, Any]:
    """Build the Grafana instance the data sources and dashboards select."""
    return {
        "apiVersion": "grafana.integreatly.org/v1beta1",
        "kind": "Grafana",
        "metadata": {
            "name": GRAFANA_NAME,
            "namespace": MONITORING_NAMESPACE,
            "labels": dict(GRAFANA_INSTANCE_LABELS),
        },
        "spec": {
            "config": {
                "log": {"mode": "console"},
                "auth": {"disable_login_form": "false"},
            }
        },
    }


def _instance_selector() -> dict[str, Any]:
    return {"matchLabels": dict(GRAFANA_INSTANCE_LABELS)}


def grafana_datasource_manifest(
    name: str, kind: str, url: str, *, default: bool = False
) -> dict[str, Any]:
    """Build a GrafanaDatasource ``name`` of Grafana type ``kind`` at ``url``."""
    datasource: dict[str, Any] = {
        "name": name.capitalize(),
        "type": kind,
        "access": "proxy",
        "url": url,
        "uid": name,
        "isDefault": default,
    }
    return {
        "apiVersion": "grafana.integreatly.org/v1beta1",
        "kind": "GrafanaDatasource",
        "metadata": {"name": name, "namespace": MONITORING_NAMESPACE},
        "spec": {"instanceSelector": _instance_selector(), "datasource": datasource},
    }


def _request_rate_query(mesh: Mesh) -> str | None:
    """Query requests per second per workload in mesh metrics (Ollama has no /metrics)."""
    if mesh is Mesh.ISTIO:
        return (
            "sum by (destination_workload_namespace, destination_workload) "
            '(rate(istio_requests_total{reporter="destination"}[2m]))'
        )
    if mesh is Mesh.LINKERD:
        return 'sum by (namespace, deployment) (rate(request_total{direction="inbound"}[2m]))'
    return None


def panel(
    panel_id: int, title: str, expr: str, *, legend: str, unit: str, x: int, y: int
) -> dict[str, Any]:
    """One time series panel of ``expr`` on the Prometheus data source."""
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": PROMETHEUS_DATASOURCE_UID},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
    }


# The models' namespaces (naming.model_namespace) as Loki labels them.
MODEL_LOGS_QUERY = '{k8s_namespace_name=~"ollama-.+"}'


def _logs_panel(panel_id: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "logs",
        "title": "Model logs",
        "datasource": {"type": "loki", "uid": LOKI_DATASOURCE_UID},
        "gridPos": {"h": 10, "w": 24, "x": 0, "y": y},
        "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending"},
        "targets": [{"refId": "A", "expr": MODEL_LOGS_QUERY}],
    }


def dashboard_json(mesh: Mesh, *, logs: bool = False) -> dict[str, Any]:
    """Build the Ollama GPU dashboard: request rate (mesh), GPU use and memory (DCGM).

    With ``logs`` (observability ``full``, where Loki and the node log agent run),
    the models' logs beside their metrics.
    """
    panels = [
        panel(
            1,
            "GPU utilisation",
            "avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)",
            legend="{{Hostname}} GPU {{gpu}}",
            unit="percent",
            x=0,
            y=0,
        ),
        panel(
            2,
            "GPU memory used",
            "sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED)",
            legend="{{Hostname}} GPU {{gpu}}",
            unit="decmbytes",
            x=12,
            y=0,
        ),
    ]
    query = _request_rate_query(mesh)
    if query:
        legend = (
            "{{destination_workload_namespace}}/{{destination_workload}}"
            if mesh is Mesh.ISTIO
            else "{{namespace}}/{{deployment}}"
        )
        panels.append(
            panel(3, "Ollama request rate", query, legend=legend, unit="reqps", x=0, y=8)
        )
    if logs:
        panels.append(_logs_panel(4, y=16))
    return board("Ollama GPU", DASHBOARD_NAME, ["ollama", "gpu"], panels)


def board(title: str, uid: str, tags: list[str], panels: list[dict[str, Any]]) -> dict[str, Any]:
    """A dashboard of ``panels``: the last hour, refreshed every 30 s."""
    return {
        "title": title,
        "uid": uid,
        "tags": tags,
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
    }


def grafana_dashboard_manifest(mesh: Mesh, *, logs: bool = False) -> dict[str, Any]:
    """Build the GrafanaDashboard carrying ``dashboard_json`` as sorted, stable JSON."""
    return dashboard_manifest(DASHBOARD_NAME, dashboard_text(mesh, logs=logs))


def dashboard_manifest(name: str, content: dict[str, Any] | str) -> dict[str, Any]:
    """A GrafanaDashboard ``name`` for the stack's Grafana, ``content`` as sorted, stable JSON.

    ``content`` is the dashboard, or its JSON text already encoded (``dashboard_text``).
    """
    return {
        "apiVersion": "grafana.integreatly.org/v1beta1",
        "kind": "GrafanaDashboard",
        "metadata": {"name": name, "namespace": MONITORING_NAMESPACE},
        "spec": {
            "instanceSelector": _instance_selector(),
            "json": content if isinstance(content, str) else _text(content),
        },
    }


def dashboard(ctx: ClusterContext, manifest: dict[str, Any], *after: Gate) -> Composed:
    """The Object of a GrafanaDashboard, after grafana-operator (and ``after``)."""
    return wrap.k8s_object(
        ctx,
        f"grafana-dashboard-{manifest['metadata']['name']}",
        manifest,
        after=(_ready(ctx, "grafana-operator"), *after),
        cel_query=_synchronized("DashboardSynchronized"),
    )


def _text(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=2, sort_keys=True)


@lru_cache(maxsize=16)  # one per mesh and logs choice
def dashboard_text(mesh: Mesh, *, logs: bool = False) -> str:
    """``dashboard_json`` as sorted, indented JSON, encoded once per (mesh, logs)."""
    return _text(dashboard_json(mesh, logs=logs))


def grafana_operator_values() -> dict[str, Any]:
    """Values of the grafana-operator chart: its CRDs installed and upgraded with the chart.

    The chart's default (``crds.immutable``) installs the CRDs once from a
    ``crds/`` folder and never upgrades them, so a chart version bump through
    the Release would leave the Grafana kinds at their first version.
    """
    return {"crds": {"immutable": False}}


def _grafana(ctx: ClusterContext, *, full: bool) -> list[Composed]:
    operator = wrap.release(
        ctx,
        "grafana-operator",
        chart="grafana-operator",
        namespace=MONITORING_NAMESPACE,
        values=grafana_operator_values(),
        wait=True,
    )
    after = (_ready(ctx, "grafana-operator"),)
    sources = [("prometheus", "prometheus", PROMETHEUS_ADDRESS)]
    if full:
        sources += [("loki", "loki", LOKI_URL), ("jaeger", "jaeger", JAEGER_QUERY_URL)]
    grafana = wrap.k8s_object(
        ctx, "grafana", grafana_manifest(), after=after, cel_query=CEL_GRAFANA_UP
    )
    out = [operator, grafana]
    for name, kind, url in sources:
        manifest = grafana_datasource_manifest(name, kind, url, default=name == "prometheus")
        out.append(
            wrap.k8s_object(
                ctx,
                f"grafana-datasource-{name}",
                manifest,
                after=after,
                cel_query=_synchronized("DatasourceSynchronized"),
            )
        )
    out.append(dashboard(ctx, grafana_dashboard_manifest(ctx.components.mesh, logs=full)))
    return out


# grafana-operator v5.24.0 writes no ``Ready`` condition on its kinds, so
# provider-kubernetes' DeriveFromObject would never call them ready. A Grafana is
# up when the operator finished its last stage and reached the Grafana API
# (controllers/grafana_controller.go: stage "complete", stageStatus "success");
# a data source or dashboard when it was applied to its instances
# (controllers/controller_shared.go: <Kind>Synchronized True, ApplySuccessful).
CEL_GRAFANA_UP = (
    "has(object.status) && has(object.status.stage) && has(object.status.stageStatus) && "
    "object.status.stage == 'complete' && object.status.stageStatus == 'success'"
)


def _synchronized(condition: str) -> str:
    return (
        "has(object.status) && has(object.status.conditions) && "
        f"object.status.conditions.exists(c, c.type == '{condition}' && c.status == 'True')"
    )


# --- Loki and Jaeger ---------------------------------------------------------


def loki_values(storage_class: str = "") -> dict[str, Any]:
    """Values of the community Loki chart: one monolithic Loki on a filesystem volume.

    The volume is of ``storage_class`` ('' for the cluster's default).
    """
    values: dict[str, Any] = {
        "deploymentMode": "Monolithic",
        "loki": {
            "auth_enabled": False,
            "commonConfig": {"replication_factor": 1},
            "storage": {"type": "filesystem"},
            "schemaConfig": {
                "configs": [
                    {
                        "from": "2024-04-01",
                        "store": "tsdb",
                        "object_store": "filesystem",
                        "schema": "v13",
                        "index": {"prefix": "index_", "period": "24h"},
                    }
                ]
            },
        },
        "singleBinary": {"replicas": 1},
        # The simple-scalable targets are off in monolithic mode.
        "read": {"replicas": 0},
        "write": {"replicas": 0},
        "backend": {"replicas": 0},
        # Memcached caches are sized for large installs.
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
        "gateway": {"enabled": True},
    }
    if storage_class:
        values["singleBinary"]["persistence"] = {"storageClass": storage_class}
    return values


def jaeger_values() -> dict[str, Any]:
    """Values of the Jaeger chart: Jaeger v2 all-in-one (OTLP on 4317/4318), in memory.

    Chart 4.x runs Jaeger v2, whose all-in-one keeps traces in memory unless a
    ``userconfig`` says otherwise; its ``storage`` block only configures the
    Spark and Elasticsearch maintenance jobs, and ``provisionDataStore`` is gone.
    """
    return {"fullnameOverride": JAEGER_FULLNAME, "jaeger": {"enabled": True}}


def _logs_and_traces(ctx: ClusterContext) -> list[Composed]:
    return [
        wrap.release(
            ctx,
            "loki",
            chart="loki",
            namespace=MONITORING_NAMESPACE,
            values=loki_values(ctx.storage_class()),
        ),
        wrap.release(
            ctx, "jaeger", chart="jaeger", namespace=MONITORING_NAMESPACE, values=jaeger_values()
        ),
    ]


def build(ctx: ClusterContext) -> list[Composed]:
    """Observability Releases and Objects of one cluster ([] when off)."""
    level = ctx.components.observability
    if level is Observability.NONE:
        return []
    full = level is Observability.FULL
    out = _prometheus(ctx)
    out.extend(_grafana(ctx, full=full))
    if full:
        out.extend(_otel(ctx))
        out.extend(_logs_and_traces(ctx))
    return out
