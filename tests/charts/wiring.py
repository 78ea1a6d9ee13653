"""Wiring checks over one cluster: its charts' rendered objects plus the wrapped Objects.

Each check takes a ``Cluster`` (everything that ends up on one cluster) and
returns problems as sentences; [] means the wiring holds. What operators
create at runtime from a rendered resource is modelled where a check needs it
(the OpenTelemetry operator's collector Service, the MinIO operator's tenant
Service, the Longhorn driver deployer's
CSI driver, the ceph-csi operator's drivers and node plugins, the GPU
operator's operand DaemonSets).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from function.context import CLOUD_BLOCK_STORAGE_CLASS
from function.models.common import Cloud
from function.stack.gpu import GPU_OPERATOR_NAMESPACE
from function.stack.storage import CLOUD_CSI_DRIVER

# Built into every cluster of a kind: StorageClass -> provisioner.
BUILTIN_STORAGE_CLASSES: dict[str, dict[str, str]] = {
    **{cloud.value: {CLOUD_BLOCK_STORAGE_CLASS[cloud]: CLOUD_CSI_DRIVER[cloud]} for cloud in CLOUD_BLOCK_STORAGE_CLASS},
    # K3s ships the local-path provisioner; generic clusters promise nothing.
    "k3s": {"local-path": "rancher.io/local-path"},
}
# Clusters of these kinds have no default StorageClass: EKS stopped marking gp2
# as the default from Kubernetes 1.30, so a claim that names no class stays Pending.
NO_DEFAULT_STORAGE_CLASS = {Cloud.AWS.value}
# CSI drivers on by default: GKE's PD and AKS's Azure Disk drivers, K3s's
# local-path provisioner. EKS runs no EBS driver unless its add-on is installed.
BUILTIN_CSI_DRIVERS = {
    CLOUD_CSI_DRIVER[Cloud.GCP],
    CLOUD_CSI_DRIVER[Cloud.AZURE],
    "rancher.io/local-path",
}
# EKS add-ons (addonName) -> the CSI driver each installs.
ADDON_CSI_DRIVERS = {"aws-ebs-csi-driver": CLOUD_CSI_DRIVER[Cloud.AWS]}

_SVC = re.compile(
    r"^(?:(?P<scheme>https?)://)?(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\."
    r"(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(?:\.cluster\.local)?(?::(?P<port>\d+))?(?:/.*)?$"
)
MONITOR_KINDS = {"ServiceMonitor", "PodMonitor"}
KNATIVE_SERVING_KINDS = {
    "Service": "services",
    "Route": "routes",
    "Configuration": "configurations",
    "Revision": "revisions",
}
# DaemonSets that need not run on GPU nodes, and why.
OFF_GPU_NODES = {
    "contour-envoy": "Envoy serves ingress from the nodes it runs on; the load balancer "
    "(externalTrafficPolicy Local) sends traffic only to those",
}


@dataclass
class Cluster:
    """What runs on one cluster."""

    label: str
    cloud: str
    distribution: str
    rendered: list[tuple[str, dict[str, Any]]]  # (release, object)
    wrapped: list[dict[str, Any]]  # Object manifests (the fleets' included)
    releases: list[dict[str, Any]]  # Release bodies (their values)
    taints: list[dict[str, str]] = field(default_factory=list)  # the GPU pools'
    addons: list[str] = field(default_factory=list)  # EKS add-ons composed (addonName)

    def objects(self) -> Iterator[dict[str, Any]]:
        """Every object that exists on the cluster (rendered, wrapped, operator-made)."""
        yield from (doc for _, doc in self.rendered)
        yield from self.wrapped
        yield from operator_made(self)

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        """Objects of these kinds."""
        return [o for o in self.objects() if o.get("kind") in kinds]


def _ns(obj: Mapping[str, Any], default: str = "") -> str:
    return str((obj.get("metadata") or {}).get("namespace") or default)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def operator_made(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """Objects operators create from what the function composes (what the checks need)."""
    for _, cm in cluster.rendered:
        if cm.get("kind") == "ConfigMap" and _name(cm) == "longhorn-storageclass":
            # longhorn-manager creates the StorageClass this ConfigMap holds.
            doc = yaml.safe_load((cm.get("data") or {}).get("storageclass.yaml") or "{}")
            if isinstance(doc, dict):
                yield doc
    for _, tenant in cluster.rendered:
        if tenant.get("kind") == "Tenant" and tenant.get("apiVersion", "").startswith("minio.min.io/"):
            # The MinIO operator serves each tenant's S3 API as Service ``minio``:
            # port 443 with TLS (automatic or external certificates), else 80.
            spec = tenant.get("spec") or {}
            tls = spec.get("requestAutoCert", True) is not False or bool(spec.get("externalCertSecret"))
            yield {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "minio", "namespace": _ns(tenant)},
                "spec": {"ports": [{"port": 443 if tls else 80}]},
            }
    yield from _gpu_operator_exporter(cluster)
    for obj in cluster.wrapped:
        if obj.get("kind") == "KnativeServing":
            # The Knative operator installs Knative Serving, its CRDs included.
            for kind, plural in KNATIVE_SERVING_KINDS.items():
                yield {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "metadata": {"name": f"{plural}.serving.knative.dev"},
                    "spec": {
                        "group": "serving.knative.dev",
                        "names": {"kind": kind, "plural": plural},
                        "versions": [{"name": "v1", "served": True}],
                    },
                }
        if obj.get("kind") == "OpenTelemetryCollector":
            receivers = ((obj.get("spec") or {}).get("config") or {}).get("receivers") or {}
            ports = sorted(
                {
                    int(str(p.get("endpoint", "")).rsplit(":", 1)[-1])
                    for r in receivers.values()
                    for p in ((r or {}).get("protocols") or {}).values()
                    if isinstance(p, Mapping) and ":" in str(p.get("endpoint", ""))
                }
            )
            yield {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"{_name(obj)}-collector", "namespace": _ns(obj)},
                "spec": {"ports": [{"port": p} for p in ports]},
            }


# The GPU operator's DCGM exporter (gpu-operator assets/state-dcgm-exporter): a
# DaemonSet on the nodes it labels for the exporter, a Service over port 9400
# ("gpu-metrics") and, with dcgmExporter.serviceMonitor.enabled, a ServiceMonitor,
# all in the operator's namespace.
DCGM_OPERATOR_NAME = "nvidia-dcgm-exporter"
DCGM_PORT = 9400


def _gpu_operator_exporter(cluster: Cluster) -> Iterator[dict[str, Any]]:
    for _, cp in cluster.rendered:
        if cp.get("kind") != "ClusterPolicy" or not cp.get("apiVersion", "").startswith("nvidia.com/"):
            continue
        spec = cp.get("spec") or {}
        exporter = spec.get("dcgmExporter") or {}
        if exporter.get("enabled") is False:
            continue
        labels = {"app": DCGM_OPERATOR_NAME}
        meta = {"name": DCGM_OPERATOR_NAME, "namespace": GPU_OPERATOR_NAMESPACE, "labels": labels}
        tolerations = list((spec.get("daemonsets") or {}).get("tolerations") or [])
        yield {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta,
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {"nvidia.com/gpu.deploy.dcgm-exporter": "true"},
                        "tolerations": tolerations,
                        "containers": [{"name": DCGM_OPERATOR_NAME, "ports": [{"name": "metrics", "containerPort": DCGM_PORT}]}],
                    },
                },
            },
        }
        yield {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": labels, "ports": [{"name": "gpu-metrics", "port": DCGM_PORT, "targetPort": DCGM_PORT}]},
        }
        if (exporter.get("serviceMonitor") or {}).get("enabled"):
            yield {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": meta,
                "spec": {
                    "selector": {"matchLabels": labels},
                    "namespaceSelector": {"matchNames": [GPU_OPERATOR_NAMESPACE]},
                    "endpoints": [{"port": "gpu-metrics", "path": "/metrics"}],
                },
            }


# --- 1. endpoints -------------------------------------------------------------


def _endpoints(node: Any, where: str) -> Iterator[tuple[str, str, int, str]]:
    """(name, namespace, port, where) of every in-cluster Service address in ``node``."""
    if isinstance(node, Mapping):
        port = node.get("port")
        # Istio's provider form; Envoy Gateway's fqdn form (extension manager, Backend endpoints).
        for field in ("service", "hostname"):
            service = node.get(field)
            if isinstance(service, str) and isinstance(port, int):
                m = _SVC.match(service)
                if m:
                    yield m["name"], m["ns"], port, f"{where}.{field}"
        for key, value in node.items():
            yield from _endpoints(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _endpoints(value, f"{where}[{i}]")
    elif isinstance(node, str):
        m = _SVC.match(node)
        if m and (m["port"] or m["scheme"]):
            port = int(m["port"]) if m["port"] else (443 if m["scheme"] == "https" else 80)
            yield m["name"], m["ns"], port, where


def function_endpoints(cluster: Cluster) -> list[tuple[str, str, int, str]]:
    """Every Service address the function writes into values or manifests."""
    out = []
    for release in cluster.releases:
        name = (release.get("metadata", {}).get("annotations") or {}).get("crossplane.io/external-name")
        out += _endpoints(release["spec"]["forProvider"].get("values") or {}, f"Release {name} values")
    for obj in cluster.wrapped:
        out += _endpoints(obj.get("spec") or {}, f"{obj.get('kind')} {_ns(obj)}/{_name(obj)} spec")
    return out


def check_endpoints(cluster: Cluster) -> tuple[int, list[str]]:
    """Every host:port the function points at is a port of a Service on the cluster."""
    services: dict[tuple[str, str], set[int]] = {}
    for svc in cluster.of_kind("Service"):
        ports = {int(p["port"]) for p in (svc.get("spec") or {}).get("ports") or [] if "port" in p}
        if svc.get("apiVersion", "").startswith("serving.knative.dev/"):
            ports = {80}  # a cluster-local Knative Service's address
        services.setdefault((_name(svc), _ns(svc)), set()).update(ports)
    problems = []
    found = function_endpoints(cluster)
    for name, ns, port, where in found:
        have = services.get((name, ns))
        if have is None:
            problems.append(f"{where}: no Service {ns}/{name} on the cluster")
        elif port not in have:
            problems.append(f"{where}: Service {ns}/{name} has no port {port} (has {sorted(have)})")
    return len(found), problems


# --- 2. ingress classes ---------------------------------------------------------


def check_ingress_classes(cluster: Cluster) -> tuple[int, list[str]]:
    """Routes carry the class Contour watches; no IngressClass becomes the default unasked."""
    problems = []
    watched = set()
    for deploy in cluster.of_kind("Deployment"):
        for container in _containers(deploy):
            for arg in container.get("args") or []:
                if str(arg).startswith("--ingress-class-name="):
                    watched.add(str(arg).split("=", 1)[1])
    classes = cluster.of_kind("IngressClass")
    for ic in classes:
        annotations = (ic.get("metadata") or {}).get("annotations") or {}
        if str(annotations.get("ingressclass.kubernetes.io/is-default-class")).lower() == "true":
            problems.append(f"IngressClass {_name(ic)} makes itself the cluster's default")
    routes = cluster.of_kind("HTTPProxy", "Ingress")
    for route in routes:
        wanted = (route.get("spec") or {}).get("ingressClassName")
        where = f"{route['kind']} {_ns(route)}/{_name(route)}"
        if not watched:
            problems.append(f"{where}: no ingress controller on the cluster watches a class")
        elif wanted not in watched:
            problems.append(f"{where}: ingressClassName {wanted!r}; Contour watches {sorted(watched)}")
    return len(routes) + len(classes), problems


# --- 3. storage classes -----------------------------------------------------------


def _storage_class_uses(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "storageClassName" and isinstance(value, str) and value:
                yield value, where
            else:
                yield from _storage_class_uses(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _storage_class_uses(value, f"{where}[{i}]")


def _unclassed_claims(node: Any, where: str) -> Iterator[str]:
    """Where a volume claim (template) names no StorageClass."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            templates = value if key == "volumeClaimTemplates" else [value] if key == "volumeClaimTemplate" else None
            if isinstance(templates, list):
                for i, t in enumerate(templates):
                    spec = (t.get("spec") or t) if isinstance(t, Mapping) else {}
                    if isinstance(spec, Mapping) and not spec.get("storageClassName"):
                        yield f"{where}.{key}[{i}]"
            else:
                yield from _unclassed_claims(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _unclassed_claims(value, f"{where}[{i}]")


def check_storage(cluster: Cluster) -> tuple[int, list[str]]:
    """Every StorageClass used exists, and the CSI driver behind it is installed."""
    classes = {_name(sc): str(sc.get("provisioner")) for sc in cluster.of_kind("StorageClass")}
    builtin = BUILTIN_STORAGE_CLASSES.get(
        cluster.distribution if cluster.cloud == Cloud.EXISTING.value else cluster.cloud, {}
    )
    drivers = {_name(d) for d in cluster.of_kind("CSIDriver")} | set(BUILTIN_CSI_DRIVERS)
    drivers |= {ADDON_CSI_DRIVERS[a] for a in cluster.addons if a in ADDON_CSI_DRIVERS}
    # ceph-csi-operator makes a CSI driver of each Driver resource
    drivers |= {_name(d) for d in cluster.of_kind("Driver") if "csi.ceph.io" in d.get("apiVersion", "")}
    # longhorn-driver-deployer registers Longhorn's CSI driver
    if any(_name(d) == "longhorn-driver-deployer" for d in cluster.of_kind("Deployment")):
        drivers.add("driver.longhorn.io")
    problems = []
    uses = [
        (sc, f"{o.get('kind')} {_ns(o)}/{_name(o)}{where}")
        for o in cluster.objects()
        if o.get("kind") != "StorageClass"
        for sc, where in _storage_class_uses(o.get("spec") or {}, ".spec")
    ]
    if cluster.cloud in NO_DEFAULT_STORAGE_CLASS:
        for o in cluster.objects():
            if o.get("kind") == "CustomResourceDefinition":
                continue
            where = f"{o.get('kind')} {_ns(o)}/{_name(o)}"
            spec = o.get("spec") or {}
            if o.get("kind") == "PersistentVolumeClaim" and not spec.get("storageClassName"):
                problems.append(f"{where}: names no StorageClass, and {cluster.cloud} has no default one")
            problems.extend(
                f"{where}{path}: names no StorageClass, and {cluster.cloud} has no default one"
                for path in _unclassed_claims(spec, ".spec")
            )
    for name, where in uses:
        provisioner = classes.get(name) or builtin.get(name)
        if provisioner is None:
            problems.append(f"{where}: StorageClass {name!r} is created by nothing on the cluster")
        elif provisioner not in drivers:
            problems.append(f"{where}: StorageClass {name!r} uses {provisioner}, whose CSI driver is not installed")
    return len(uses), problems


# --- 4. GPU taints ---------------------------------------------------------------


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, str]) -> bool:
    """Kubernetes' toleration matching."""
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if not tol.get("key") and tol.get("operator") == "Exists":
            return True
        if tol.get("key") != taint["key"]:
            continue
        if tol.get("operator") == "Exists" or tol.get("value") == taint.get("value"):
            return True
    return False


