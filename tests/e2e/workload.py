"""A workload cluster and the real in-cluster providers, beside the e2e control plane.

In the same loopback-only network namespace as ``stack.py``:

- a second kube-apiserver (the workload cluster, :6444) on the control plane's
  etcd under its own prefix, with the same CA and keys;
- its kube-controller-manager (every default controller but node lifecycle:
  kwok's nodes renew no lease) and the real kube-scheduler;
- kwok, the fake kubelet, for nodes created here with the shapes of the
  function's catalogue (allocatable, GPU count and labels, the GPU taint), and
  the stages in ``STAGES`` (nodes Ready, pods Running with an IP, Job pods
  Succeeded, deleted pods gone);
- a Helm repository (``index.yaml`` plus one ``.tgz`` per chart, packed here from
  ``../shared/charts``) served by ``python -m http.server``;
- the real provider-helm and provider-kubernetes (``scripts/e2e-build.sh
  providers``), with their own CRDs, acting on the workload cluster through
  ProviderConfigs whose credentials are a kubeconfig Secret.

Operators do not run under kwok. What they (or a CSI driver) would write comes
from the stand-ins in ``STAND_INS``, all in one place, printed when they start.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import hashlib
import http.server
import io
import json
import ssl
import subprocess
import tarfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from function.instances import lookup
from function.naming import GPU_TAINT_KEY
from function.stack.mesh import (
    LINKERD_IDENTITY_SECRET,
    LINKERD_IDENTITY_SECRET_KEY,
    LINKERD_IDENTITY_SECRET_NAMESPACE,
)
from tests.e2e.kube import CRD, ApiError, Kind, Kube, wait_for
from tests.e2e.stack import (
    NAMESPACE,
    ROOT,
    Stack,
    _cert,
    _key,
    _name,
    _pem,
    _wait_port,
    _write_key,
)

WORKLOAD_PORT = 6444
HELM_REPO_PORT = 8879
HELM_REPO = f"http://127.0.0.1:{HELM_REPO_PORT}"
CHARTS = ROOT.parent / "shared" / "charts"

NODE = Kind("", "v1", "nodes", namespaced=False)
POD = Kind("", "v1", "pods", namespaced=True)
CONFIG_MAP = Kind("", "v1", "configmaps", namespaced=True)
PVC = Kind("", "v1", "persistentvolumeclaims", namespaced=True)
PV = Kind("", "v1", "persistentvolumes", namespaced=False)
MUTATING_WEBHOOKS = Kind("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", namespaced=False)
VALIDATING_WEBHOOKS = Kind("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", namespaced=False)
API_SERVICE = Kind("apiregistration.k8s.io", "v1", "apiservices", namespaced=False)
STORAGE_CLASS = Kind("storage.k8s.io", "v1", "storageclasses", namespaced=False)
SERVICE = Kind("", "v1", "services", namespaced=True)
ENDPOINT_SLICE = Kind("discovery.k8s.io", "v1", "endpointslices", namespaced=True)

# Every default controller but those for clouds and node lifecycle (kwok's nodes
# renew no lease: that controller would mark them unreachable and evict every pod).
KCM_CONTROLLERS = (
    "*",
    "-node-lifecycle-controller",
    "-cloud-node-lifecycle-controller",
    "-service-lb-controller",
    "-node-route-controller",
    "-node-ipam-controller",
)

# The workload cluster's nodes: name -> (instance type from the function's
# catalogue, or None for a CPU node of the given cores/GiB), labels, GPU taint.
SYSTEM_NODE = (32, 128)
EPHEMERAL = "100Gi"  # the root volume (charts' Jobs request ephemeral-storage)
NODES: dict[str, dict[str, Any]] = {
    "system-0": {"cpu_mem": SYSTEM_NODE},
    "system-1": {"cpu_mem": SYSTEM_NODE},
    "gpu-g5-2xlarge": {"instance": "g5.2xlarge"},
}

# kwok's stages: nodes Ready, pods Running with an IP, Job pods Succeeded.
STAGES = Path(__file__).with_name("kwok-stages.yaml")

# Answers a stand-in waits out: a CRD just established ("storage is
# (re)initializing"), an object gone between list and write, a busy server.
TRANSIENT = frozenset({404, 409, 429, 500, 503, 504})

# What operators, CSI drivers and aggregated APIs would do in a real cluster,
# played by the harness (README "End to end"): kind -> what the stand-in writes.
# Assertions on these kinds are "accepted by the real CRD and Synced", not Ready.
STAND_INS: dict[str, str] = {
    "Service (LoadBalancer)": "status.loadBalancer.ingress, an address from 192.0.2.0/24 (the cloud's "
    "load balancer controller; helm's wait needs it)",
    "StorageClass": "longhorn, from the ConfigMap longhorn-storageclass (Longhorn's manager creates it), "
    "deleted once that ConfigMap is gone (the uninstall job's longhorn-manager v1.12.1 "
    "controller/uninstall_controller.go deleteStorageClass)",
    "PersistentVolumeClaim": "a bound PersistentVolume per claim of a StorageClass whose "
    "provisioner nothing runs, deleted once Released under the Delete reclaim policy (the CSI driver's part)",
    "APIService": "for each aggregated API (KEDA's external.metrics.k8s.io): a server on its Service's "
    "ClusterIP (on lo) answering discovery with no resources, its CA in the APIService's caBundle "
    "(what KEDA's metrics server and operator do); without it the namespace controller cannot "
    "finish deleting any namespace",
    "admission webhooks": "for each webhook configuration a chart installs: a server on its Service's "
    "ClusterIP allowing every review unchanged, its CA in the caBundle (the operator's webhook server)",
    "ScaledObject": "Ready=True (KEDA's operator)",
    "ClusterPolicy": "Ready=True (Kyverno's admission controller)",
    "OpenTelemetryCollector": "Ready=True, reason Reconciled (opentelemetry-operator v0.158.0 "
    "internal/status/collector/handle.go HandleReconcileStatus)",
    "Grafana": "stage complete, stageStatus success, GrafanaReady=True (what grafana-operator v5.24.0 "
    "writes: controllers/grafana_controller.go)",
    "GrafanaDashboard": "DashboardSynchronized=True, reason ApplySuccessful (grafana-operator v5.24.0 "
    "controllers/controller_shared.go buildSynchronizedCondition)",
    "GrafanaDatasource": "DatasourceSynchronized=True, reason ApplySuccessful (grafana-operator v5.24.0)",
}
# The (group, plural) each status stand-in writes, with its status.
_STATUS_STAND_INS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh", "scaledobjects"): {"conditions": [{"type": "Ready", "status": "True", "reason": "StandIn"}]},
    ("kyverno.io", "clusterpolicies"): {
        "ready": True,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}],
    },
    ("opentelemetry.io", "opentelemetrycollectors"): {
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]
    },
    ("grafana.integreatly.org", "grafanas"): {
        "stage": "complete",
        "stageStatus": "success",
        "conditions": [{"type": "GrafanaReady", "status": "True", "reason": "GrafanaReady"}],
    },
    ("grafana.integreatly.org", "grafanadashboards"): {
        "conditions": [{"type": "DashboardSynchronized", "status": "True", "reason": "ApplySuccessful"}]
    },
    ("grafana.integreatly.org", "grafanadatasources"): {
        "conditions": [{"type": "DatasourceSynchronized", "status": "True", "reason": "ApplySuccessful"}]
    },
}


def _helmignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pattern in patterns:
        pat = pattern.rstrip("/")
        if fnmatch.fnmatch(rel, pat) or any(fnmatch.fnmatch(p, pat) for p in parts):
            return True
    return False


def pack_charts(src: Path, out: Path, base_url: str) -> dict[str, tuple[str, str]]:
    """Pack every chart under ``src`` into ``out`` with an ``index.yaml``; {name: (version, file)}."""
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, list[dict[str, Any]]] = {}
    packed: dict[str, tuple[str, str]] = {}
    for chart_dir in sorted(p for p in src.iterdir() if (p / "Chart.yaml").is_file()):
        meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        name, version = meta["name"], str(meta["version"])
        ignore_file = chart_dir / ".helmignore"
        patterns = [
            line.strip()
            for line in (ignore_file.read_text().splitlines() if ignore_file.exists() else [])
            if line.strip() and not line.startswith("#") and not line.startswith("!")
        ]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path in sorted(chart_dir.rglob("*")):
                rel = path.relative_to(chart_dir).as_posix()
                if path.is_file() and not _helmignored(rel, patterns):
                    tar.add(path, arcname=f"{name}/{rel}")
        filename = f"{name}-{version}.tgz"
        (out / filename).write_bytes(buf.getvalue())
        entry = {k: v for k, v in meta.items() if k != "dependencies"}
        entry.update(
            apiVersion=meta.get("apiVersion", "v1"),
            urls=[f"{base_url}/{filename}"],
            digest=hashlib.sha256(buf.getvalue()).hexdigest(),
            created="2026-01-01T00:00:00Z",
        )
        entries.setdefault(name, []).append(entry)
        packed[name] = (version, filename)
    index = {"apiVersion": "v1", "entries": entries, "generated": "2026-01-01T00:00:00Z"}
    (out / "index.yaml").write_text(yaml.safe_dump(index))
    return packed


def chart_overrides(packed: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
    """The Input's ``spec.charts``: every catalogue component from the local repository."""
    from function.models.input import DEFAULT_CHARTS

    out = {}
    for component, (_, chart, version) in DEFAULT_CHARTS.items():
        if chart in packed and packed[chart][0] == version:
            out[component] = {"repository": HELM_REPO, "chart": chart, "version": version}
    return out


