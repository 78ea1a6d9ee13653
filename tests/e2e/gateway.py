"""The model gateway's controllers for real, on a workload cluster of the e2e suite.

Envoy Gateway v1.8.1 and the AI Gateway v1.1.0 controller (``scripts/e2e-build.sh
gateway``) run as processes against the workload cluster a claim with the gateway
installed its charts on, with the arguments and configuration the charts gave
their Deployments (read back from the cluster), leader election off:

- the certgen Job's work is done by the same binary (``envoy-gateway certgen``:
  the control plane's certificate Secrets); Envoy Gateway reads its xDS
  certificate from the fixed path ``/certs`` and its configuration is the chart's
  ConfigMap, so it runs in a mount namespace of its own (``/certs`` and
  ``/etc/hosts`` bound to files of this run; an empty ``/certs`` directory is
  created on the host as the mount point when missing) and, since it binds the
  controller-runtime defaults and Envoy Gateway's fixed ports on every address,
  in a network namespace of its own, joined to the test's by a veth pair
  (``10.250.<index>.0/30``). There it reaches the workload API server through a
  TCP relay on the veth address, and the AI Gateway controller's extension
  server by the cluster DNS name the chart configures (``/etc/hosts``);
- the AI Gateway controller runs in the test's namespace, with the webhook
  certificate the chart generated; its webhook port moves off 9443, the port of
  the webhook Services the stand-ins serve (README "End to end").

What they show: every AIGatewayRoute the function composes turned into its
HTTPRoute (same name), the Gateway API objects and Envoy Gateway policies
Accepted with their references resolved, and Envoy Gateway's xDS translation for
the Gateway's listener passed through the AI Gateway's extension server (which
logs inserting its external processor there). Envoy (the proxy) has no build here:
kwok "runs" the proxy pods Envoy Gateway creates, so the data path is proven up
to this translation.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from function.stack import gateway as gw
from tests.e2e.kube import ApiError, Kind, Kube, wait_for
from tests.e2e.stack import Stack
from tests.e2e.workload import CONFIG_MAP, Workload

# The claim applied for real with the gateway (README "End to end").
CASE = "existing"
SECOND_MODEL = {
    "name": "mistral",
    "model": "mistral:7b",
    "replicas": 1,
    "resources": {"gpu": True, "memory": "16Gi", "cpu": "4"},
    "storage": {"size": "50Gi", "class": ""},
}
# A second GPU node for the second model (one GPU each).
EXTRA_NODES = {"gpu-g5-2xlarge-2": {"instance": "g5.2xlarge"}}
# Teams: keys from two Secrets, one team limited to one model, two with quotas.
TEAMS = [
    {
        "name": "search",
        "apiKeySecretRef": {"name": "team-keys"},
        "models": ["llama2"],
        "quota": {"tokens": 100000, "period": "Hour"},
    },
    {"name": "research", "apiKeySecretRef": {"name": "team-keys"}, "quota": {"tokens": 50000, "period": "Day"}},
    {"name": "ops", "apiKeySecretRef": {"name": "ops-key", "key": "api-key"}},
]

SECRET = Kind("", "v1", "secrets", namespaced=True)
NAMESPACE_KIND = Kind("", "v1", "namespaces", namespaced=False)
DEPLOYMENT = Kind("apps", "v1", "deployments", namespaced=True)
GATEWAY_CLASS = Kind("gateway.networking.k8s.io", "v1", "gatewayclasses", namespaced=False)
GATEWAY = Kind("gateway.networking.k8s.io", "v1", "gateways", namespaced=True)
HTTP_ROUTE = Kind("gateway.networking.k8s.io", "v1", "httproutes", namespaced=True)
AI_ROUTE = Kind("aigateway.envoyproxy.io", "v1beta1", "aigatewayroutes", namespaced=True)
AI_BACKEND = Kind("aigateway.envoyproxy.io", "v1beta1", "aiservicebackends", namespaced=True)
BACKEND = Kind("gateway.envoyproxy.io", "v1alpha1", "backends", namespaced=True)
ENVOY_PROXY = Kind("gateway.envoyproxy.io", "v1alpha1", "envoyproxies", namespaced=True)
SECURITY_POLICY = Kind("gateway.envoyproxy.io", "v1alpha1", "securitypolicies", namespaced=True)
TRAFFIC_POLICY = Kind("gateway.envoyproxy.io", "v1alpha1", "backendtrafficpolicies", namespaced=True)
CLIENT_POLICY = Kind("gateway.envoyproxy.io", "v1alpha1", "clienttrafficpolicies", namespaced=True)
ROUTE_FILTER = Kind("gateway.envoyproxy.io", "v1alpha1", "httproutefilters", namespaced=True)
POLICIES = (SECURITY_POLICY, TRAFFIC_POLICY, CLIENT_POLICY)
# Everything of the gateway in its namespace (what the function composes and
# what the controllers make of it), for "nothing else changed".
NAMESPACED = (GATEWAY, HTTP_ROUTE, AI_ROUTE, AI_BACKEND, BACKEND, ENVOY_PROXY, *POLICIES, ROUTE_FILTER)

EG_DEPLOYMENT = "envoy-gateway"
EG_CONFIG = "envoy-gateway-config"
EG_CERTS = "envoy-gateway"  # the Secret certgen writes: the controller's xDS certificate
AIGW_DEPLOYMENT = "ai-gateway-controller"
AIGW_WEBHOOK_PORT = 19463


def with_gateway(body: dict[str, Any]) -> None:
    """The claim of ``CASE`` with the gateway on: a second model, teams with keys and quotas."""
    body["spec"]["models"].append(copy.deepcopy(SECOND_MODEL))
    body["spec"]["gateway"] = {"teams": copy.deepcopy(TEAMS)}


def models(body: dict[str, Any]) -> list[str]:
    return [m["name"] for m in body["spec"]["models"]]


def key_secrets(kube: Kube) -> None:
    """The teams' key Secrets in ``ollama-gateway``, as a platform team makes them (README)."""
    keys = {
        "team-keys": {"search": secrets.token_hex(24), "research": secrets.token_hex(24)},
        "ops-key": {"api-key": secrets.token_hex(24)},
    }
    for name, data in keys.items():
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": gw.NAMESPACE},
            "type": "Opaque",
            "stringData": data,
        }
        try:
            kube.request("POST", SECRET.path(namespace=gw.NAMESPACE), body)
        except ApiError as exc:
            if exc.status != 409:
                raise


