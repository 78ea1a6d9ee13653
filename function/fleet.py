"""What one XOllamaFleet composes on its cluster: one model, served.

Every object is a provider-kubernetes ``Object`` on the fleet's target cluster,
keyed ``model-object-<name>``:

- ``namespace``: Namespace ``ollama-<xr name>``, always;
- ``pvc``: the PersistentVolumeClaim the model is kept on, always;
- ``deployment``, ``service``, ``scaledobject``: Deployment, ClusterIP Service
  and KEDA ScaledObject ``ollama``, for ``serving: deployment``;
- ``knative-service``: Knative Service ``ollama``, for ``serving: knative``;
- ``httpproxy``: Contour HTTPProxy to the Service, for deployment + contour;
- ``podmonitor``: PodMonitor of the mesh sidecars, with observability and a mesh.

Objects in the namespace wait until the Namespace exists; the ScaledObject
waits until the Deployment exists.

Decisions
---------
Hand-built objects, not the otwld ``ollama`` Helm chart. One pod template
serves both the Deployment and the Knative Service; every manifest validates
offline against the Kubernetes and CRD schemas; the step that pulls the model
is explicit and ours; and the chart has no Knative mode, while its values
(and so our mapping to them) change with each chart version.

The pod runs as UID/GID 1000 (the image's ``ubuntu`` user), not root: the
upstream image defaults to root but runs unchanged as any user whose ``HOME``
is writable, so ``HOME`` is ``/models`` (the PVC, made group-writable with
``fsGroup``). No privilege escalation, all capabilities dropped, seccomp
``RuntimeDefault``: the pod meets the ``restricted`` Pod Security Standard.

The model is pulled once per pod start onto the PVC (a re-pull of a model that
is already there only checks the manifest). Deployment mode pulls in an init
container, so the serving container starts only with the model present.
Knative rejects init containers unless ``kubernetes.podspec-init-containers``
is on, so Knative mode pulls in the serving container itself: ``ollama serve``
on a private loopback port, ``ollama pull``, then ``exec ollama serve`` on
11434, so the readiness probe passes only once the model is there; a startup
probe gives the first pull up to an hour. Both meshes capture init-container
traffic before their proxy runs, so pods exclude outbound port 443 (the model
registry) from the mesh.

``spec.replicas`` is not written into the Deployment: KEDA's HPA owns the
replica count, and provider-kubernetes would otherwise reset it on every
update (the Kubernetes guidance for HPA-managed Deployments). The Deployment
starts at one replica and KEDA keeps it within [minReplicas, maxReplicas].
In Knative mode ``spec.replicas`` is the revision's initial scale.

GPU scheduling: with ``resources.gpu`` the container limits ``nvidia.com/gpu``
to ``target.acceleratorCount`` and tolerates the ``nvidia.com/gpu`` taint. On
clusters the platform gives node pools (aws, gcp, azure) it also selects
``ollama.openhands.ai/gpu: "true"``; on existing clusters it selects nothing,
because the GPU request alone already restricts scheduling to nodes that
advertise GPUs and a label there (even GPU feature discovery's
``nvidia.com/gpu.present``) may not exist.

KEDA's request-rate query follows the mesh, since Ollama has no ``/metrics``:
Istio's ``istio_requests_total`` as reported by the model pods' sidecars,
Linkerd's inbound ``request_total`` (its ``deployment`` label comes from the
PodMonitor's relabelling, as in Linkerd's own scrape config), and without a
mesh Contour's Envoy ``envoy_cluster_upstream_rq_total`` for the Service's
cluster, whose stat name Contour sets to ``<namespace>_<service>_<port>``
(requests that bypass Contour are not counted then). The query reads what the
PodMonitor makes Prometheus scrape, so it needs observability (or a
``target.prometheusAddress`` whose Prometheus scrapes the mesh).

Observability: Ollama exposes no metrics, so there is no ServiceMonitor. With
a mesh the sidecars do, on container ports a Service does not carry, hence a
PodMonitor: Istio's ``http-envoy-prom`` (15090, ``/stats/prometheus``) or
Linkerd's ``linkerd-admin`` (4191, ``/metrics``). No mesh, nothing to scrape.

Knative mode needs these KnativeServing features (``KNATIVE_FEATURES``; the
stack sets them): PVC volumes and writes, pod security context, tolerations
and node selectors. Its port is named ``http1`` and its probes name no port
(Knative rules). No KEDA object: Knative scales on its own rps target.

Ingress: a Contour HTTPProxy for ``<xr name>.ollama.local`` (an in-cluster
placeholder host, to be made configurable) with a 15 minute response timeout,
since generations stream for longer than Envoy's 15 s default. Knative mode
uses Knative's own ingress instead.

Replicas share one ReadWriteOnce PVC, hence the Recreate strategy. Replicas
scheduled on different nodes cannot attach it; per-replica volumes (a
StatefulSet's claim templates) or a ReadWriteMany class would lift that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

from function import naming
from function.composed import Composed, Gate, Need
from function.context import PROMETHEUS_ADDRESS, InClusterTarget
from function.errors import ClaimError
from function.models.common import Cloud, Ingress, Mesh, Observability, Policies, Serving
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.quantity import parse_quantity
from function.wrap import k8s_object, object_key

KEY_PREFIX = "model"
DEFAULT_CLUSTER = "fleet"

WORKLOAD = "ollama"  # Deployment, Service, Knative Service, ScaledObject, HTTPProxy
CONTAINER = "ollama"  # the model container; require-gpu-limits should check this one
PULL_CONTAINER = "pull-model"
PVC_NAME = "ollama-models"
POD_MONITOR_NAME = "ollama-mesh"
PORT = 11434
PULL_PORT = 11435  # loopback only, while the Knative container pulls
MODELS_PATH = "/models"
RUN_AS = 1000  # the image's ubuntu user

POLLING_INTERVAL = 15
COOLDOWN_PERIOD = 300
RATE_WINDOW = "2m"
REQUEST_RATE_TRIGGER = "requests-per-second"
CPU_TRIGGER = "cpu-utilization"
CPU_TARGET_UTILIZATION = "70"
AZURE_SPOT_TOLERATION = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}
RESPONSE_TIMEOUT = "15m"
KNATIVE_TIMEOUT_SECONDS = 600  # Knative's default max-revision-timeout-seconds
KNATIVE_PROGRESS_DEADLINE = "3600s"
STARTUP_PROBE_PERIOD = 10
STARTUP_PROBE_FAILURES = 360  # one hour for a first pull
REGISTRY_PORT = "443"
FQDN_SUFFIX = "ollama.local"
GPU_RESOURCE = "nvidia.com/gpu"
PROMETHEUS_RELEASE_LABEL = {"release": "kube-prometheus-stack"}

# What a Knative Service of a model needs switched on in KnativeServing's
# config.features (all disabled by default).
KNATIVE_FEATURES: dict[str, str] = {
    "kubernetes.podspec-nodeselector": "enabled",
    "kubernetes.podspec-persistent-volume-claim": "enabled",
    "kubernetes.podspec-persistent-volume-write": "enabled",
    "kubernetes.podspec-securitycontext": "enabled",
    "kubernetes.podspec-tolerations": "enabled",
}

KEDA_TRIGGER_FIELDS = frozenset(
    {"type", "metadata", "name", "metricType", "authenticationRef", "useCachedMetrics"}
)
KEDA_METRIC_TYPES = frozenset({"AverageValue", "Value", "Utilization"})

_CEL_DEPLOYMENT_AVAILABLE = (
    "has(object.status) && has(object.status.conditions) && "
    "object.status.conditions.exists(c, c.type == 'Available' && c.status == 'True')"
)
_CEL_HTTPPROXY_VALID = (
    "has(object.status) && has(object.status.conditions) && "
    "object.status.conditions.exists(c, c.type == 'Valid' && c.status == 'True')"
)

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

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


def namespace_for(xr_name: str) -> str:
    """Return the namespace of a fleet's objects: ``ollama-<xr name>`` as a DNS label."""
    return naming.dns_label("ollama", xr_name)


