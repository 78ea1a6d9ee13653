"""What runs a model: its Namespace, the pod, and the StatefulSet or Knative Service.

``serving: deployment`` runs a StatefulSet: each replica owns its model volume
(see ``storage``). Pods start in parallel (a pull is slow and replicas do not
depend on each other) and roll one at a time, so an update never takes more than
one replica down. ``spec.replicas`` is the claim's ``replicas`` (clamped to the
scaling bounds) when the StatefulSet is created, and after that the count
observed on the cluster: KEDA's HPA owns it, and writing the claim's count again
would undo every scaling decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING
from typing import Any

from function import naming
from function.fleet import cache, storage
from function.fleet.common import PORT, WORKLOAD, labels, meta, selector
from function.fleet.scaling import knative_annotations
from function.models.common import Cloud, Mesh
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.quantity import parse_quantity
from function.readiness import carried

CONTAINER = "ollama"  # the model container; require-gpu-limits should check this one
PULL_CONTAINER = "pull-model"
PULL_PORT = 11435  # loopback only, while the Knative container pulls
RUN_AS = 1000  # the image's ubuntu user

AZURE_SPOT_TOLERATION = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}
KNATIVE_TIMEOUT_SECONDS = 600  # Knative's default max-revision-timeout-seconds
STARTUP_PROBE_PERIOD = 10
STARTUP_PROBE_FAILURES = 360  # one hour for a first pull
REGISTRY_PORT = "443"
GPU_RESOURCE = "nvidia.com/gpu"

# The init container: serve on loopback, wait for it, pull, exit (the trap stops
# the server). The model name comes from the environment, never the script.
PULL_SCRIPT = """\
set -eu
ollama serve &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
tries=0
until ollama list >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then echo "ollama serve did not start" >&2; exit 1; fi
  sleep 1
done
ollama pull "$OLLAMA_PULL_MODEL"
"""

# The Knative container: the same pull on a private port, then serve on 11434.
SERVE_AFTER_PULL_SCRIPT = f"""\
set -eu
OLLAMA_HOST=127.0.0.1:{PULL_PORT} ollama serve &
server=$!
tries=0
until OLLAMA_HOST=127.0.0.1:{PULL_PORT} ollama list >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then echo "ollama serve did not start" >&2; exit 1; fi
  sleep 1