def node_shape(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A Node object kwok will manage, shaped from the function's catalogue."""
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}
    taints: list[dict[str, str]] = []
    if "instance" in spec:
        it = lookup(spec["instance"])
        assert it is not None, spec["instance"]
        cpu = f"{int(it.allocatable_cpu * 1000)}m"
        memory = f"{int(it.allocatable_memory / Decimal(1024**2))}Mi"
        capacity = {"cpu": str(it.vcpus), "memory": f"{int(it.memory_gib)}Gi", "pods": "110",
                    "nvidia.com/gpu": str(it.gpus), "ephemeral-storage": EPHEMERAL}
        allocatable = {"cpu": cpu, "memory": memory, "pods": "110", "nvidia.com/gpu": str(it.gpus),
                       "ephemeral-storage": EPHEMERAL}
        labels |= {
            "node.kubernetes.io/instance-type": it.name,
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.count": str(it.gpus),
            "nvidia.com/gpu.product": it.gpu.name,
        }
        taints.append({"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"})
        if "pool" in spec:  # a node of a composed pool: its labels and taints, as the cloud would set them
            labels |= spec["pool"]["labels"]
            taints = spec["pool"]["taints"]
    else:
        cores, gib = spec["cpu_mem"]
        capacity = allocatable = {"cpu": str(cores), "memory": f"{gib}Gi", "pods": "250",
                                  "ephemeral-storage": EPHEMERAL}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": {"taints": taints},
        "status": {"capacity": capacity, "allocatable": allocatable},
    }