def _decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


class _Relay:
    """TCP from ``listen`` to ``target``: the workload API server for a process in another network namespace."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.create_server(listen)
        self.closed = threading.Event()
        threading.Thread(target=self._accept, name=f"relay-{listen[0]}", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# Envoy Gateway's process: mounts, then waits for its end of the veth pair.
_EG_SCRIPT = """
set -eu
trap 'echo "envoy-gateway namespace setup failed at line $LINENO" >&2' EXIT
mount --bind "$EG_CERTS_DIR" /certs
mount --bind "$EG_HOSTS" /etc/hosts
ip link set lo up
i=0; while ! ip link show eg0 >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 600 ] || exit 1; sleep 0.1; done
ip addr add "$EG_ADDR/30" dev eg0
ip link set eg0 up
ip route add default via "$EG_PEER"
trap - EXIT
exec "$@"
"""


@dataclass
class Controllers:
    """Envoy Gateway and the AI Gateway controller running against ``workload``."""

    stack: Stack
    workload: Workload
    relay: _Relay | None = None
    names: list[str] = field(default_factory=list)
    # Process name -> the chart's Deployment (namespace, name) it plays.
    deployments: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Process name -> seconds (monotonic) at which it ended with its Deployment.
    ended: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def work(self) -> Path:
        return self.workload.work / "gateway-controllers"

    @property
    def kube(self) -> Kube:
        assert self.workload.kube is not None
        return self.workload.kube

    @property
    def host_ip(self) -> str:
        return f"10.250.{self.workload.index}.1"

    @property
    def eg_ip(self) -> str:
        return f"10.250.{self.workload.index}.2"

    @property
    def veth(self) -> str:
        return f"fop-eg{self.workload.index}"

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self._ai_gateway()
        self._envoy_gateway()
        threading.Thread(target=self._follow, name=f"{self.workload.name}-controllers", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for name in self.names:
            self.stack.stop(name)
        if self.relay is not None:
            self.relay.close()

    def _follow(self) -> None:
        """End each controller once its chart's Deployment is deleted, as its pod would be.

        Uninstalling a Release deletes the Deployment and the kubelet stops its
        pod; without this the processes would outlive their Releases and finish
        any finalizer an uninstall ordered wrongly would leave for ever.
        """
        while not self._stop.wait(0.5):
            for name, (namespace, deployment) in list(self.deployments.items()):
                if name in self.ended:
                    continue
                try:
                    dep = self.kube.get(DEPLOYMENT, deployment, namespace)
                except (ApiError, OSError):
                    continue
                if dep is None or dep["metadata"].get("deletionTimestamp"):
                    self.stack.stop(name)
                    self.ended[name] = time.monotonic()
                    print(f"\n{name}: its Deployment {namespace}/{deployment} deleted, process ended", flush=True)

    def _deployment_args(self, namespace: str, name: str) -> list[str]:
        dep = self.kube.get(DEPLOYMENT, name, namespace)
        assert dep is not None, f"the chart's Deployment {namespace}/{name} is missing"
        container = dep["spec"]["template"]["spec"]["containers"][0]
        return [*container.get("command", [])[1:], *container.get("args", [])]

    def _write(self, directory: Path, files: dict[str, bytes]) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (directory / name).write_bytes(data)
            (directory / name).chmod(0o600)
        return directory

    def _ai_gateway(self) -> None:
        """The chart's controller arguments; its webhook certificate; no leader election."""
        ns = gw.AIGW_NAMESPACE
        args = self._deployment_args(ns, AIGW_DEPLOYMENT)
        tls = self.kube.get(SECRET, "self-signed-cert-for-mutating-webhook", ns)
        assert tls is not None, "the AI Gateway chart's webhook certificate Secret is missing"
        certs = self._write(self.work / "aigw-certs", _decoded(tls))
        replace = {
            "--tlsCertDir": str(certs),
            "--enableLeaderElection": "false",
            "--webhookPort": str(AIGW_WEBHOOK_PORT),
        }
        argv = [self.stack.bins["ai-gateway-controller"]]
        for arg in args:
            flag = arg.split("=", 1)[0]
            argv.append(f"{flag}={replace.pop(flag)}" if flag in replace else arg)
        argv += [f"{k}={v}" for k, v in replace.items()]
        name = f"{self.workload.name}-ai-gateway"
        self.deployments[name] = (ns, AIGW_DEPLOYMENT)
        self.stack.start(
            name,
            argv,
            env={
                "KUBECONFIG": str(self.workload.work / "admin.kubeconfig"),
                "POD_NAMESPACE": ns,
                "DISABLE_PPROF": "1",
            },
        )
        self.names.append(name)

    def _envoy_gateway(self) -> None:
        ns = gw.EG_NAMESPACE
        env = {
            "KUBECONFIG": str(self.workload.work / "admin.kubeconfig"),
            "ENVOY_GATEWAY_NAMESPACE": ns,
        }
        # The certgen Job (a Helm hook kwok "completes"): the same binary does its work.
        subprocess.run(
            [self.stack.bins["envoy-gateway"], "certgen"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        certs = self.kube.get(SECRET, EG_CERTS, ns)
        assert certs is not None, "certgen wrote no envoy-gateway Secret"
        certs_dir = self._write(self.work / "eg-certs", _decoded(certs))
        cm = self.kube.get(CONFIG_MAP, EG_CONFIG, ns)
        assert cm is not None, "the chart's envoy-gateway-config ConfigMap is missing"
        config = yaml.safe_load(cm["data"]["envoy-gateway.yaml"])
        kube_provider = config.setdefault("provider", {}).setdefault("kubernetes", {}) or {}
        config["provider"]["kubernetes"] = kube_provider
        kube_provider.setdefault("leaderElection", {})["disable"] = True
        config_path = self.work / "envoy-gateway.yaml"
        config_path.write_text(yaml.safe_dump(config))
        hosts = self.work / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n{self.host_ip} {gw.AIGW_CONTROLLER}\n")
        kubeconfig = yaml.safe_load((self.workload.work / "admin.kubeconfig").read_text())
        cluster = kubeconfig["clusters"][0]["cluster"]
        cluster["server"] = f"https://{self.host_ip}:{self.workload.port}"
        cluster["tls-server-name"] = "localhost"
        eg_kubeconfig = self.work / "envoy-gateway.kubeconfig"
        eg_kubeconfig.write_text(yaml.safe_dump(kubeconfig))
        Path("/certs").mkdir(exist_ok=True)  # the mount point (empty on the host)
        args = [a for a in self._deployment_args(ns, EG_DEPLOYMENT) if not a.startswith("--config-path")]
        argv = [
            "unshare", "--net", "--mount", "--propagation", "private", "--",
            "sh", "-c", _EG_SCRIPT, "envoy-gateway",
            self.stack.bins["envoy-gateway"], *args, f"--config-path={config_path}",
        ]
        name = f"{self.workload.name}-envoy-gateway"
        self.deployments[name] = (ns, EG_DEPLOYMENT)
        proc = self.stack.start(
            name,
            argv,
            env={
                **env,
                "KUBECONFIG": str(eg_kubeconfig),
                "EG_CERTS_DIR": str(certs_dir),
                "EG_HOSTS": str(hosts),
                "EG_ADDR": self.eg_ip,
                "EG_PEER": self.host_ip,
            },
        )
        self.names.append(name)
        pid = str(proc.popen.pid)
        # The veth's peer goes into the process's namespace, once it has one of its own.
        own = os.stat("/proc/self/ns/net").st_ino
        wait_for(
            "Envoy Gateway's network namespace",
            lambda: os.stat(f"/proc/{pid}/ns/net").st_ino != own,
            timeout=30,
            interval=0.1,
        )
        for cmd in (
            ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eg0", "netns", pid],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth],
            ["ip", "link", "set", self.veth, "up"],
        ):
            subprocess.run(cmd, check=True, capture_output=True)
        self.relay = _Relay((self.host_ip, self.workload.port), ("127.0.0.1", self.workload.port))


# --- what the controllers made of the composed objects --------------------------


# What the AI Gateway controller logs when Envoy Gateway's xDS translation calls its
# extension server and it adds its external processor to the Gateway's listener.
EXTPROC_INSERTED = f'inserting AI Gateway extproc filter into listener\t{{"listener": "{gw.NAMESPACE}/{gw.NAME}/http"}}'


def xds_extended(controllers: Controllers) -> bool:
    """Envoy Gateway's xDS for the Gateway went through the AI Gateway's extension server."""
    log = controllers.stack.work / "logs" / f"{controllers.workload.name}-ai-gateway.log"
    return EXTPROC_INSERTED in log.read_text(errors="replace")


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def route_parents(route: dict[str, Any]) -> list[dict[str, str]]:
    """Conditions per parent (Gateway) in an HTTPRoute's status, as Envoy Gateway wrote them."""
    return [
        {c["type"]: c["status"] for c in p.get("conditions") or []}
        for p in (route.get("status") or {}).get("parents") or []
        if p.get("controllerName") == gw.EG_CONTROLLER
    ]


def policy_ancestors(policy: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {c["type"]: c["status"] for c in a.get("conditions") or []}
        for a in (policy.get("status") or {}).get("ancestors") or []
    ]


def header_matches(route: dict[str, Any]) -> list[str]:
    """Every ``x-ai-eg-model`` value an HTTPRoute matches on, once per match."""
    return [
        h["value"]
        for rule in route["spec"].get("rules") or []
        for m in rule.get("matches") or []
        for h in m.get("headers") or []
        if h.get("name") == gw.MODEL_HEADER
    ]


def problems(kube: Kube, served: list[str]) -> list[str]:
    """What is not yet as it should be once the controllers have translated the gateway."""
    out: list[str] = []
    ns = gw.NAMESPACE

    def need(what: str, ok: bool, detail: Any = "") -> None:
        if not ok:
            out.append(f"{what}: {str(detail)[:400]}")

    gc = kube.get(GATEWAY_CLASS, gw.NAME)
    need("GatewayClass Accepted", gc is not None and conditions(gc).get("Accepted") == "True", gc and gc.get("status"))
    gateway = kube.get(GATEWAY, gw.NAME, ns)
    need("Gateway Accepted", gateway is not None and conditions(gateway).get("Accepted") == "True",
         gateway and gateway.get("status"))
    ai_routes = kube.list(AI_ROUTE, ns)
    need("AIGatewayRoutes composed", bool(ai_routes))
    matched: list[str] = []
    for ai in ai_routes:
        name = ai["metadata"]["name"]
        need(f"AIGatewayRoute {name} Accepted", conditions(ai).get("Accepted") == "True", ai.get("status"))
        route = kube.get(HTTP_ROUTE, name, ns)
        if route is None:
            need(f"HTTPRoute {name} (from the AIGatewayRoute)", False, "missing")
            continue
        owners = {(o["kind"], o["name"]) for o in route["metadata"].get("ownerReferences") or []}
        need(f"HTTPRoute {name} owned by its AIGatewayRoute", ("AIGatewayRoute", name) in owners, owners)
        parents = route_parents(route)
        need(
            f"HTTPRoute {name} Accepted and ResolvedRefs",
            bool(parents) and all(p.get("Accepted") == "True" and p.get("ResolvedRefs") == "True" for p in parents),
            (route.get("status") or {}).get("parents"),
        )
        matched += header_matches(route)
    need("one header match per model", sorted(matched) == sorted(served), f"matches {sorted(matched)}, models {served}")
    for kind in (AI_BACKEND, BACKEND):
        for obj in kube.list(kind, ns):
            need(f"{obj['kind']} {obj['metadata']['name']} Accepted", conditions(obj).get("Accepted") == "True",
                 obj.get("status"))
    for kind in POLICIES:
        items = kube.list(kind, ns)
        need(f"a {kind.plural[:-3]}y composed" if kind.plural.endswith("ies") else kind.plural, bool(items))
        for policy in items:
            ancestors = policy_ancestors(policy)
            need(
                f"{policy['kind']} {policy['metadata']['name']} Accepted",
                bool(ancestors) and all(a.get("Accepted") == "True" for a in ancestors),
                (policy.get("status") or {}).get("ancestors"),
            )
    return out


def rule_seen(kube: Kube, model: str) -> dict[str, bool]:
    """Whether any AIGatewayRoute, and any HTTPRoute, still has a rule for ``model``."""
    return {
        name: any(
            model in json.dumps(rule)
            for route in kube.list(kind, gw.NAMESPACE)
            for rule in route["spec"].get("rules") or []
        )
        for name, kind in (("AIGatewayRoute", AI_ROUTE), ("HTTPRoute", HTTP_ROUTE))
    }


def present(kube: Kube, objects: set[tuple[str, str]]) -> dict[str, bool]:
    """Whether each (kind, name) of the gateway's namespace exists, by kind name."""
    kinds = {"Backend": BACKEND, "AIServiceBackend": AI_BACKEND}
    return {kind: kube.get(kinds[kind], name, gw.NAMESPACE) is not None for kind, name in sorted(objects)}


def snapshot(kube: Kube) -> dict[tuple[str, str], tuple[str, int, Any]]:
    """(kind, name) -> (uid, generation, spec) of every gateway object in its namespace."""
    return {
        (o["kind"], o["metadata"]["name"]): (o["metadata"]["uid"], o["metadata"].get("generation", 0), o.get("spec"))
        for kind in NAMESPACED
        for o in kube.list(kind, gw.NAMESPACE)
    }


def probe(check: Callable[[], list[str]]) -> Callable[[], bool]:
    """For ``wait_for``: true once ``check`` finds nothing wrong (the last findings kept)."""
    last: list[list[str]] = [[]]

    def run() -> bool:
        last[0] = check()
        return not last[0]

    run.last = last  # type: ignore[attr-defined]
    return run
