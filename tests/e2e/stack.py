"""Bring up a real control plane with Crossplane and this function, and tear it down.

Every process runs inside the loopback-only network namespace ``scripts/e2e.sh``
creates (``unshare --net``): etcd, kube-apiserver, kube-controller-manager (the
garbage collector deletes composed resources through owner references), an
in-memory OCI registry, Crossplane core (``core init`` + ``core start``) and the
function itself, started with ``--tls-certs-dir`` as the External package
runtime would. Binaries come from ``scripts/e2e-build.sh`` (cache outside git).

Teardown kills exactly the processes started here, by process group.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.e2e.kube import (
    FUNCTION,
    FUNCTION_REVISION,
    GUARDS,
    SECRET,
    XRD,
    Kube,
    condition,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
CRDS = Path(os.environ.get("OLLAMA_PLATFORM_CRDS", ROOT.parent / "shared" / "crds"))
PROVIDER_CRD_DIRS = ("aws", "gcp", "azure", "helm", "kubernetes")
# What scripts/e2e-build.sh builds for the suite (the workload cluster's
# scheduler, kwok, the real in-cluster providers and the model gateway's controllers).
BUILD_TARGETS = ("etcd", "registry", "crossplane", "kube", "scheduler", "kwok", "providers", "gateway")
API_PORT = 6443
REGISTRY_PORT = 5000
FUNCTION_PORT = 9553
FUNCTION_NAME = "function-ollama-platform"
PACKAGE_TAG = "v0.1.0"
NAMESPACE = "crossplane-system"

# Crossplane's webhook server (the Usage webhook: deleting an object a Usage
# holds is refused). kube-apiserver calls a webhook Service at its ClusterIP;
# with no kube-proxy, the harness gives that address to `lo` inside the test's
# own network namespace, where Crossplane listens on every address.
WEBHOOKS = os.environ.get("E2E_WEBHOOKS", "1") != "0"
WEBHOOK_SERVICE = "crossplane-webhooks"
WEBHOOK_IP = "10.96.0.20"
# Crossplane listens on every address of the namespace, so none of its ports may
# be one a workload cluster's Service uses: the stand-in webhook servers bind
# <ClusterIP>:<port>, which fails with "Address already in use" while anything
# holds *:<port>. The controller-runtime defaults (webhooks 9443, metrics 8080,
# health 8081) are what charts' webhook Services (Envoy Gateway's and the AI
# Gateway's: 9443) and the gateway controllers run on, so Crossplane gets others.
WEBHOOK_PORT = 9595
CROSSPLANE_METRICS_PORT = 18090
CROSSPLANE_HEALTH_PORT = 18091

# Crossplane 2.1.4 registers one watch handler per composed object of a kind it
# does not watch yet, so one event is counted up to 14 times and the per-XR
# circuit breaker (burst 100, 1 token/s, 5 min cooldown) opens on every converged
# XR. These keep the tests' time to Ready bounded; see README "End to end".
CIRCUIT_BREAKER_FLAGS = (
    "--circuit-breaker-burst=1000",
    "--circuit-breaker-refill-rate=50",
    "--circuit-breaker-cooldown=10s",
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_secret(secret: dict[str, Any], directory: Path) -> None:
    """Write each key of a Secret's data, decoded, to a file of that name readable by us only."""
    for key, value in secret["data"].items():
        path = directory / key
        path.write_bytes(base64.b64decode(value))
        path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Certificate, Any] | None,
    *,
    ca: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        usages = [x509.ExtendedKeyUsageOID.CLIENT_AUTH] if client else [
            x509.ExtendedKeyUsageOID.SERVER_AUTH
        ]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if dns or ips:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str, org: str = "") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