def _pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(((obj.get("spec") or {}).get("template") or {}).get("spec") or {})


def _containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(obj)
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


def _longhorn_setting(cluster: Cluster) -> list[dict[str, str]] | None:
    for cm in cluster.of_kind("ConfigMap"):
        if _name(cm) == "longhorn-default-setting":
            text = (cm.get("data") or {}).get("default-setting.yaml", "")
            m = re.search(r"^taint-toleration:\s*\"?([^\"\n]*)\"?", text, re.MULTILINE)
            if not m:
                return []
            out = []
            for item in filter(None, (p.strip() for p in m.group(1).split(";"))):
                key_value, _, effect = item.partition(":")
                key, sep, value = key_value.partition("=")
                out.append(
                    {"key": key, "operator": "Equal" if sep else "Exists", "value": value, "effect": effect}
                )
            return out
    return None


def node_agents(cluster: Cluster) -> list[tuple[str, list[dict[str, Any]]]]:
    """(what, tolerations) of everything that must run on every node, GPU nodes included."""
    out = []
    for ds in cluster.of_kind("DaemonSet"):
        selector = _pod_spec(ds).get("nodeSelector") or {}
        if selector.get("kubernetes.io/os") == "windows" or _name(ds) in OFF_GPU_NODES:
            continue  # a Windows exporter has no business on Linux GPU nodes
        out.append((f"DaemonSet {_ns(ds)}/{_name(ds)}", list(_pod_spec(ds).get("tolerations") or [])))
    for cp in cluster.of_kind("ClusterPolicy"):
        if cp.get("apiVersion", "").startswith("nvidia.com/"):
            tolerations = ((cp.get("spec") or {}).get("daemonsets") or {}).get("tolerations") or []
            out.append((f"GPU operator operands (ClusterPolicy {_name(cp)})", list(tolerations)))
    for oc in cluster.of_kind("OperatorConfig"):
        if oc.get("apiVersion", "").startswith("csi.ceph.io/"):
            node = ((oc.get("spec") or {}).get("driverSpecDefaults") or {}).get("nodePlugin") or {}
            out.append((f"ceph-csi node plugins (OperatorConfig {_name(oc)})", list(node.get("tolerations") or [])))
    for oc in cluster.of_kind("OpenTelemetryCollector"):
        spec = oc.get("spec") or {}
        if spec.get("mode") == "daemonset":
            out.append((f"OpenTelemetryCollector {_ns(oc)}/{_name(oc)} (daemonset)", list(spec.get("tolerations") or [])))
    setting = _longhorn_setting(cluster)
    if setting is not None:
        out.append(("Longhorn CSI plugin and instance managers (taint-toleration setting)", setting))
    return out