done
OLLAMA_HOST=127.0.0.1:{PULL_PORT} ollama pull "$OLLAMA_PULL_MODEL"
kill "$server"
wait "$server" || true
exec ollama serve
"""


def namespace(ns: str, xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    """Return the model's Namespace, labelled for the mesh's injection."""
    ns_labels = {**labels(xr_name), naming.MODEL_NAMESPACE_LABEL: "true"}
    metadata: dict[str, Any] = {"name": ns, "labels": ns_labels}
    if spec.mesh is Mesh.ISTIO:
        ns_labels["istio-injection"] = "enabled"
    elif spec.mesh is Mesh.LINKERD:
        metadata["annotations"] = {"linkerd.io/inject": "enabled"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def double_cpu(cpu: str) -> str:
    """Return twice a CPU quantity, in whole millicores rounded up, as a quantity string."""
    milli = int((parse_quantity(cpu) * 2000).to_integral_value(rounding=ROUND_CEILING))
    if milli % 1000 == 0:
        return str(milli // 1000)
    return f"{milli}m"


def _resources(spec: FleetSpec) -> dict[str, Any]:
    limits: dict[str, str] = {
        "cpu": double_cpu(spec.resources.cpu),
        "memory": spec.resources.memory,
    }
    if spec.resources.gpu:
        limits[GPU_RESOURCE] = str(spec.target.accelerator_count)
    return {
        "requests": {"cpu": spec.resources.cpu, "memory": spec.resources.memory},
        "limits": limits,
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security(*, knative: bool) -> dict[str, Any]:
    """Run as the image's ubuntu user; fsGroup makes the PVC writable to it.

    Knative's pod security context (behind its feature flag) takes only the
    user, group, non-root and fsGroup fields; seccomp is set per container.
    """
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
    }
    if not knative:
        context["fsGroupChangePolicy"] = "OnRootMismatch"
        context["seccompProfile"] = {"type": "RuntimeDefault"}
    return context


def _env(host: str, spec: FleetSpec) -> list[dict[str, str]]:
    return [
        {"name": "HOME", "value": storage.MODELS_PATH},
        {"name": "OLLAMA_HOST", "value": host},
        {"name": "OLLAMA_MODELS", "value": storage.MODELS_PATH},
        {"name": "OLLAMA_PULL_MODEL", "value": spec.model},
    ]


def _probe(path: str, *, knative: bool, **timing: int) -> dict[str, Any]:
    http: dict[str, Any] = {"path": path}
    if not knative:
        http["port"] = "http"
    return {"httpGet": http, **timing}


def pod_spec(spec: FleetSpec, inputs: FunctionInput, *, knative: bool) -> dict[str, Any]:
    """Return the pod both serving modes run; ``knative`` folds the pull into the container."""
    image = inputs.spec.ollama_image
    mount = storage.mount()
    serving: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "ports": [
            {"name": "http1" if knative else "http", "containerPort": PORT, "protocol": "TCP"}
        ],
        "env": _env(f"0.0.0.0:{PORT}", spec),
        "resources": _resources(spec),
        "volumeMounts": mount,
        "securityContext": _container_security(),
        "startupProbe": _probe(
            "/",
            knative=knative,
            periodSeconds=STARTUP_PROBE_PERIOD,
            timeoutSeconds=5,
            failureThreshold=STARTUP_PROBE_FAILURES,
        ),
        "readinessProbe": _probe(
            "/", knative=knative, periodSeconds=5, timeoutSeconds=5, failureThreshold=3
        ),
        "livenessProbe": _probe(
            "/api/version", knative=knative, periodSeconds=10, timeoutSeconds=5, failureThreshold=6
        ),
    }
    cached = spec.cache
    # The pull is an init container, except in Knative mode without a cache, where
    # the serving container pulls before it serves (no init containers needed there).
    init_pull = not knative or cached is not None
    if init_pull:
        serving["command"] = ["/bin/ollama", "serve"]
    else:
        serving["command"] = ["/bin/sh", "-c", SERVE_AFTER_PULL_SCRIPT]
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(knative=knative),
        "containers": [serving],
    }
    volumes = storage.pod_volumes(spec, knative=knative)
    if cached is not None:
        pod["serviceAccountName"] = cache.SERVICE_ACCOUNT
        volumes = [*volumes, *cache.pod_volumes(cached)]
    if volumes:
        pod["volumes"] = volumes
    if init_pull:
        pod["initContainers"] = [
            {
                "name": PULL_CONTAINER,
                "image": image,
                "command": ["/bin/sh", "-c", PULL_SCRIPT],
                "env": _env(f"127.0.0.1:{PORT}", spec),
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
                "volumeMounts": mount,
                "securityContext": _container_security(),
            }
        ]
        if cached is not None:
            security = _container_security()
            pod["initContainers"] = [
                cache.restore_container(spec, cached, inputs, security),
                *pod["initContainers"],
                cache.save_container(spec, cached, inputs, security),
            ]
    if spec.resources.gpu:
        pod["tolerations"] = [
            {"key": naming.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
        ]
        if spec.target.cloud is Cloud.AZURE:
            # AKS taints spot pools itself; harmless on regular pools.
            pod["tolerations"].append(AZURE_SPOT_TOLERATION)
        if spec.target.cloud is not Cloud.EXISTING:
            pod["nodeSelector"] = {naming.GPU_LABEL: "true"}
    return pod


def _pod_annotations(spec: FleetSpec) -> dict[str, str]:
    """Return pod annotations that let init containers bypass the mesh proxy.

    The pull reaches the registry (port 443) and, with a cache, rclone the link-local
    credential endpoints (clouds) or the MinIO tenant and its STS before the proxy runs.
    """
    out: dict[str, str] = {}
    ports = ",".join(sorted({REGISTRY_PORT, *cache.outbound_ports(spec.cache)}, key=int))
    subnets = ",".join(cache.credential_subnets(spec.cache))
    if spec.mesh is Mesh.ISTIO:
        out["traffic.sidecar.istio.io/excludeOutboundPorts"] = ports
        if subnets:
            out["traffic.sidecar.istio.io/excludeOutboundIPRanges"] = subnets
    elif spec.mesh is Mesh.LINKERD:
        out["config.linkerd.io/skip-outbound-ports"] = ports
        if subnets:
            out["config.linkerd.io/skip-subnets"] = subnets
    return out


def _pod_metadata(xr_name: str, spec: FleetSpec, **annotations: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": labels(xr_name)}
    if spec.cache is not None:
        metadata["labels"] = {**metadata["labels"], **cache.pod_labels(spec.cache)}
    merged = {**_pod_annotations(spec), **annotations}
    if merged:
        metadata["annotations"] = dict(sorted(merged.items()))
    return metadata


def starting_replicas(spec: FleetSpec) -> int:
    """Return the claim's ``replicas`` within the scaling bounds."""
    scaling = spec.scaling
    upper = max(scaling.max_replicas, scaling.min_replicas, 1)
    return min(max(spec.replicas, scaling.min_replicas), upper)


# Where provider-kubernetes reports the StatefulSet as it is on the cluster, and
# where the Object carries the count it was last sent.
LIVE_REPLICAS = ("status", "atProvider", "manifest", "spec", "replicas")
SENT_REPLICAS = ("spec", "forProvider", "manifest", "spec", "replicas")


def live_replicas(observed: Mapping[str, Any] | None) -> int | None:
    """Return the replica count observed on the cluster (what KEDA set), if known."""
    replicas = carried(observed, LIVE_REPLICAS)
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 0:
        return replicas
    return None


def statefulset(
    ns: str,
    xr_name: str,
    spec: FleetSpec,
    inputs: FunctionInput,
    observed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the model's StatefulSet: one volume per replica, rolled one replica at a time."""
    live = live_replicas(observed)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(WORKLOAD, ns, xr_name),
        "spec": {
            "replicas": starting_replicas(spec) if live is None else live,
            "serviceName": WORKLOAD,
            "selector": {"matchLabels": selector(xr_name)},
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": dict(storage.RETENTION),
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": _pod_metadata(xr_name, spec),
                "spec": pod_spec(spec, inputs, knative=False),
            },
            "volumeClaimTemplates": [storage.claim_template(xr_name, spec)],
        },
    }


def knative_service(
    ns: str, xr_name: str, spec: FleetSpec, inputs: FunctionInput
) -> dict[str, Any]:
    """Return the model's Knative Service, scaled by Knative's own autoscaler."""
    pod = pod_spec(spec, inputs, knative=True)
    pod["timeoutSeconds"] = KNATIVE_TIMEOUT_SECONDS
    metadata = meta(WORKLOAD, ns, xr_name)
    # Private: reachable on the cluster-local gateway only, never on Knative's ingress.
    metadata["labels"] = {
        **metadata["labels"],
        "networking.knative.dev/visibility": "cluster-local",
    }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "template": {
                "metadata": _pod_metadata(xr_name, spec, **knative_annotations(spec)),
                "spec": pod,
            }
        },
    }