# Composed node pool kinds -> how to read (instance type, labels, taints) from forProvider.
_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def pool_node(pool: dict[str, Any]) -> dict[str, Any]:
    """The node spec (for ``node_shape``) of one node of a composed EKS NodeGroup."""
    fp = pool["spec"]["forProvider"]
    if pool["kind"] != "NodeGroup":
        msg = f"no kwok node shape for {pool['kind']} yet"
        raise NotImplementedError(msg)
    taints = [
        {"key": t["key"], "value": t.get("value", ""), "effect": _EFFECTS[t["effect"]]} for t in fp.get("taint") or []
    ]
    return {
        "instance": fp["instanceTypes"][0],
        "pool": {"labels": dict(fp.get("labels") or {}), "taints": taints},
    }


def _timed(timings: dict[str, float], steps: tuple[tuple[str, tuple[Callable[[], None], ...]], ...]) -> None:
    for label, calls in steps:
        start = time.monotonic()
        for call in calls:
            call()
        timings[label] = round(time.monotonic() - start, 1)


@dataclass
class Providers:
    """The real provider-helm and provider-kubernetes and the Helm repository, once per run."""

    stack: Stack
    timings: dict[str, float] = field(default_factory=dict)
    charts: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.stack.work / "providers"

    def bring_up(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        _timed(
            self.timings,
            (("helm repository", (self._helm_repo,)), ("real providers", (self._providers, self.prerequisites))),
        )
        print("\nstand-ins (what kwok cannot run):", flush=True)
        for kind, what in STAND_INS.items():
            print(f"  {kind}: {what}", flush=True)

    def kubeconfig_secret(self, ref: dict[str, str], cluster: Workload) -> None:
        """The kubeconfig Secret a claim names for an existing cloud cluster: ``cluster``'s."""
        self.stack.kubectl("create", "namespace", ref["namespace"], check=False)
        self.stack.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": ref["name"], "namespace": ref["namespace"]},
                    "stringData": {ref.get("key", "kubeconfig"): cluster.embedded},
                }
            ]
        )

    def point_provider_configs(self, names: list[str], cluster: Workload) -> None:
        """Make the named ProviderConfigs reach ``cluster`` through its kubeconfig Secret."""
        creds = {
            "source": "Secret",
            "secretRef": {"namespace": NAMESPACE, "name": cluster.secret, "key": "kubeconfig"},
        }
        self.stack.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": cluster.secret, "namespace": NAMESPACE},
                    "stringData": {"kubeconfig": cluster.embedded},
                },
                *(
                    {
                        "apiVersion": api,
                        "kind": "ProviderConfig",
                        "metadata": {"name": name},
                        "spec": {"credentials": creds},
                    }
                    for name in names
                    for api in ("kubernetes.crossplane.io/v1alpha1", "helm.crossplane.io/v1beta1")
                ),
            ]
        )

    # --- charts ------------------------------------------------------------
    def _helm_repo(self) -> None:
        repo = self.work / "charts"
        self.charts = pack_charts(CHARTS, repo, HELM_REPO)
        self.stack.start(
            "helm-repo",
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "http.server", "--bind", "127.0.0.1",
             "--directory", str(repo), str(HELM_REPO_PORT)],
        )
        _wait_port(HELM_REPO_PORT, "helm-repo", self.stack)

    # --- providers ---------------------------------------------------------
    def _providers(self) -> None:
        stack = self.stack
        # Their own CRDs, ProviderConfigUsages included (../shared/crds lacks them).
        crds = [stack.bins["provider-helm-crds"], stack.bins["provider-kubernetes-crds"]]
        stack.apply_crds([p for d in crds for p in sorted(Path(d).glob("*.yaml"))])
        certs = self.work / "provider-tls"
        certs.mkdir(exist_ok=True)
        key = _key()
        ca_key = _key()
        ca = _cert(_name("provider-ca"), ca_key, None, ca=True)
        cert = _cert(_name("provider"), key, (ca, ca_key), dns=("localhost",), ips=("127.0.0.1",))
        (certs / "tls.crt").write_bytes(_pem(cert))
        (certs / "ca.crt").write_bytes(_pem(ca))
        _write_key(certs / "tls.key", key)
        helm_home = self.work / "helm"
        common = {
            "KUBECONFIG": str(stack.work / "admin.kubeconfig"),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
            "TLS_SERVER_CERTS_DIR": str(certs),
            "POD_NAMESPACE": NAMESPACE,
        }
        for i, name in enumerate(("provider-helm", "provider-kubernetes")):
            stack.start(
                name,
                [stack.bins[name], "--poll=20s"],
                env={
                    **common,
                    "METRICS_BIND_ADDRESS": f"127.0.0.1:{18080 + 2 * i}",
                    "HEALTH_PROBE_BIND_ADDRESS": f"127.0.0.1:{18081 + 2 * i}",
                    "WEBHOOK_PORT": str(19443 + i),
                },
            )
        for i, name in enumerate(("provider-helm", "provider-kubernetes")):
            _wait_port(18081 + 2 * i, name, stack, timeout=120)

    def prerequisites(self) -> None:
        """What README "Before you claim" asks of a platform team: Linkerd's identity Secret."""
        anchor_key = ec.generate_private_key(ec.SECP256R1())
        anchor = _ec_cert("root.linkerd.cluster.local", anchor_key, None)
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer = _ec_cert("identity.linkerd.cluster.local", issuer_key, (anchor, anchor_key))
        key_pem = issuer_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        values = {
            "identityTrustAnchorsPEM": _pem(anchor).decode(),
            "identity": {"issuer": {"tls": {"crtPEM": _pem(issuer).decode(), "keyPEM": key_pem}}},
        }
        self.stack.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": LINKERD_IDENTITY_SECRET, "namespace": LINKERD_IDENTITY_SECRET_NAMESPACE},
                    "stringData": {LINKERD_IDENTITY_SECRET_KEY: yaml.safe_dump(values)},
                }
            ]
        )