def instance_for(xr_name: str) -> str:
    """Return a fleet's ``app.kubernetes.io/instance`` value (and HTTPProxy host label)."""
    return naming.dns_label(xr_name)


def fqdn_for(xr_name: str) -> str:
    """Return the HTTPProxy's virtual host (a placeholder domain until it is configurable)."""
    return f"{instance_for(xr_name)}.{FQDN_SUFFIX}"


def endpoint(xr_name: str, spec: FleetSpec) -> str:
    """Return the in-cluster URL the model answers on.

    The Service's port for a Deployment; for Knative, the Service's
    cluster-local address, which listens on port 80.
    """
    host = f"{WORKLOAD}.{namespace_for(xr_name)}.svc.cluster.local"
    if spec.serving is Serving.KNATIVE:
        return f"http://{host}"
    return f"http://{host}:{PORT}"


def target_for(xr_name: str, spec: FleetSpec, inputs: FunctionInput) -> InClusterTarget:
    """Return a fleet's in-cluster target: its ProviderConfigs, keys ``model-...``."""
    t = spec.target
    return InClusterTarget(
        cluster=t.cluster_name or DEFAULT_CLUSTER,
        helm_provider_config=t.helm_provider_config_name or t.provider_config_name,
        kubernetes_provider_config=t.provider_config_name,
        labels={naming.LABEL_FLEET: _label_value(xr_name)},
        key_prefix_override=KEY_PREFIX,
        inputs=inputs,
    )