@dataclass
class Proc:
    """A process this harness started."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]


@dataclass
class Stack:
    """The running control plane; ``bring_up`` then ``tear_down`` (always)."""

    work: Path
    bins: dict[str, str]
    procs: list[Proc] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    kube: Kube | None = None
    env: dict[str, str] = field(default_factory=dict)

    # --- processes ---------------------------------------------------------
    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        popen = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=self.work,
            preexec_fn=_die_with_parent,  # noqa: PLW1509  # started before any thread runs
        )
        proc = Proc(name, popen, log, handle)
        self.procs.append(proc)
        return proc

    def check(self) -> None:
        """Raise (with its log's tail) when a process started here has exited."""
        for proc in self.procs:
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace")[-3000:]
                msg = f"{proc.name} exited with {proc.popen.returncode}:\n{tail}"
                raise RuntimeError(msg)

    def alive(self, name: str) -> bool:
        return any(p.name == name and p.popen.poll() is None for p in self.procs)

    def stop(self, name: str) -> None:
        for proc in [p for p in self.procs if p.name == name]:
            _kill(proc)
            self.procs.remove(proc)

    def tear_down(self) -> None:
        """Kill every process started here, newest first, by its process group."""
        if self.check in GUARDS:
            GUARDS.remove(self.check)
        for proc in reversed(self.procs):
            _kill(proc)
        self.procs.clear()

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each running process (MiB), from /proc."""
        out: dict[str, float] = {}
        for proc in self.procs:
            try:
                text = Path(f"/proc/{proc.popen.pid}/status").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    out[proc.name] = out.get(proc.name, 0.0) + int(line.split()[1]) / 1024
        return out

    # --- commands ----------------------------------------------------------
    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.bins["kubectl"], f"--kubeconfig={self.work / 'admin.kubeconfig'}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            msg = f"kubectl {' '.join(args)} failed: {done.stderr.strip()}"
            raise RuntimeError(msg)
        return done

    def apply(self, docs: list[dict[str, Any]] | str, *extra: str) -> subprocess.CompletedProcess[str]:
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
        return self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", *extra, stdin=text)

    def apply_crds(self, paths: list[Path], wanted: set[tuple[str, str]] | None = None) -> None:
        """Apply the CRDs in ``paths`` (only the (group, kind)s ``wanted``, when given); wait until Established."""
        docs = []
        for path in paths:
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                if wanted is not None and (doc["spec"]["group"], doc["spec"]["names"]["kind"]) not in wanted:
                    continue
                if doc["metadata"]["name"] == "objects.kubernetes.crossplane.io":
                    # Its webhook conversion has no service until a package
                    # manager fills one in.
                    doc["spec"]["conversion"] = {"strategy": "None"}
                docs.append(doc)
        self.apply(docs)
        self.kubectl("wait", "--for=condition=Established", "--timeout=120s", "crd", "--all")

    # --- bring-up ----------------------------------------------------------
    def bring_up(self) -> None:
        GUARDS.append(self.check)
        t0 = time.monotonic()
        self._pki()
        self._etcd()
        self._apiserver()
        self._controller_manager()
        self._registry()
        self.timings["control plane"] = time.monotonic() - t0
        t1 = time.monotonic()
        self._crossplane()
        self.timings["crossplane"] = time.monotonic() - t1
        t2 = time.monotonic()
        self._provider_crds()
        t3 = time.monotonic()
        self.timings["provider CRDs"] = t3 - t2
        self._function()
        t4 = time.monotonic()
        self.timings["function package"] = t4 - t3
        self._apis()
        self.timings["XRDs and Compositions"] = time.monotonic() - t4
        self.timings["bring-up"] = time.monotonic() - t0

    def _pki(self) -> None:
        pki = self.work / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca = _cert(_name("e2e-ca"), ca_key, None, ca=True)
        (pki / "ca.crt").write_bytes(_pem(ca))
        _write_key(pki / "ca.key", ca_key)
        server_key = _key()
        server = _cert(
            _name("kube-apiserver"),
            server_key,
            (ca, ca_key),
            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ips=("127.0.0.1", "10.96.0.1"),
        )
        (pki / "apiserver.crt").write_bytes(_pem(server))
        _write_key(pki / "apiserver.key", server_key)
        admin_key = _key()
        admin = _cert(_name("e2e-admin", "system:masters"), admin_key, (ca, ca_key), client=True)
        (pki / "admin.crt").write_bytes(_pem(admin))
        _write_key(pki / "admin.key", admin_key)
        sa_key = _key()
        _write_key(pki / "sa.key", sa_key)
        (pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {
                        "server": f"https://127.0.0.1:{API_PORT}",
                        "certificate-authority": str(pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(pki / "admin.crt"),
                        "client-key": str(pki / "admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
            "current-context": "e2e",
        }
        (self.work / "admin.kubeconfig").write_text(yaml.safe_dump(kubeconfig))
        self.kube = Kube("127.0.0.1", API_PORT, pki / "ca.crt", pki / "admin.crt", pki / "admin.key")

    def _etcd(self) -> None:
        data = self.work / "etcd"
        self.start(
            "etcd",
            [
                self.bins["etcd"],
                f"--data-dir={data}",
                "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=default=http://127.0.0.1:2380",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                "--quota-backend-bytes=2147483648",
            ],
            env={"ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")},
        )
        _wait_port(2379, "etcd", self)

    def apiserver_argv(self, port: int, cert_dir: Path, *extra: str) -> list[str]:
        """kube-apiserver on 127.0.0.1:``port`` with this stack's CA and keys, on its etcd."""
        pki = self.work / "pki"
        return [
            self.bins["kube-apiserver"],
            "--etcd-servers=http://127.0.0.1:2379",
            f"--secure-port={port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={cert_dir}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--allow-privileged=true",
            *extra,
        ]

    def _apiserver(self) -> None:
        self.start("kube-apiserver", self.apiserver_argv(API_PORT, self.work / "apiserver-certs"))
        assert self.kube is not None
        wait_for(
            "the API server to be ready",
            self.kube.ready,
            timeout=120,
            interval=0.5,
        )
        wait_for(
            "the default namespace",
            lambda: self.kube.request("GET", "/api/v1/namespaces/default"),
            timeout=60,
            interval=0.5,
        )

    def _controller_manager(self) -> None:
        self.start(
            "kube-controller-manager",
            [
                self.bins["kube-controller-manager"],
                f"--kubeconfig={self.work / 'admin.kubeconfig'}",
                "--controllers=garbage-collector-controller,namespace-controller",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=false",
            ],
        )

    def _registry(self) -> None:
        self.start("registry", [self.bins["registry"], f"-port={REGISTRY_PORT}"])
        _wait_port(REGISTRY_PORT, "registry", self)

    def _crossplane(self) -> None:
        cache = self.work / "crossplane"
        for sub in ("xpkg", "xfn", "tls-client"):
            (cache / sub).mkdir(parents=True, exist_ok=True)
        self.env = {
            "KUBECONFIG": str(self.work / "admin.kubeconfig"),
            "POD_NAMESPACE": NAMESPACE,
            "POD_SERVICE_ACCOUNT": "crossplane",
            "CRDS_PATH": self.bins["crossplane-crds"],
            "ENABLE_WEBHOOKS": "false",  # see _webhook_service
            "METRICS_PORT": str(CROSSPLANE_METRICS_PORT),
            "HEALTH_PROBE_PORT": str(CROSSPLANE_HEALTH_PORT),
            "PACKAGE_RUNTIME": "External",
            "XPKG_CACHE_DIR": str(cache / "xpkg"),
            "XFN_CACHE_DIR": str(cache / "xfn"),
            "TLS_CA_SECRET_NAME": "crossplane-root-ca",
            "TLS_CLIENT_SECRET_NAME": "crossplane-tls-client",
            "TLS_CLIENT_CERTS_DIR": str(cache / "tls-client"),
        }
        self.kubectl("create", "namespace", NAMESPACE, check=False)
        if WEBHOOKS:
            self._webhook_service(cache)
        # `core init` fails about once on a fresh API server with `no matches
        # for kind "Lock"` (a REST-mapping race): retry it.
        for attempt in range(5):
            done = subprocess.run(
                [self.bins["crossplane-core"], "core", "init"],
                env={**os.environ, **self.env},
                capture_output=True,
                text=True,
                timeout=300,
            )
            (self.work / "logs" / f"crossplane-init-{attempt}.log").write_text(done.stdout + done.stderr)
            if done.returncode == 0:
                break
            time.sleep(2)
        else:
            msg = f"crossplane core init failed: {done.stderr[-2000:]}"
            raise RuntimeError(msg)
        # In a pod the client Secret `core init` filled is mounted here.
        assert self.kube is not None
        client = self.kube.get(SECRET, "crossplane-tls-client", NAMESPACE)
        assert client is not None, "core init made no crossplane-tls-client Secret"
        _write_secret(client, cache / "tls-client")
        if WEBHOOKS:  # and the webhook server's certificate, for the Service's DNS name
            server = self.kube.get(SECRET, "crossplane-tls-server", NAMESPACE)
            assert server is not None, "core init made no crossplane-tls-server Secret"
            _write_secret(server, cache / "tls-server")
        self.start(
            "crossplane",
            [
                self.bins["crossplane-core"],
                "core",
                "start",
                *CIRCUIT_BREAKER_FLAGS,
                *(["--debug"] if os.environ.get("E2E_CROSSPLANE_DEBUG") else []),
            ],
            env=self.env,
        )
        # Crossplane is up once it has created the ServiceAccount-free lock and
        # its package controllers answer; the Function below waits for them.
        time.sleep(2)
        self.check()
        if WEBHOOKS:
            _wait_port(WEBHOOK_PORT, "crossplane", self, host=WEBHOOK_IP, timeout=120)

    def _webhook_service(self, cache: Path) -> None:
        """The Service kube-apiserver calls Crossplane's webhooks through, its address on lo."""
        (cache / "tls-server").mkdir(parents=True, exist_ok=True)
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        if [line.split(":")[1].strip() for line in links.splitlines() if ":" in line] != ["lo"]:
            msg = "the webhook address goes on lo only inside a loopback-only network namespace (unshare --net)"
            raise RuntimeError(msg)
        subprocess.run(["ip", "addr", "replace", f"{WEBHOOK_IP}/32", "dev", "lo"], check=True)
        self.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": WEBHOOK_SERVICE, "namespace": NAMESPACE},
                    "spec": {
                        "clusterIP": WEBHOOK_IP,
                        "ports": [{"name": "webhooks", "port": WEBHOOK_PORT, "targetPort": WEBHOOK_PORT}],
                    },
                }
            ]
        )
        self.env.update(
            {
                "ENABLE_WEBHOOKS": "true",
                "WEBHOOK_SERVICE_NAME": WEBHOOK_SERVICE,
                "WEBHOOK_SERVICE_NAMESPACE": NAMESPACE,
                "WEBHOOK_SERVICE_PORT": str(WEBHOOK_PORT),
                "WEBHOOK_PORT": str(WEBHOOK_PORT),
                "WEBHOOK_CONFIGS_PATH": self.bins["crossplane-webhookconfigurations"],
                "TLS_SERVER_SECRET_NAME": "crossplane-tls-server",
                "TLS_SERVER_CERTS_DIR": str(cache / "tls-server"),
            }
        )

    def _provider_crds(self) -> None:
        # Only the kinds the examples compose (their last observed stage): the
        # cluster kinds (EKS, GKE, AKS) are 1.5 MB of schema nothing here uses,
        # and installing CRDs is most of the bring-up on a loaded machine.
        wanted = composed_kinds()
        self.apply_crds([p for sub in PROVIDER_CRD_DIRS for p in sorted((CRDS / sub).glob("*.yaml"))], wanted)
        # The ProviderConfigs a platform team made for its existing clusters (the
        # examples name them; ClusterUsages hold them, so they must exist).
        self.apply(
            [
                {
                    "apiVersion": api,
                    "kind": "ProviderConfig",
                    "metadata": {"name": name},
                    "spec": {"credentials": {"source": "InjectedIdentity"}},
                }
                for name in user_provider_configs()
                for api in ("kubernetes.crossplane.io/v1alpha1", "helm.crossplane.io/v1beta1")
            ]
        )

    def _function(self) -> None:
        xpkg = self.work / "function.xpkg"
        subprocess.run(
            [self.bins["crossplane"], "xpkg", "build", f"--package-root={ROOT / 'package'}", "-o", str(xpkg)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        ref = f"127.0.0.1:{REGISTRY_PORT}/{FUNCTION_NAME}:{PACKAGE_TAG}"
        subprocess.run(
            [self.bins["crossplane"], "xpkg", "push", "-f", str(xpkg), ref],
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.apply(
            [
                {
                    "apiVersion": "pkg.crossplane.io/v1",
                    "kind": "Function",
                    "metadata": {"name": FUNCTION_NAME},
                    "spec": {"package": ref},
                }
            ]
        )
        assert self.kube is not None
        kube = self.kube

        def revision() -> dict[str, Any] | None:
            for rev in kube.list(FUNCTION_REVISION):
                owners = rev["metadata"].get("ownerReferences") or []
                if any(o.get("name") == FUNCTION_NAME for o in owners):
                    return rev
            return None

        wait_for("the FunctionRevision", revision, timeout=300)
        # Play the External package runtime: a server certificate signed by
        # Crossplane's root CA, stored as a Secret, named in the revision's status.
        ca_secret, _ = wait_for(
            "crossplane-root-ca", lambda: kube.get(SECRET, "crossplane-root-ca", NAMESPACE), timeout=120
        )
        ca_cert = x509.load_pem_x509_certificate(base64.b64decode(ca_secret["data"]["tls.crt"]))
        ca_key = serialization.load_pem_private_key(base64.b64decode(ca_secret["data"]["tls.key"]), None)
        key = _key()
        cert = _cert(
            _name(FUNCTION_NAME),
            key,
            (ca_cert, ca_key),
            dns=("localhost", FUNCTION_NAME, f"{FUNCTION_NAME}.{NAMESPACE}", f"{FUNCTION_NAME}.{NAMESPACE}.svc"),
            ips=("127.0.0.1",),
        )
        certs = self.work / "function-tls"
        certs.mkdir(exist_ok=True)
        (certs / "tls.crt").write_bytes(_pem(cert))
        _write_key(certs / "tls.key", key)
        (certs / "ca.crt").write_bytes(_pem(ca_cert))
        secret_name = f"{FUNCTION_NAME}-tls-server"
        self.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": secret_name, "namespace": NAMESPACE},
                    "type": "kubernetes.io/tls",
                    "data": {
                        "tls.crt": base64.b64encode(_pem(cert)).decode(),
                        "tls.key": base64.b64encode((certs / "tls.key").read_bytes()).decode(),
                        "ca.crt": base64.b64encode(_pem(ca_cert)).decode(),
                    },
                }
            ]
        )
        self.start(
            "function",
            [
                str(ROOT / ".venv" / "bin" / "function"),
                f"--address=127.0.0.1:{FUNCTION_PORT}",
                f"--tls-certs-dir={certs}",
                "--debug",
                # worker processes, as the README's runtime config sets them (0: threads only)
                f"--processes={os.environ.get('E2E_FUNCTION_PROCESSES', '2')}",
            ],
        )
        _wait_port(FUNCTION_PORT, "function", self)

        def patched() -> bool:
            rev = revision()
            assert rev is not None
            status = rev.get("status") or {}
            runtime = condition(rev, "RuntimeHealthy")
            if (
                status.get("endpoint") != f"dns:///127.0.0.1:{FUNCTION_PORT}"
                or status.get("tlsServerSecretName") != secret_name
                or runtime.get("status") != "True"
            ):
                # The runtime controller would also report its Deployment healthy.
                kept = [c for c in status.get("conditions") or [] if c["type"] != "RuntimeHealthy"]
                healthy = {
                    "type": "RuntimeHealthy",
                    "status": "True",
                    "reason": "HealthyPackageRevision",
                    "lastTransitionTime": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                kube.patch_status(
                    FUNCTION_REVISION,
                    rev["metadata"]["name"],
                    {
                        "status": {
                            "endpoint": f"dns:///127.0.0.1:{FUNCTION_PORT}",
                            "tlsServerSecretName": secret_name,
                            "conditions": [*kept, healthy],
                        }
                    },
                )
                return False
            return condition(kube.get(FUNCTION, FUNCTION_NAME), "Healthy").get("status") == "True"

        wait_for("the Function to become Healthy", patched, timeout=300, interval=2)

    def _apis(self) -> None:
        self.apply(
            [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "xrds").glob("*.yaml"))]
        )
        assert self.kube is not None
        kube = self.kube

        def established() -> bool:
            xrds = kube.list(XRD)
            return len(xrds) == 2 and all(
                condition(x, "Established").get("status") == "True"
                and condition(x, "Offered").get("status") == "True"
                for x in xrds
            )

        wait_for("the XRDs to be Established and Offered", established, timeout=300, interval=2)
        comps = Path(os.environ.get("E2E_COMPOSITIONS", ROOT / "compositions"))
        self.apply([yaml.safe_load(p.read_text()) for p in sorted(comps.glob("*.yaml"))])