@dataclass
class Workload:
    """One workload cluster (``index`` keeps ports and Service addresses apart); on a running ``Stack``."""

    stack: Stack
    name: str = "workload"
    index: int = 0
    nodes: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(NODES))
    kube: Kube | None = None
    embedded: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    stand_in_errors: list[str] = field(default_factory=list)
    stand_in_writes: dict[str, int] = field(default_factory=dict)
    # What the cluster held before any claim touched it (``inventory``).
    baseline: set[tuple[str, str, str, str]] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _served: dict[tuple[str, str, int], _StandInServer] = field(default_factory=dict)
    _ca: tuple[x509.Certificate, Any] | None = None
    _lb: int = 0

    @property
    def work(self) -> Path:
        return self.stack.work / self.name

    @property
    def port(self) -> int:
        return WORKLOAD_PORT + self.index

    @property
    def secret(self) -> str:
        return f"{self.name}-kubeconfig"

    def bring_up(self) -> None:
        t0 = time.monotonic()
        self.work.mkdir(parents=True, exist_ok=True)
        _timed(
            self.timings,
            (
                ("workload cluster", (self._kubeconfigs, self._apiserver, self._controllers)),
                ("kwok nodes Ready", (self._nodes,)),
            ),
        )
        threading.Thread(target=self._stand_ins, name=f"{self.name}-stand-ins", daemon=True).start()
        assert self.kube is not None
        self.baseline = inventory(self.kube)
        self.timings["workload bring-up"] = round(time.monotonic() - t0, 1)

    def tear_down(self) -> None:
        """Stop the stand-ins and this cluster's processes (the stack's teardown would too)."""
        self._stop.set()
        for server in self._served.values():
            server.shutdown()
            server.server_close()
        for proc in ("apiserver", "controller-manager", "scheduler", "kwok"):
            self.stack.stop(f"{self.name}-{proc}")

    # --- workload cluster --------------------------------------------------
    def _kubeconfigs(self) -> None:
        pki = self.stack.work / "pki"
        def config(server: str, embed: bool) -> dict[str, Any]:
            if embed:
                cluster = {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")}
                user = {"client-certificate-data": _b64(pki / "admin.crt"), "client-key-data": _b64(pki / "admin.key")}
            else:
                cluster = {"server": server, "certificate-authority": str(pki / "ca.crt")}
                user = {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")}
            return {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "workload", "cluster": cluster}],
                "users": [{"name": "admin", "user": user}],
                "contexts": [{"name": "workload", "context": {"cluster": "workload", "user": "admin"}}],
                "current-context": "workload",
            }
        server = f"https://127.0.0.1:{self.port}"
        (self.work / "admin.kubeconfig").write_text(yaml.safe_dump(config(server, embed=False)))
        self.embedded = yaml.safe_dump(config(server, embed=True))
        self.kube = Kube("127.0.0.1", self.port, pki / "ca.crt", pki / "admin.crt", pki / "admin.key")

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Any:
        done = subprocess.run(
            [self.stack.bins["kubectl"], f"--kubeconfig={self.work / 'admin.kubeconfig'}", *args],
            input=stdin, capture_output=True, text=True, timeout=120, check=False,
        )
        if check and done.returncode != 0:
            msg = f"kubectl (workload) {' '.join(args)} failed: {done.stderr.strip()}"
            raise RuntimeError(msg)
        return done

    def _apiserver(self) -> None:
        # On the control plane's etcd, under its own prefix.
        # On the control plane's etcd, under its own prefix; Services in a range
        # of their own (the stand-ins put aggregated APIs' addresses on lo).
        argv = self.stack.apiserver_argv(
            self.port,
            self.work / "apiserver-certs",
            f"--etcd-prefix=/{self.name}",
            f"--service-cluster-ip-range=10.{100 + self.index}.0.0/16",
        )
        self.stack.start(f"{self.name}-apiserver", argv)
        assert self.kube is not None
        kube = self.kube
        wait_for("the workload API server to be ready", kube.ready, timeout=120, interval=0.5)
        wait_for(
            "the workload default namespace",
            lambda: kube.request("GET", "/api/v1/namespaces/default"),
            timeout=60,
            interval=0.5,
        )

    def _controllers(self) -> None:
        pki = self.stack.work / "pki"
        kubeconfig = str(self.work / "admin.kubeconfig")
        self.stack.start(
            f"{self.name}-controller-manager",
            [
                self.stack.bins["kube-controller-manager"],
                f"--kubeconfig={kubeconfig}",
                "--controllers=" + ",".join(KCM_CONTROLLERS),
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--concurrent-statefulset-syncs=10",
            ],
        )
        self.stack.start(
            f"{self.name}-scheduler",
            [
                self.stack.bins["kube-scheduler"],
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
            ],
        )
        stages = STAGES
        self.stack.start(
            f"{self.name}-kwok",
            [
                self.stack.bins["kwok"],
                f"--kubeconfig={kubeconfig}",
                f"--config={stages}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.240.0.1",
                f"--server-address=127.0.0.1:{10247 + self.index}",
            ],
        )

    def add_node(self, name: str, spec: dict[str, Any]) -> None:
        """One more kwok node (a composed pool's), Ready and untainted before this returns."""
        self.nodes[name] = spec
        self._nodes({name: spec})

    def _nodes(self, nodes: dict[str, dict[str, Any]] | None = None) -> None:
        assert self.kube is not None
        kube = self.kube
        for name, spec in (self.nodes if nodes is None else nodes).items():
            node = node_shape(name, spec)
            want = node["spec"]["taints"]
            kube.request("POST", NODE.path(), node)
            # The API server adds node.kubernetes.io/not-ready on create; with the
            # node lifecycle controller off nothing would remove it.
            kube.patch(NODE, name, {"spec": {"taints": want or None}})

        def ready() -> bool:
            nodes = kube.list(NODE)
            return len(nodes) == len(self.nodes) and all(
                any(c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions") or [])
                and not any(t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints") or [])
                for n in nodes
            )

        def settle() -> bool:
            for n in kube.list(NODE):
                extra = [t for t in n["spec"].get("taints") or [] if t["key"].startswith("node.kubernetes.io/")]
                if extra:
                    keep = [t for t in n["spec"]["taints"] if t not in extra]
                    kube.patch(NODE, n["metadata"]["name"], {"spec": {"taints": keep or None}})
            return ready()

        wait_for("the kwok nodes to be Ready and untainted", settle, timeout=120, interval=1)

    # --- stand-ins ---------------------------------------------------------
    def _stand_ins(self) -> None:
        assert self.kube is not None
        while not self._stop.wait(2):
            try:
                self._api_services()
                self._webhooks()
                self._storage_classes()
                self._load_balancers()
                self._volumes()
                self._released_volumes()
                self._statuses()
            except ApiError as exc:
                if exc.status not in TRANSIENT:
                    self.stand_in_errors.append(f"{type(exc).__name__}: {exc}"[:600])
            except Exception as exc:  # recorded; the real-provider tests fail on it
                where = "".join(traceback.format_tb(exc.__traceback__, limit=-2)).strip()
                self.stand_in_errors.append(f"{type(exc).__name__}: {exc}"[:600] + f"\n{where}")

    def _count(self, what: str) -> None:
        self.stand_in_writes[what] = self.stand_in_writes.get(what, 0) + 1

    def _serve(self, ref: dict[str, Any]) -> _StandInServer | None:
        """The stand-in HTTPS server on the ClusterIP of the Service ``ref`` names (started once)."""
        assert self.kube is not None
        key_ = (ref["namespace"], ref["name"], int(ref.get("port") or 443))
        if key_ in self._served:
            return self._served[key_]
        service = self.kube.get(SERVICE, ref["name"], ref["namespace"])
        if service is None:
            return None
        ip = service["spec"]["clusterIP"]
        if self._ca is None:
            ca_key = _key()
            self._ca = (_cert(_name("e2e-stand-in-ca"), ca_key, None, ca=True), ca_key)
        key = _key()
        host = f"{ref['name']}.{ref['namespace']}.svc"
        cert = _cert(_name(host), key, self._ca, dns=(host,), ips=(ip,))
        certs = self.work / "stand-in-servers" / f"{ref['namespace']}-{ref['name']}"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "tls.crt").write_bytes(_pem(cert))
        _write_key(certs / "tls.key", key)
        subprocess.run(["ip", "addr", "replace", f"{ip}/32", "dev", "lo"], check=True)
        server = _StandInServer(ip, key_[2], certs)
        threading.Thread(target=server.serve_forever, name=f"stand-in-{host}", daemon=True).start()
        self._served[key_] = server
        return server

    @property
    def _ca_bundle(self) -> str:
        assert self._ca is not None
        return base64.b64encode(_pem(self._ca[0])).decode()

    def _api_services(self) -> None:
        """Aggregated APIs' servers: discovery answered on the Service's ClusterIP, caBundle patched."""
        assert self.kube is not None
        kube = self.kube
        for api in kube.list(API_SERVICE):
            name, spec = api["metadata"]["name"], api["spec"]
            ref = spec.get("service")
            if not ref or (ref["namespace"], ref["name"], int(ref.get("port") or 443)) in self._served:
                continue
            server = self._serve(ref)
            if server is None:
                continue
            server.discovery(spec["group"], spec["version"])
            kube.patch(API_SERVICE, name, {"spec": {"caBundle": self._ca_bundle}})
            self._count("APIService")

    def _webhooks(self) -> None:
        """Operators' admission webhooks: every review allowed as it is, on the Service's ClusterIP."""
        assert self.kube is not None
        kube = self.kube
        for kind in (MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS):
            for config in kube.list(kind):
                hooks = config.get("webhooks") or []
                changed = False
                for hook in hooks:
                    ref = (hook.get("clientConfig") or {}).get("service")
                    if not ref or self._serve(ref) is None:
                        continue
                    if hook["clientConfig"].get("caBundle") != self._ca_bundle:
                        hook["clientConfig"]["caBundle"] = self._ca_bundle
                        changed = True
                if changed:
                    kube.patch(kind, config["metadata"]["name"], {"webhooks": hooks})
                    self._count("admission webhook")

    def _load_balancers(self) -> None:
        """The cloud's load balancer controller: an ingress address for each LoadBalancer Service."""
        assert self.kube is not None
        kube = self.kube
        for svc in kube.list(SERVICE):
            if svc["spec"].get("type") != "LoadBalancer" or (svc.get("status") or {}).get("loadBalancer", {}).get("ingress"):
                continue
            self._lb += 1
            ingress = [{"ip": f"192.0.2.{self._lb % 250 + 1}"}]
            meta = svc["metadata"]
            kube.patch_status(SERVICE, meta["name"], {"status": {"loadBalancer": {"ingress": ingress}}}, meta["namespace"])
            self._count("Service")

    def _storage_classes(self) -> None:
        """Longhorn's manager: the StorageClass its chart leaves in a ConfigMap."""
        assert self.kube is not None
        kube = self.kube
        configs = [
            cm
            for cm in kube.list(CONFIG_MAP, selector="app.kubernetes.io/name=longhorn")
            if cm["metadata"]["name"] == "longhorn-storageclass"
        ]
        if not configs:  # uninstalled: Longhorn's uninstall job deletes its class
            for sc in kube.list(STORAGE_CLASS, selector="e2e.openhands.ai/stand-in=longhorn-manager"):
                kube.delete(STORAGE_CLASS, sc["metadata"]["name"])
                self._count("StorageClass deleted")
        for cm in configs:
            sc = yaml.safe_load(cm["data"]["storageclass.yaml"])
            if kube.get(STORAGE_CLASS, sc["metadata"]["name"]) is None:
                sc["metadata"].setdefault("labels", {})["e2e.openhands.ai/stand-in"] = "longhorn-manager"
                kube.request("POST", STORAGE_CLASS.path(), sc)
                self._count("StorageClass")

    def _volumes(self) -> None:
        """The CSI driver's part: a bound volume for each pending claim of a provisioner nothing runs."""
        assert self.kube is not None
        kube = self.kube
        classes = {sc["metadata"]["name"]: sc for sc in kube.list(STORAGE_CLASS)}
        for pvc in kube.list(PVC):
            spec, meta = pvc["spec"], pvc["metadata"]
            if spec.get("volumeName") or meta.get("deletionTimestamp"):
                continue
            sc = classes.get(spec.get("storageClassName") or "")
            if sc is None:
                continue  # no such class (yet): Pending, as in a real cluster
            pv = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": f"pv-{meta['uid']}",
                    "labels": {"e2e.openhands.ai/stand-in": "csi"},
                    "annotations": {"pv.kubernetes.io/provisioned-by": sc["provisioner"]},
                },
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                    "storageClassName": sc["metadata"]["name"],
                    "volumeMode": spec.get("volumeMode", "Filesystem"),
                    "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
                    "hostPath": {"path": f"/tmp/e2e-stand-in/{meta['uid']}"},
                },
            }
            try:
                kube.request("POST", PV.path(), pv)
                self._count("PersistentVolume")
            except ApiError as exc:
                if exc.status != 409:
                    raise

    def _released_volumes(self) -> None:
        """The CSI driver's part on deletion: a stand-in volume released under ``Delete`` goes."""
        assert self.kube is not None
        kube = self.kube
        for pv in kube.list(PV, selector="e2e.openhands.ai/stand-in=csi"):
            released = (pv.get("status") or {}).get("phase") == "Released"
            if released and pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                kube.delete(PV, pv["metadata"]["name"])
                self._count("PersistentVolume deleted")

    def _statuses(self) -> None:
        """Operators' status writes, for the kinds in ``_STATUS_STAND_INS`` whose CRDs exist."""
        assert self.kube is not None
        kube = self.kube
        crds = {(c["spec"]["group"], c["spec"]["names"]["plural"]): c for c in kube.list(CRD)}
        for (group, plural), status in _STATUS_STAND_INS.items():
            crd = crds.get((group, plural))
            if crd is None:
                continue
            version = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
            kind = Kind(group, version, plural, crd["spec"]["scope"] == "Namespaced")
            for obj in kube.list(kind):
                have = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
                if all(have.get(c["type"]) == "True" for c in status["conditions"]):
                    continue
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                body = dict(status)
                body["conditions"] = [
                    {**c, "lastTransitionTime": stamp, "message": "e2e stand-in", "observedGeneration": obj["metadata"].get("generation", 1)}
                    for c in status["conditions"]
                ]
                meta = obj["metadata"]
                try:
                    kube.patch_status(kind, meta["name"], {"status": body}, meta.get("namespace", ""))
                    self._count(crd["spec"]["names"]["kind"])
                except ApiError as exc:
                    if exc.status != 404:
                        raise