def key(name: str) -> str:
    """Return the composition resource name of the fleet object ``name``."""
    return object_key(KEY_PREFIX, name)


# --------------------------------------------------------------------------- checks


def policy_errors(spec: FleetSpec) -> list[ClaimError]:
    """Find, at render time, what the cluster's enforced Kyverno policies would refuse.

    Only under ``policies: enforce``; audit and none report in the cluster instead.
    """
    if spec.policies is not Policies.ENFORCE:
        return []
    errors: list[ClaimError] = []
    if not spec.resources.gpu:
        errors.append(
            ClaimError(
                "spec.resources.gpu",
                "policy require-gpu-limits (enforce) needs GPU limits on model pods; "
                "set resources.gpu: true or policies: audit",
            )
        )
    size, limit = spec.storage.size, spec.policy.max_storage_request
    if parse_quantity(size) > parse_quantity(limit):
        errors.append(
            ClaimError(
                "spec.storage.size",
                f"{size} is more than policy.maxStorageRequest {limit}, which policy "
                "require-storage-quota (enforce) refuses; request at most "
                f"{limit}, raise policy.maxStorageRequest, or set policies: audit",
            )
        )
    return errors


def spec_errors(spec: FleetSpec) -> list[ClaimError]:
    """Find shape errors the schema cannot express: replica bounds, extra KEDA triggers."""
    errors: list[ClaimError] = []
    scaling = spec.scaling
    if scaling.max_replicas < scaling.min_replicas:
        errors.append(
            ClaimError(
                "spec.scaling.maxReplicas",
                f"{scaling.max_replicas} is less than minReplicas {scaling.min_replicas}",
            )
        )
    names: set[Any] = {REQUEST_RATE_TRIGGER, CPU_TRIGGER}
    for i, item in enumerate(scaling.metrics):
        path = f"spec.scaling.metrics[{i}]"
        errors.extend(_trigger_errors(path, item))
        name = item.get("name")
        if name is not None and name in names:
            errors.append(ClaimError(f"{path}.name", f"trigger name {name} is already used"))
        names.add(name)
    return errors


def _trigger_errors(path: str, item: Mapping[str, Any]) -> list[ClaimError]:
    errors: list[ClaimError] = []
    unknown = sorted(set(item) - KEDA_TRIGGER_FIELDS)
    if unknown:
        errors.append(
            ClaimError(
                path,
                f"unknown trigger field(s) {', '.join(unknown)}; a KEDA trigger has "
                f"{', '.join(sorted(KEDA_TRIGGER_FIELDS))}",
            )
        )
    kind = item.get("type")
    if not isinstance(kind, str) or not kind:
        errors.append(ClaimError(f"{path}.type", "a KEDA trigger type is required (e.g. cpu)"))
    metadata = item.get("metadata")
    if not isinstance(metadata, Mapping):
        errors.append(ClaimError(f"{path}.metadata", "a map of trigger settings is required"))
    else:
        for name, value in metadata.items():
            if not isinstance(value, str | int | float | bool):
                errors.append(ClaimError(f"{path}.metadata.{name}", "trigger settings are strings"))
    metric_type = item.get("metricType")
    if metric_type is not None and metric_type not in KEDA_METRIC_TYPES:
        errors.append(
            ClaimError(
                f"{path}.metricType",
                f"must be one of {', '.join(sorted(KEDA_METRIC_TYPES))}",
            )
        )
    return errors