def check_gpu_taints(cluster: Cluster) -> tuple[int, list[str]]:
    """Every node agent tolerates every taint of the cluster's GPU pools."""
    problems = []
    agents = node_agents(cluster)
    for what, tolerations in agents:
        for taint in cluster.taints:
            if not tolerates(tolerations, taint):
                problems.append(f"{what} does not tolerate the GPU pool taint {taint}")
    return len(agents) * max(1, len(cluster.taints)), problems


# --- 5. scraping ----------------------------------------------------------------


def _matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:  # noqa: PLR0911
    """Kubernetes label selector matching (matchLabels and matchExpressions)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _namespaces(selector: Mapping[str, Any] | None, own: str) -> set[str] | None:
    """Namespaces a monitor looks in (None: every namespace)."""
    if not selector:
        return {own}
    if selector.get("any"):
        return None
    return set(selector.get("matchNames") or [])


def scrape_targets(cluster: Cluster) -> dict[tuple[Any, ...], list[str]]:
    """Scrape targets (namespace, pod selector, target port, path) -> the monitors scraping them."""
    return {key: [w for w, _ in by] for key, by in _scrapes(cluster).items()}


def _scrapes(cluster: Cluster) -> dict[tuple[Any, ...], list[tuple[str, dict[str, Any]]]]:
    """Scrape targets -> (what, monitor) of each ServiceMonitor scraping them through a Service."""
    services = cluster.of_kind("Service")
    out: dict[tuple[Any, ...], list[tuple[str, dict[str, Any]]]] = {}
    for mon in cluster.of_kind("ServiceMonitor"):
        spec = mon.get("spec") or {}
        namespaces = _namespaces(spec.get("namespaceSelector"), _ns(mon))
        for svc in services:
            if namespaces is not None and _ns(svc) not in namespaces:
                continue
            if not _matches(spec.get("selector") or {}, _labels(svc)):
                continue
            ports = {p.get("name"): p for p in (svc.get("spec") or {}).get("ports") or []}
            pods = tuple(sorted(((svc.get("spec") or {}).get("selector") or {}).items()))
            for ep in spec.get("endpoints") or []:
                port = ports.get(ep.get("port"))
                if port is None:
                    continue
                target = port.get("targetPort", port.get("port"))
                key = (_ns(svc), pods, str(target), ep.get("path", "/metrics"))
                out.setdefault(key, []).append(
                    (f"ServiceMonitor {_ns(mon)}/{_name(mon)} via Service {_name(svc)}", mon)
                )
    return out


def check_scraping(cluster: Cluster) -> tuple[int, list[str]]:
    """Every target is scraped once; every monitor is selected by the Prometheus that exists."""
    problems = []
    targets = scrape_targets(cluster)
    for (ns, pods, port, path), by in sorted(targets.items()):
        if len(by) > 1:
            problems.append(f"pods {dict(pods)} in {ns} port {port} {path} scraped {len(by)} times: {by}")
    monitors = cluster.of_kind(*MONITOR_KINDS)
    proms = prometheuses(cluster)
    for mon in monitors:
        where = f"{mon['kind']} {_ns(mon)}/{_name(mon)}"
        if not selected_by(mon, proms):
            problems.append(f"{where} is selected by no Prometheus on the cluster ({len(proms)})")
    return len(targets) + len(monitors), problems


def prometheuses(cluster: Cluster) -> list[dict[str, Any]]:
    """The Prometheus Operator's Prometheus resources on the cluster."""
    return [p for p in cluster.of_kind("Prometheus") if p.get("apiVersion", "").startswith("monitoring.coreos.com/")]