def composed_kinds() -> set[tuple[str, str]]:
    """(group, kind) of everything the examples compose, from their last observed stage."""
    kinds = set()
    for example in sorted((ROOT / "examples").iterdir()):
        stages = sorted(example.glob("observed-*.yaml"))
        if not stages:
            continue
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for doc in yaml.load_all(stages[-1].read_text(), Loader=loader):  # a safe loader
            if doc:
                kinds.add((doc["apiVersion"].split("/")[0], doc["kind"]))
    return kinds


def user_provider_configs() -> list[str]:
    """ProviderConfig names the examples' claims bring (existing clusters, fleet targets)."""
    names = set()
    for path in sorted((ROOT / "examples").glob("*/claim.yaml")):
        spec = yaml.safe_load(path.read_text())["spec"]
        for cluster in spec.get("clusters") or []:
            names.add((cluster.get("kubeconfig") or {}).get("providerConfigName"))
        target = spec.get("target") or {}
        names |= {target.get("providerConfigName"), target.get("helmProviderConfigName")}
    return sorted(n for n in names if n)


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: the child gets SIGKILL if the test process dies first."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _kill(proc: Proc) -> None:
    if proc.popen.poll() is None:
        try:
            os.killpg(proc.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.popen.wait(timeout=15)
    proc.handle.close()


def _wait_port(port: int, what: str, stack: Stack, timeout: float = 60, host: str = "127.0.0.1") -> None:
    import socket

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((host, port)) == 0:
                return
        if not stack.alive(what):
            log = (stack.work / "logs" / f"{what}.log").read_text()[-2000:]
            msg = f"{what} exited: {log}"
            raise RuntimeError(msg)
        time.sleep(0.2)
    msg = f"{what} did not listen on {port} within {timeout}s"
    raise TimeoutError(msg)


def binaries() -> dict[str, str]:
    """Paths of every tool, building what is missing (scripts/e2e-build.sh prints them)."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "e2e-build.sh"), *BUILD_TARGETS],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        msg = f"scripts/e2e-build.sh failed: {done.stderr[-3000:]}"
        raise RuntimeError(msg)
    out = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    cli = subprocess.run(
        [str(ROOT / "scripts" / "install-crossplane.sh")], capture_output=True, text=True, check=False
    )
    if cli.returncode != 0:
        msg = f"scripts/install-crossplane.sh failed: {cli.stderr[-3000:]}"
        raise RuntimeError(msg)
    out["crossplane"] = cli.stdout.strip().splitlines()[-1]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        msg = "kubectl not found (Debian: apt-get install kubernetes-client)"
        raise RuntimeError(msg)
    out["kubectl"] = kubectl
    for name, path in out.items():
        if not Path(path).exists():
            msg = f"{name} missing at {path}"
            raise RuntimeError(msg)
    return out


if __name__ == "__main__":  # bring the stack up by hand: python -m tests.e2e.stack DIR
    work = Path(sys.argv[1]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    from tests.e2e.provider import SimulatedProvider

    stack = Stack(work, binaries())
    try:
        stack.bring_up()
        # Block the signals only now: children inherit a blocked mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        assert stack.kube is not None
        SimulatedProvider(stack.kube, usages_enforced=WEBHOOKS).start()
        print({k: round(v, 1) for k, v in stack.timings.items()}, flush=True)
        print(f"export KUBECONFIG={work / 'admin.kubeconfig'}", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.tear_down()