def image_errors(inputs: FunctionInput) -> list[ClaimError]:
    """Refuse an Ollama image not pinned to a version tag or a digest (``latest`` is not)."""
    image = inputs.spec.ollama_image
    if "@" in image:
        return []
    last = image.rsplit("/", 1)[-1]
    if ":" in last and not last.endswith(":latest"):
        return []
    return [
        ClaimError(
            "input.spec.ollamaImage",
            f"{image} is not pinned; name a version tag or a digest (not latest)",
        )
    ]


# --------------------------------------------------------------------------- build


def build(xr_name: str, spec: FleetSpec, inputs: FunctionInput) -> list[Composed]:
    """Build every object one fleet composes on its cluster, in a fixed order.

    Raises:
        ClaimError: the function input's Ollama image is not pinned.

    """
    for error in image_errors(inputs):
        raise error
    target = target_for(xr_name, spec, inputs)
    ns = namespace_for(xr_name)
    in_namespace = (Gate(key("namespace"), Need.EXISTS),)

    out = [
        _object(target, "namespace", _namespace(ns, xr_name, spec)),
        _object(target, "pvc", _pvc(ns, xr_name, spec), after=in_namespace),
    ]
    if spec.serving is Serving.KNATIVE:
        out.append(
            _object(
                target,
                "knative-service",
                _knative_service(ns, xr_name, spec, inputs),
                after=in_namespace,
                readiness="DeriveFromObject",
            )
        )
    else:
        out += [
            _object(
                target,
                "deployment",
                _deployment(ns, xr_name, spec, inputs),
                after=in_namespace,
                cel=_CEL_DEPLOYMENT_AVAILABLE,
            ),
            _object(target, "service", _service(ns, xr_name), after=in_namespace),
            _object(
                target,
                "scaledobject",
                _scaled_object(ns, xr_name, spec),
                after=(*in_namespace, Gate(key("deployment"), Need.EXISTS)),
                readiness="DeriveFromObject",
            ),
        ]
        if spec.ingress is Ingress.CONTOUR:
            out.append(
                _object(
                    target,
                    "httpproxy",
                    _http_proxy(ns, xr_name),
                    after=in_namespace,
                    cel=_CEL_HTTPPROXY_VALID,
                )
            )
    monitor = _pod_monitor(ns, xr_name, spec)
    if monitor is not None:
        out.append(_object(target, "podmonitor", monitor, after=in_namespace))
    return out


def _object(
    target: InClusterTarget,
    name: str,
    manifest: Mapping[str, Any],
    *,
    after: tuple[Gate, ...] = (),
    readiness: str = "SuccessfulCreate",
    cel: str | None = None,
) -> Composed:
    """Wrap ``manifest`` in an Object; ``cel`` makes readiness a CEL query on the object."""
    return k8s_object(target, name, manifest, after=after, readiness=readiness, cel_query=cel)


def _label_value(value: str) -> str:
    """Return ``value`` if it is a valid label value, else a stable DNS label of it."""
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    return naming.dns_label(value)


def _labels(xr_name: str) -> dict[str, str]:
    """Return the labels of every fleet object; pods' include require-gpu-limits' match."""
    return {
        "app.kubernetes.io/name": WORKLOAD,
        "app.kubernetes.io/instance": instance_for(xr_name),
        "app.kubernetes.io/managed-by": "crossplane",
        naming.MODEL_POD_LABEL: naming.MODEL_POD_LABEL_VALUE,
    }


def _selector(xr_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": WORKLOAD,
        "app.kubernetes.io/instance": instance_for(xr_name),
    }


def _meta(name: str, ns: str, xr_name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ns, "labels": _labels(xr_name), **extra}