def selected_by(mon: Mapping[str, Any], proms: Iterable[Mapping[str, Any]]) -> bool:
    """Whether some Prometheus in ``proms`` selects the ServiceMonitor or PodMonitor ``mon``."""
    field = "serviceMonitor" if mon["kind"] == "ServiceMonitor" else "podMonitor"
    for prom in proms:
        spec = prom.get("spec") or {}
        selector = spec.get(f"{field}Selector")
        ns_selector = spec.get(f"{field}NamespaceSelector")
        in_ns = ns_selector == {} or (ns_selector is None and _ns(mon) == _ns(prom))
        if ns_selector:
            in_ns = True  # label-selected namespaces: assume the monitor's is labelled
        if in_ns and selector is not None and _matches(selector, _labels(mon)):
            return True
    return False


# --- 6. CRDs and KEDA ------------------------------------------------------------


def check_kinds_installed(cluster: Cluster, builtin: set[str]) -> tuple[int, list[str]]:
    """Every kind the wrapped Objects use is built in or has its CRD installed by a chart."""
    crds = set()
    for crd in cluster.of_kind("CustomResourceDefinition"):  # operator-installed ones too
        spec = crd.get("spec") or {}
        for v in spec.get("versions") or []:
            crds.add((f"{spec.get('group')}/{v.get('name')}", (spec.get("names") or {}).get("kind")))
    problems = []
    for obj in cluster.wrapped:
        key = (obj.get("apiVersion"), obj.get("kind"))
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        if key not in crds and group not in builtin:
            problems.append(f"{key[1]} {_ns(obj)}/{_name(obj)}: no chart on the cluster installs {key[0]}")
    return len(cluster.wrapped), problems


def check_keda(cluster: Cluster) -> tuple[int, list[str]]:
    """KEDA's admission rule: scale-to-zero needs a trigger other than CPU or memory."""
    problems = []
    scaled = cluster.of_kind("ScaledObject")
    for so in scaled:
        spec = so.get("spec") or {}
        types = {t.get("type") for t in spec.get("triggers") or []}
        if types <= {"cpu", "memory"} and spec.get("minReplicaCount", 1) == 0:
            problems.append(f"ScaledObject {_ns(so)}/{_name(so)}: only {sorted(types)} triggers with minReplicaCount 0")
    return len(scaled), problems


# --- 7. what the stack fixes promise, read on the rendered objects --------------