def _ec_cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, Any] | None) -> x509.Certificate:
    """A CA certificate for Linkerd's identity (ECDSA P-256, as Linkerd asks)."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer[0].subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .sign(issuer[1] if issuer else key, hashes.SHA256())
    )


class _StandInServer(http.server.ThreadingHTTPServer):
    """HTTPS on a Service's ClusterIP: aggregated API discovery (no resources) and admission reviews (allowed)."""

    def __init__(self, ip: str, port: int, certs: Path) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        super().__init__((ip, port), _StandInHandler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certs / "tls.crt"), str(certs / "tls.key"))
        self.socket = ctx.wrap_socket(self.socket, server_side=True)

    def discovery(self, group: str, version: str) -> None:
        gv = f"{group}/{version}"
        self.answers[f"/apis/{gv}"] = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": []}
        self.answers[f"/apis/{group}"] = {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": [{"groupVersion": gv, "version": version}],
            "preferredVersion": {"groupVersion": gv, "version": version},
        }


class _StandInHandler(http.server.BaseHTTPRequestHandler):
    server: _StandInServer

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        body = self.server.answers.get(self.path.split("?")[0].rstrip("/"))
        self._answer(200 if body else 404, body or {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        uid = (review.get("request") or {}).get("uid", "")
        api = review.get("apiVersion", "admission.k8s.io/v1")
        self._answer(200, {"apiVersion": api, "kind": "AdmissionReview", "response": {"uid": uid, "allowed": True}})

    def log_message(self, *args: Any) -> None:
        pass


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


# What ``inventory`` leaves out: kinds the API server and its controllers write
# for anything (events, leases, endpoints derived from Services), whose presence
# says nothing about what an install or uninstall left behind.
_NOT_INVENTORIED = frozenset(
    {
        ("", "Event"),
        ("events.k8s.io", "Event"),
        ("coordination.k8s.io", "Lease"),
        ("", "Endpoints"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("", "ComponentStatus"),
    }
)


def _listed(kube: Kube) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(group, kind, object) for every object ``kube`` lists, by discovery.

    Each API group at its preferred version (one version per group, so no object
    is counted twice), every resource that can be listed, subresources and the
    kinds in ``_NOT_INVENTORIED`` left out.
    """
    versions = [f"/api/{v}" for v in kube.request("GET", "/api")["versions"]]
    versions += [f"/apis/{g['preferredVersion']['groupVersion']}" for g in kube.request("GET", "/apis")["groups"]]
    for base in versions:
        group = base.split("/")[2] if base.startswith("/apis/") else ""
        try:
            resources = kube.request("GET", base)["resources"]
        except ApiError as exc:
            if exc.status in TRANSIENT:  # an aggregated API whose server is gone
                continue
            raise
        for res in resources:
            if "/" in res["name"] or "list" not in res.get("verbs", ()) or (group, res["kind"]) in _NOT_INVENTORIED:
                continue
            try:
                items = kube.request("GET", f"{base}/{res['name']}")["items"]
            except ApiError as exc:
                if exc.status in TRANSIENT:
                    continue
                raise
            for item in items:
                yield group, res["kind"], item


def inventory(kube: Kube) -> set[tuple[str, str, str, str]]:
    """Every object ``kube`` lists, as (group, kind, namespace, name)."""
    return {
        (group, kind, item["metadata"].get("namespace", ""), item["metadata"]["name"])
        for group, kind, item in _listed(kube)
    }


def terminating(kube: Kube) -> list[str]:
    """Every object being deleted, with its finalizers: what a stuck deletion waits on."""
    return sorted(
        f"{kind}.{group} {item['metadata'].get('namespace', '')}/{item['metadata']['name']} "
        f"finalizers={item['metadata'].get('finalizers')}"
        for group, kind, item in _listed(kube)
        if item["metadata"].get("deletionTimestamp")
    )