def _namespace(ns: str, xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    labels = {**_labels(xr_name), naming.MODEL_NAMESPACE_LABEL: "true"}
    metadata: dict[str, Any] = {"name": ns, "labels": labels}
    if spec.mesh is Mesh.ISTIO:
        labels["istio-injection"] = "enabled"
    elif spec.mesh is Mesh.LINKERD:
        metadata["annotations"] = {"linkerd.io/inject": "enabled"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def storage_class(spec: FleetSpec) -> str:
    """Return the PVC's StorageClass: the fleet's, else the profile's, else '' (default)."""
    return spec.storage.storage_class or spec.storage_class


def _pvc(ns: str, xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    pvc_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    sc = storage_class(spec)
    if sc:
        pvc_spec["storageClassName"] = sc
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(PVC_NAME, ns, xr_name),
        "spec": pvc_spec,
    }


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
        {"name": "HOME", "value": MODELS_PATH},
        {"name": "OLLAMA_HOST", "value": host},
        {"name": "OLLAMA_MODELS", "value": MODELS_PATH},
        {"name": "OLLAMA_PULL_MODEL", "value": spec.model},
    ]


def _probe(path: str, *, knative: bool, **timing: int) -> dict[str, Any]:
    http: dict[str, Any] = {"path": path}
    if not knative:
        http["port"] = "http"
    return {"httpGet": http, **timing}


def _pod_spec(spec: FleetSpec, inputs: FunctionInput, *, knative: bool) -> dict[str, Any]:
    """Return the pod both serving modes run; ``knative`` folds the pull into the container."""
    image = inputs.spec.ollama_image
    mount = [{"name": "models", "mountPath": MODELS_PATH}]
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
    if knative:
        serving["command"] = ["/bin/sh", "-c", SERVE_AFTER_PULL_SCRIPT]
    else:
        serving["command"] = ["/bin/ollama", "serve"]
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(knative=knative),
        "containers": [serving],
        "volumes": [
            {
                "name": "models",
                "persistentVolumeClaim": {"claimName": PVC_NAME, "readOnly": False},
            }
        ],
    }
    if not knative:
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
    """Return pod annotations that let the pull reach the registry before the mesh proxy runs."""
    if spec.mesh is Mesh.ISTIO:
        return {"traffic.sidecar.istio.io/excludeOutboundPorts": REGISTRY_PORT}
    if spec.mesh is Mesh.LINKERD:
        return {"config.linkerd.io/skip-outbound-ports": REGISTRY_PORT}
    return {}


def _pod_metadata(xr_name: str, spec: FleetSpec, **annotations: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": _labels(xr_name)}
    merged = {**_pod_annotations(spec), **annotations}
    if merged:
        metadata["annotations"] = dict(sorted(merged.items()))
    return metadata


def _deployment(ns: str, xr_name: str, spec: FleetSpec, inputs: FunctionInput) -> dict[str, Any]:
    # No spec.replicas: KEDA's HPA owns it (see the module docstring).
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(WORKLOAD, ns, xr_name),
        "spec": {
            "selector": {"matchLabels": _selector(xr_name)},
            "strategy": {"type": "Recreate"},
            "progressDeadlineSeconds": STARTUP_PROBE_PERIOD * STARTUP_PROBE_FAILURES,
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": _pod_metadata(xr_name, spec),
                "spec": _pod_spec(spec, inputs, knative=False),
            },
        },
    }