# Each cloud's (or distribution's) default Service CIDR, where the cluster is
# not composed by the function (its Service range is the provider's default).
SERVICE_CIDRS = {
    "azure": "10.0.0.0/16",  # AKS --service-cidr default
    "k3s": "10.43.0.0/16",  # K3s --service-cidr default
}


def check_pod_cidrs(cluster: Cluster) -> tuple[int, list[str]]:
    """Cilium's cluster-pool pod CIDRs do not overlap the cluster's Service CIDR."""
    kind = cluster.distribution if cluster.cloud == Cloud.EXISTING.value else cluster.cloud
    services = SERVICE_CIDRS.get(kind)
    problems = []
    checked = 0
    for cm in cluster.of_kind("ConfigMap"):
        if _name(cm) != "cilium-config" or services is None:
            continue
        data = cm.get("data") or {}
        if data.get("ipam") != "cluster-pool":
            continue
        pools = str(data.get("cluster-pool-ipv4-cidr", "")).split()
        if not pools:
            problems.append("ConfigMap cilium-config: cluster-pool IPAM without cluster-pool-ipv4-cidr")
        for pool in pools:
            checked += 1
            if ipaddress.ip_network(pool).overlaps(ipaddress.ip_network(services)):
                problems.append(
                    f"ConfigMap cilium-config: pod CIDR {pool} overlaps the {kind} Service CIDR {services}"
                )
    return checked, problems


# What Cilium's node-init script must do on GKE (files/nodeinit/startup.bash):
# take kubelet over (the wrapper that renames the real kubelet) and delete kubenet's bridge.
GKE_NODE_INIT = {
    "reconfigures kubelet": "the-kubelet",
    "removes the cbr0 bridge": "ip link del cbr0",
}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def check_gke_node_init(cluster: Cluster) -> tuple[int, list[str]]:
    """On GKE, Cilium's node-init DaemonSet runs a script that reconfigures kubelet and drops cbr0."""
    if cluster.cloud != Cloud.GCP.value or not any(_name(c) == "cilium-config" for c in cluster.of_kind("ConfigMap")):
        return 0, []
    daemonsets = [d for d in cluster.of_kind("DaemonSet") if _name(d) == "cilium-node-init"]
    if not daemonsets:
        return 1, ["Cilium on GKE without the cilium-node-init DaemonSet"]
    script = "\n".join(_strings(_pod_spec(daemonsets[0])))
    problems = [
        f"DaemonSet cilium-node-init: the startup script never {what} (no {marker!r})"
        for what, marker in GKE_NODE_INIT.items()
        if marker not in script
    ]
    return len(GKE_NODE_INIT), problems


# Ports named like these carry Prometheus metrics.
_METRICS_PORT = re.compile(r"metrics|monitoring")
# (Service, port name) that look like metrics but are not, and why.
NOT_METRICS = {
    ("keda-operator", "metricsservice"): "gRPC between the KEDA operator and its metrics API server",
    # Jaeger's built-in all-in-one config has no span-metrics pipeline, so
    # nothing listens on the chart's 8889 (a scrape would always be down).
    ("jaeger", "span-metrics"): "served only by a span-metrics pipeline, which this stack does not configure",
}

def metrics_ports(cluster: Cluster) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Service, port) of every metrics port of a chart-rendered Service."""
    out = []
    for _, svc in cluster.rendered:
        if svc.get("kind") != "Service":
            continue
        scrape = ((svc.get("metadata") or {}).get("annotations") or {}).get("prometheus.io/scrape")
        for port in (svc.get("spec") or {}).get("ports") or []:
            name = str(port.get("name") or "")
            if (_name(svc), name) in NOT_METRICS:
                continue
            if _METRICS_PORT.search(name) or (scrape == "true" and len((svc.get("spec") or {}).get("ports") or []) == 1):
                out.append((svc, port))
    return out


def _pod_monitor_scrapes(cluster: Cluster, svc: Mapping[str, Any], port: Mapping[str, Any]) -> list[dict[str, Any]]:
    """PodMonitors that scrape the pods behind ``svc`` on ``port``'s target port."""
    pods = dict((svc.get("spec") or {}).get("selector") or {})
    target = str(port.get("targetPort", port.get("port")))
    out = []
    for mon in cluster.of_kind("PodMonitor"):
        spec = mon.get("spec") or {}
        namespaces = _namespaces(spec.get("namespaceSelector"), _ns(mon))
        if namespaces is not None and _ns(svc) not in namespaces:
            continue
        if pods and _matches(spec.get("selector") or {}, pods):
            if any(str(ep.get("port", ep.get("targetPort"))) == target for ep in spec.get("podMetricsEndpoints") or []):
                out.append(mon)
    return out


def metrics_scrapes(cluster: Cluster) -> list[tuple[dict[str, Any], dict[str, Any], list[str]]]:
    """(Service, metrics port, monitors the Prometheus selects that scrape it), once per target.

    [] without a Prometheus (observability off: nothing is scraped by design). A
    headless twin of a Service (same pods, same port) is the same target.
    """
    proms = prometheuses(cluster)
    if not proms:
        return []
    scrapes = _scrapes(cluster)
    out = []
    seen = set()
    for svc, port in metrics_ports(cluster):
        pods = tuple(sorted(((svc.get("spec") or {}).get("selector") or {}).items()))
        target = str(port.get("targetPort", port.get("port")))
        ident = (_ns(svc), pods, target)
        if ident in seen:
            continue
        seen.add(ident)
        by = [
            (what, mon)
            for (ns, p, t, _), found in scrapes.items()
            if (ns, p, t) == ident
            for what, mon in found
        ]
        by += [(f"PodMonitor {_ns(m)}/{_name(m)}", m) for m in _pod_monitor_scrapes(cluster, svc, port)]
        out.append((svc, port, [what for what, mon in by if selected_by(mon, proms)]))
    return out


def check_metrics_services(cluster: Cluster) -> tuple[int, list[str]]:
    """Every metrics Service a chart renders is scraped by exactly one monitor the Prometheus selects."""
    problems = []
    found = metrics_scrapes(cluster)
    for svc, port, live in found:
        where = f"Service {_ns(svc)}/{_name(svc)} port {port.get('name')} ({port.get('port')})"
        if not live:
            problems.append(f"{where}: scraped by no monitor the Prometheus selects")
        elif len(live) > 1:
            problems.append(f"{where}: scraped {len(live)} times: {live}")
    return len(found), problems


def check_minio_tenants(cluster: Cluster) -> tuple[int, list[str]]:
    """No MinIO Tenant asks the operator to edit the Prometheus (``prometheusOperator``)."""
    tenants = [t for t in cluster.of_kind("Tenant") if str(t.get("apiVersion", "")).startswith("minio.min.io/")]
    problems = [
        f"Tenant {_ns(t)}/{_name(t)}: prometheusOperator is true (the operator edits the "
        "Helm-owned Prometheus and fails every reconcile)"
        for t in tenants
        if (t.get("spec") or {}).get("prometheusOperator") in (True, "true")
    ]
    return len(tenants), problems


# Admin and metrics ports of the proxies behind the ingress load balancers.
ADMIN_PORTS = {
    8002: "Envoy /stats (Contour)",
    9001: "Envoy admin (Contour)",
    15000: "Envoy admin (Istio)",
    15014: "istiod monitoring",
    15020: "Istio merged metrics",
    15090: "Envoy Prometheus (Istio)",
}
_ADMIN_NAME = re.compile(r"metrics|stats|admin|monitoring|prometheus|pprof")


def check_load_balancer_ports(cluster: Cluster) -> tuple[int, list[str]]:
    """No LoadBalancer Service (internet-facing or internal) publishes a metrics or admin port."""
    problems = []
    balancers = [s for s in cluster.of_kind("Service") if (s.get("spec") or {}).get("type") == "LoadBalancer"]
    for svc in balancers:
        for port in (svc.get("spec") or {}).get("ports") or []:
            numbers = {port.get("port"), port.get("targetPort")}
            admin = sorted(ADMIN_PORTS[n] for n in numbers if n in ADMIN_PORTS)
            if admin or _ADMIN_NAME.search(str(port.get("name") or "")):
                what = ", ".join(admin) or "a metrics/admin port"
                problems.append(
                    f"LoadBalancer Service {_ns(svc)}/{_name(svc)} publishes port "
                    f"{json.dumps(port, sort_keys=True)}: {what}"
                )
    return len(balancers), problems


# --- log shipping -----------------------------------------------------------------


def _log_agents(cluster: Cluster) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """(collector, log files it reads) for every daemonset collector with a filelog receiver."""
    for oc in cluster.of_kind("OpenTelemetryCollector"):
        spec = oc.get("spec") or {}
        receivers = (spec.get("config") or {}).get("receivers") or {}
        files = [f for k, r in receivers.items() if k.split("/")[0] == "filelog" for f in (r or {}).get("include") or []]
        if spec.get("mode") == "daemonset" and files:
            yield oc, files


def _mounted_from_host(spec: Mapping[str, Any], path: str) -> bool:
    """Whether ``path`` lies under a volumeMount of a hostPath volume with the same path."""
    host = {v["name"]: v["hostPath"]["path"] for v in spec.get("volumes") or [] if "hostPath" in v}
    return any(
        m.get("name") in host
        and host[m["name"]] == m.get("mountPath")
        and path.startswith(str(m.get("mountPath")).rstrip("/") + "/")
        for m in spec.get("volumeMounts") or []
    )


def check_log_shipping(cluster: Cluster) -> tuple[int, list[str]]:
    """Where Loki runs, an agent on every node reads the pod logs and ships them to it."""
    lokis = [s for s in cluster.of_kind("Service") if _name(s) == "loki-gateway"]
    if not lokis:
        return 0, []
    problems = []
    agents = list(_log_agents(cluster))
    if not agents:
        return 1, ["Loki runs but no daemonset collector reads container logs"]
    for oc, files in agents:
        spec = oc.get("spec") or {}
        where = f"OpenTelemetryCollector {_ns(oc)}/{_name(oc)}"
        if not any(f.startswith("/var/log/pods/") for f in files):
            problems.append(f"{where}: reads {files}, not the kubelet's /var/log/pods")
        problems += [f"{where}: {f} is not mounted from the host" for f in files if not _mounted_from_host(spec, f)]
        if not tolerates(spec.get("tolerations") or [], {"key": "any.example/taint", "effect": "NoSchedule"}):
            problems.append(f"{where}: does not tolerate every taint, so some nodes' logs are lost")
        config = spec.get("config") or {}
        exporters = config.get("exporters") or {}
        pipelines = ((config.get("service") or {}).get("pipelines") or {}).values()
        shipped = [
            str((exporters.get(e) or {}).get("endpoint", ""))
            for p in pipelines
            if any(r.split("/")[0] == "filelog" for r in p.get("receivers") or [])
            for e in p.get("exporters") or []
        ]
        to_loki = [e for e in shipped if (m := _SVC.match(e)) and (m["name"], m["ns"]) in {(_name(s), _ns(s)) for s in lokis}]
        if not to_loki:
            problems.append(f"{where}: its log pipeline exports to {shipped}, not to the Loki gateway")
    return len(agents), problems


# --- GPU metrics --------------------------------------------------------------------