def _service(ns: str, xr_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(WORKLOAD, ns, xr_name),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(xr_name),
            "ports": [
                {
                    "name": "http",
                    "port": PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }


def request_rate_query(xr_name: str, spec: FleetSpec) -> str:
    """Return the PromQL for requests per second into the model, from the mesh's metrics."""
    ns = namespace_for(xr_name)
    if spec.mesh is Mesh.ISTIO:
        selector = (
            f'reporter="destination",destination_service_name="{WORKLOAD}",'
            f'destination_service_namespace="{ns}"'
        )
        return f"sum(rate(istio_requests_total{{{selector}}}[{RATE_WINDOW}]))"
    if spec.mesh is Mesh.LINKERD:
        selector = f'direction="inbound",namespace="{ns}",deployment="{WORKLOAD}"'
        return f"sum(rate(request_total{{{selector}}}[{RATE_WINDOW}]))"
    cluster = f"{ns}_{WORKLOAD}_{PORT}"
    return (
        f'sum(rate(envoy_cluster_upstream_rq_total{{envoy_cluster_name="{cluster}"}}'
        f"[{RATE_WINDOW}]))"
    )


def _extra_trigger(item: Mapping[str, Any]) -> dict[str, Any]:
    """Pass a user trigger through; scalar settings become the strings KEDA takes."""
    trigger = {k: v for k, v in item.items() if k in KEDA_TRIGGER_FIELDS}
    metadata = item.get("metadata")
    if isinstance(metadata, Mapping):
        trigger["metadata"] = {str(k): _setting(v) for k, v in metadata.items()}
    return trigger


def _setting(value: Any) -> str:  # free-form trigger metadata
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return str(value)


def _primary_trigger(xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    """The request-rate trigger, or CPU utilisation when no Prometheus is there to ask.

    Without observability and without a prometheusAddress, a Prometheus trigger
    would never become active and the ScaledObject never Ready.
    """
    if spec.target.prometheus_address is None and spec.observability is Observability.NONE:
        return {
            "type": "cpu",
            "name": CPU_TRIGGER,
            "metricType": "Utilization",
            "metadata": {"value": CPU_TARGET_UTILIZATION},
        }
    return {
        "type": "prometheus",
        "name": REQUEST_RATE_TRIGGER,
        "metadata": {
            "serverAddress": spec.target.prometheus_address or PROMETHEUS_ADDRESS,
            "query": request_rate_query(xr_name, spec),
            "threshold": str(spec.scaling.target_requests_per_second),
        },
    }


def _scaled_object(ns: str, xr_name: str, spec: FleetSpec) -> dict[str, Any]:
    scaling = spec.scaling
    triggers: list[dict[str, Any]] = [_primary_trigger(xr_name, spec)]
    triggers += [_extra_trigger(item) for item in scaling.metrics]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(WORKLOAD, ns, xr_name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKLOAD},
            "pollingInterval": POLLING_INTERVAL,
            "cooldownPeriod": COOLDOWN_PERIOD,
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": max(scaling.max_replicas, scaling.min_replicas),
            "triggers": triggers,
        },
    }


def _knative_service(
    ns: str, xr_name: str, spec: FleetSpec, inputs: FunctionInput
) -> dict[str, Any]:
    scaling = spec.scaling
    upper = max(scaling.max_replicas, scaling.min_replicas, 1)
    initial = min(max(spec.replicas, scaling.min_replicas), upper)
    annotations = {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "rps",
        "autoscaling.knative.dev/target": str(scaling.target_requests_per_second),
        "autoscaling.knative.dev/min-scale": str(scaling.min_replicas),
        "autoscaling.knative.dev/max-scale": str(upper),
        "autoscaling.knative.dev/initial-scale": str(initial),
        "serving.knative.dev/progress-deadline": KNATIVE_PROGRESS_DEADLINE,
    }
    pod = _pod_spec(spec, inputs, knative=True)
    pod["timeoutSeconds"] = KNATIVE_TIMEOUT_SECONDS
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": _meta(WORKLOAD, ns, xr_name),
        "spec": {
            "template": {
                "metadata": _pod_metadata(xr_name, spec, **annotations),
                "spec": pod,
            }
        },
    }


def _http_proxy(ns: str, xr_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "projectcontour.io/v1",
        "kind": "HTTPProxy",
        "metadata": _meta(WORKLOAD, ns, xr_name),
        "spec": {
            "virtualhost": {"fqdn": fqdn_for(xr_name)},
            "routes": [
                {
                    "conditions": [{"prefix": "/"}],
                    "services": [{"name": WORKLOAD, "port": PORT}],
                    "timeoutPolicy": {"response": RESPONSE_TIMEOUT, "idle": RESPONSE_TIMEOUT},
                }
            ],
        },
    }


def _pod_monitor(ns: str, xr_name: str, spec: FleetSpec) -> dict[str, Any] | None:
    if spec.observability is Observability.NONE or spec.mesh is Mesh.NONE:
        return None
    endpoint_: dict[str, Any]
    if spec.mesh is Mesh.ISTIO:
        endpoint_ = {"port": "http-envoy-prom", "path": "/stats/prometheus"}
    else:
        endpoint_ = {
            "port": "linkerd-admin",
            "path": "/metrics",
            "relabelings": [
                {
                    "action": "replace",
                    "sourceLabels": ["__meta_kubernetes_pod_label_linkerd_io_proxy_deployment"],
                    "targetLabel": "deployment",
                }
            ],
        }
    endpoint_["interval"] = f"{POLLING_INTERVAL}s"
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {
            "name": POD_MONITOR_NAME,
            "namespace": ns,
            "labels": {**_labels(xr_name), **PROMETHEUS_RELEASE_LABEL},
        },
        "spec": {
            "selector": {"matchLabels": _selector(xr_name)},
            "podMetricsEndpoints": [endpoint_],
        },
    }