# Labels a GPU node carries, by who puts them there: GKE on every GPU node, the GPU
# operator on the nodes it runs its exporter on.
GPU_NODE_LABELS = {
    "gcp": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
    "operator": {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.deploy.dcgm-exporter": "true"},
}


def _gpu_limits(node: Any) -> bool:
    if isinstance(node, Mapping):
        limits = node.get("limits")
        if isinstance(limits, Mapping) and "nvidia.com/gpu" in limits:
            return True
        return any(_gpu_limits(v) for v in node.values())
    if isinstance(node, list):
        return any(_gpu_limits(v) for v in node)
    return False


def _selects_node(pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a pod with this spec may run on a node with these labels (selector and required affinity)."""
    if any(labels.get(k) != v for k, v in (pod.get("nodeSelector") or {}).items()):
        return False
    required = (((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    return not required or any(_matches({"matchExpressions": t.get("matchExpressions") or []}, labels) for t in required)


def gpu_exporters(cluster: Cluster) -> list[dict[str, Any]]:
    """DaemonSets exporting DCGM metrics (a container serving port 9400)."""
    return [
        ds
        for ds in cluster.of_kind("DaemonSet")
        if any(p.get("containerPort") == DCGM_PORT for c in _containers(ds) for p in c.get("ports") or [])
    ]


def check_gpu_metrics(cluster: Cluster) -> tuple[int, list[str]]:
    """Where models run on GPU nodes and a Prometheus runs, a DCGM exporter on those nodes is scraped by it."""
    proms = prometheuses(cluster)
    workloads = [o for o in cluster.wrapped if o.get("kind") in {"StatefulSet", "Deployment"}
                 or o.get("apiVersion", "").startswith("serving.knative.dev/")]
    if not proms or not cluster.taints or not _gpu_limits(workloads):
        return 0, []
    node = {**GPU_NODE_LABELS.get(cluster.cloud, {}), **GPU_NODE_LABELS["operator"]}
    if not any(cp.get("apiVersion", "").startswith("nvidia.com/") for cp in cluster.of_kind("ClusterPolicy")):
        node = dict(GPU_NODE_LABELS.get(cluster.cloud, {}))  # nothing labels nodes for the operator
    exporters = gpu_exporters(cluster)
    if not exporters:
        return 1, [f"models run on GPU nodes but no DCGM exporter runs there ({cluster.cloud})"]
    problems = []
    scrapes = _scrapes(cluster)
    for ds in exporters:
        where = f"DaemonSet {_ns(ds)}/{_name(ds)}"
        pod = _pod_spec(ds)
        if not _selects_node(pod, node):
            problems.append(f"{where}: cannot run on a GPU node labelled {node}")
        problems += [
            f"{where}: does not tolerate the GPU pool taint {t}"
            for t in cluster.taints
            if not tolerates(pod.get("tolerations") or [], t)
        ]
        labels = tuple(sorted(((ds.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels", {}).items()))
        ports = {str(p.get(k)) for c in _containers(ds) for p in c.get("ports") or [] for k in ("name", "containerPort")}
        live = [
            what
            for (ns, pods, target, _), found in scrapes.items()
            if ns == _ns(ds) and pods and set(pods) <= set(labels) and target in ports
            for what, mon in found
            if selected_by(mon, proms)
        ]
        if not live:
            problems.append(f"{where}: its metrics port is scraped by no monitor the Prometheus selects")
    return len(exporters), problems


# Service fields the API server refuses unless the Service is reachable from outside
# the cluster (NodePort or LoadBalancer): validation that no CRD schema carries.
_EXTERNAL_ONLY = ("externalTrafficPolicy", "healthCheckNodePort")
_LOAD_BALANCER_ONLY = ("loadBalancerSourceRanges", "loadBalancerIP", "loadBalancerClass")


def check_service_types(cluster: Cluster) -> tuple[int, list[str]]:
    """Every Service carries only the fields its type admits (the API server's own checks)."""
    problems = []
    services = cluster.of_kind("Service")
    for svc in services:
        spec = svc.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        fields = [f for f in _EXTERNAL_ONLY if spec.get(f) and kind not in {"NodePort", "LoadBalancer"}]
        fields += [f for f in _LOAD_BALANCER_ONLY if spec.get(f) and kind != "LoadBalancer"]
        problems += [
            f"Service {_ns(svc)}/{_name(svc)} of type {kind} sets spec.{f}: the API server "
            "refuses it (only for externally-accessible Services)"
            for f in fields
        ]
    return len(services), problems


# --- model gateway ----------------------------------------------------------------

MODEL_HEADER = "x-ai-eg-model"
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def _find(cluster: Cluster, kind: str, ns: str, name: str) -> dict[str, Any] | None:
    return next((o for o in cluster.of_kind(kind) if _ns(o) == ns and _name(o) == name), None)


def _serves(cluster: Cluster, ns: str, name: str, port: int) -> str | None:
    """Why Service ``ns/name`` port ``port`` reaches no pod container port (None: it does)."""
    knative = next(
        (o for o in cluster.of_kind("Service") if o.get("apiVersion", "").startswith("serving.knative.dev/")
         and _ns(o) == ns and _name(o) == name),
        None,
    )
    if knative is not None:  # cluster-local Knative Service: port 80 to the revision's container port
        containers = (((knative.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        if port == 80 and any(c.get("ports") for c in containers):
            return None
        return f"Knative Service {ns}/{name} serves port 80 to a container port, not {port}"
    svc = next((o for o in cluster.of_kind("Service") if o.get("apiVersion") == "v1" and _ns(o) == ns and _name(o) == name), None)
    if svc is None:
        return f"no Service {ns}/{name}"
    spec = svc.get("spec") or {}
    entry = next((p for p in spec.get("ports") or [] if p.get("port") == port), None)
    if entry is None:
        return f"Service {ns}/{name} has no port {port}"
    target = entry.get("targetPort", port)
    for wl in cluster.of_kind(*_WORKLOADS):
        template = (wl.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if _ns(wl) != ns or not spec.get("selector") or not _matches({"matchLabels": spec["selector"]}, labels):
            continue
        for c in (template.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                if target in {p.get("name"), p.get("containerPort")}:
                    return None
    return f"Service {ns}/{name} port {port} (target {target}) reaches no pod that serves it"


def check_gateway(cluster: Cluster) -> tuple[int, list[str]]:
    """Each model name a route matches leads, through its AIServiceBackend and Backend, to a
    Service port a model pod serves; each route's Gateway and each policy's target exist."""
    links, problems = 0, []
    for route in cluster.of_kind("AIGatewayRoute"):
        ns, where = _ns(route), f"AIGatewayRoute {_ns(route)}/{_name(route)}"
        spec = route.get("spec") or {}
        for parent in spec.get("parentRefs") or []:
            links += 1
            if _find(cluster, "Gateway", parent.get("namespace") or ns, parent["name"]) is None:
                problems.append(f"{where}: parent Gateway {parent['name']} does not exist")
        for rule in spec.get("rules") or []:
            names = [h["value"] for m in rule.get("matches") or [] for h in m.get("headers") or []
                     if h.get("name") == MODEL_HEADER]
            if len(names) != 1:
                problems.append(f"{where} rule {rule.get('name')}: matches {MODEL_HEADER} {names}, not one model")
            for ref in rule.get("backendRefs") or []:
                links += 1
                asb = _find(cluster, "AIServiceBackend", ref.get("namespace") or ns, ref["name"])
                if asb is None:
                    problems.append(f"{where} model {names}: no AIServiceBackend {ref['name']}")
                    continue
                bref = (asb.get("spec") or {}).get("backendRef") or {}
                backend = _find(cluster, "Backend", bref.get("namespace") or _ns(asb), bref.get("name", ""))
                if backend is None or bref.get("kind") != "Backend":
                    problems.append(f"{where} model {names}: AIServiceBackend {ref['name']} has no Backend {bref}")
                    continue
                for ep in (backend.get("spec") or {}).get("endpoints") or []:
                    fqdn = ep.get("fqdn") or {}
                    m = _SVC.match(str(fqdn.get("hostname", "")))
                    why = _serves(cluster, m["ns"], m["name"], int(fqdn.get("port", 0))) if m else "not a Service name"
                    if why:
                        problems.append(f"{where} model {names}: Backend {_name(backend)} {fqdn}: {why}")
    quota_links, quota_problems = _check_quotas(cluster)
    links, problems = links + quota_links, problems + quota_problems
    for kind in ("SecurityPolicy", "ClientTrafficPolicy", "BackendTrafficPolicy"):
        for policy in cluster.of_kind(kind):
            for ref in (policy.get("spec") or {}).get("targetRefs") or []:
                links += 1
                kinds = ("AIGatewayRoute", "HTTPRoute") if ref.get("kind") == "HTTPRoute" else (ref.get("kind"),)
                if not any(_find(cluster, k, _ns(policy), ref.get("name", "")) for k in kinds):
                    problems.append(f"{kind} {_ns(policy)}/{_name(policy)}: target {ref} does not exist")
    return links, problems


def _check_quotas(cluster: Cluster) -> tuple[int, list[str]]:
    """Each token bucket selects a client ID only authentication sets (a caller's own is
    removed first) and a model a route matches; the rate limit reaches a Redis that serves."""
    links, problems = 0, []
    routed = {
        h["value"]
        for route in cluster.of_kind("AIGatewayRoute")
        for rule in (route.get("spec") or {}).get("rules") or []
        for m in rule.get("matches") or []
        for h in m.get("headers") or []
        if h.get("name", "").lower() == MODEL_HEADER
    }
    set_by_auth, removed = set(), set()
    for sp in cluster.of_kind("SecurityPolicy"):
        spec = sp.get("spec") or {}
        if (spec.get("apiKeyAuth") or {}).get("forwardClientIDHeader"):
            set_by_auth.add(spec["apiKeyAuth"]["forwardClientIDHeader"].lower())
        for provider in (spec.get("jwt") or {}).get("providers") or []:
            set_by_auth |= {c["header"].lower() for c in provider.get("claimToHeaders") or []}
    for ctp in cluster.of_kind("ClientTrafficPolicy"):
        early = ((ctp.get("spec") or {}).get("headers") or {}).get("earlyRequestHeaders") or {}
        removed |= {h.lower() for h in early.get("remove") or []}
    buckets = 0
    for btp in cluster.of_kind("BackendTrafficPolicy"):
        where = f"BackendTrafficPolicy {_ns(btp)}/{_name(btp)}"
        for rule in (((btp.get("spec") or {}).get("rateLimit") or {}).get("global") or {}).get("rules") or []:
            buckets += 1
            for selector in rule.get("clientSelectors") or []:
                for h in selector.get("headers") or []:
                    links += 1
                    name = h.get("name", "").lower()
                    if name == MODEL_HEADER:
                        if h.get("value") not in routed:
                            problems.append(f"{where}: bucket for model {h.get('value')!r}, which no route matches")
                    elif name not in set_by_auth:
                        problems.append(f"{where}: header {name} is set by no authentication: the bucket never fills")
                    elif name not in removed:
                        problems.append(f"{where}: header {name} can come from the caller: anyone can charge another team")
    if buckets:
        links += 1
        config = next(
            (cm for _, cm in cluster.rendered if cm.get("kind") == "ConfigMap" and _name(cm) == "envoy-gateway-config"),
            None,
        )
        eg = yaml.safe_load(((config or {}).get("data") or {}).get("envoy-gateway.yaml") or "{}") or {}
        url = str((((eg.get("rateLimit") or {}).get("backend") or {}).get("redis") or {}).get("url") or "")
        m = _SVC.match(url)
        why = _serves(cluster, m["ns"], m["name"], int(m["port"] or 0)) if m else f"{url!r} is not a Service address"
        if why:
            problems.append(f"envoy-gateway rate limit: Redis {url}: {why}")
    return links, problems


CHECKS = {
    "model gateway": check_gateway,
    "endpoints": check_endpoints,
    "Service types": check_service_types,
    "log shipping": check_log_shipping,
    "ingress classes": check_ingress_classes,
    "storage classes": check_storage,
    "GPU taints": check_gpu_taints,
    "GPU metrics": check_gpu_metrics,
    "scraping": check_scraping,
    "KEDA": check_keda,
    "pod CIDRs": check_pod_cidrs,
    "GKE node-init": check_gke_node_init,
    "metrics Services": check_metrics_services,
    "MinIO tenants": check_minio_tenants,
    "load balancer ports": check_load_balancer_ports,
}
