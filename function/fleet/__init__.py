"""What one XOllamaFleet composes on its cluster: one model, served.

Every object is a provider-kubernetes ``Object`` on the fleet's target cluster,
keyed ``model-object-<name>``. One module per concern: ``checks`` (render-time
refusals), ``workload`` (Namespace, pod, StatefulSet or Knative Service),
``storage`` (the model's volume), ``scaling`` (KEDA or Knative autoscaling),
``routing`` (Service, HTTPProxy, endpoint), ``monitoring`` (PodMonitor); this
module puts them together:

- ``namespace``: Namespace ``ollama-<xr name>``, always;
- ``serviceaccount``: ServiceAccount ``ollama``, the identity the pods reach the
  model cache with, with ``cache`` (see ``cache``);
- ``statefulset``, ``service``, ``scaledobject``: StatefulSet (one model
  volume per replica), ClusterIP Service and KEDA ScaledObject ``ollama``, for
  ``serving: deployment``;
- ``knative-service``: Knative Service ``ollama``, for ``serving: knative``;
- ``httpproxy``: Contour HTTPProxy to the Service, for an exposed model
  (deployment + contour + ``exposure``; see ``routing``);
- ``podmonitor``: PodMonitor of the mesh sidecars, with observability and a mesh;
- ``model-usage-providerconfig`` and its twin ``model-usage-providerconfig-twin``:
  ClusterUsages that keep the ProviderConfig until the model's objects are gone
  (``removal``; why twice: ``function.usages``).

Every Object has ``Delete`` in its management policies: removing the model
removes its objects from the cluster.

Objects in the namespace wait until the Namespace exists; the ScaledObject
waits until the StatefulSet exists.

Decisions
---------
Hand-built objects, not the otwld ``ollama`` Helm chart. One pod template
serves both the StatefulSet and the Knative Service; every manifest validates
offline against the Kubernetes and CRD schemas; the step that pulls the model
is explicit and ours; and the chart has no Knative mode, while its values
(and so our mapping to them) change with each chart version.

The pod runs as UID/GID 1000 (the image's ``ubuntu`` user), not root: the
upstream image defaults to root but runs unchanged as any user whose ``HOME``
is writable, so ``HOME`` is ``/models`` (the model volume, made group-writable
with ``fsGroup``). No privilege escalation, all capabilities dropped, seccomp
``RuntimeDefault``: the pod meets the ``restricted`` Pod Security Standard.

The model is pulled once per pod start onto the replica's volume (a re-pull of
a model that is already there only checks the manifest). StatefulSet pods pull
in an init container, so the serving container starts only with the model present.
Knative rejects init containers unless ``kubernetes.podspec-init-containers``
is on (the stack turns it on), and without a cache Knative mode pulls in the
serving container itself: ``ollama serve``
on a private loopback port, ``ollama pull``, then ``exec ollama serve`` on
11434, so the readiness probe passes only once the model is there; a startup
probe gives the first pull up to an hour. Both meshes capture init-container
traffic before their proxy runs, so pods exclude outbound port 443 (the model
registry) from the mesh.

``spec.replicas`` is the StatefulSet's starting count (within the scaling
bounds); once it exists the observed count is written back, since KEDA's HPA
owns it (see ``workload``). In Knative mode it is the revision's initial scale.

GPU scheduling: with ``resources.gpu`` the container limits ``nvidia.com/gpu``
to ``target.acceleratorCount`` and tolerates the ``nvidia.com/gpu`` taint. On
clusters the platform gives node pools (aws, gcp, azure) it also selects
``ollama.openhands.ai/gpu: "true"``; on existing clusters it selects nothing,
because the GPU request alone already restricts scheduling to nodes that
advertise GPUs and a label there (even GPU feature discovery's
``nvidia.com/gpu.present``) may not exist.

KEDA's request-rate query follows the mesh, since Ollama has no ``/metrics``:
Istio's ``istio_requests_total`` as reported by the model pods' sidecars,
Linkerd's inbound ``request_total`` (its ``statefulset`` label comes from the
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

Knative mode needs these KnativeServing features
(``function.stack.serving.KNATIVE_FEATURES``; the stack sets them): emptyDir
volumes, pod security context, tolerations and node selectors.
Its port is named ``http1`` and its probes name no port (Knative rules). No
KEDA object: Knative scales on its own rps target.

Ingress: private by default (``routing``). An exposed model gets a Contour
HTTPProxy for the claim's host, with TLS, an IP allow list and a 15 minute
response timeout, since generations stream for longer than Envoy's 15 s
default. Knative Services are ``cluster-local``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from function.composed import Composed, Gate, Need
from function.fleet import cache, checks, monitoring, removal, routing, scaling, workload
from function.fleet.common import key, namespace_for, target_for, wrap
from function.models.common import Serving
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput

# Serving once one replica is ready, or when scaled to zero on purpose.
_CEL_STATEFULSET_SERVING = (
    "has(object.spec.replicas) && (object.spec.replicas == 0 || "
    "(has(object.status) && has(object.status.readyReplicas) && "
    "object.status.readyReplicas >= 1))"
)
_CEL_HTTPPROXY_VALID = (
    "has(object.status) && has(object.status.conditions) && "
    "object.status.conditions.exists(c, c.type == 'Valid' && c.status == 'True')"
)


def build(
    xr_name: str,
    spec: FleetSpec,
    inputs: FunctionInput,
    observed: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Composed]:
    """Build every object one fleet composes on its cluster, in a fixed order.

    ``observed`` (composed resources by key) gives the StatefulSet's live replica
    count once it exists.

    Raises:
        ClaimError: the function input's Ollama image is not pinned.

    """
    for error in checks.image_errors(inputs):
        raise error
    target = target_for(xr_name, spec, inputs)
    ns = namespace_for(xr_name)
    in_namespace = (Gate(key("namespace"), Need.EXISTS),)

    out = [wrap(target, "namespace", workload.namespace(ns, xr_name, spec))]
    if spec.cache is not None:
        out.append(
            wrap(
                target,
                "serviceaccount",
                cache.service_account(ns, xr_name, spec.cache),
                after=in_namespace,
            )
        )
    with_account = (*in_namespace, Gate(key("serviceaccount"), Need.EXISTS))
    if spec.serving is Serving.KNATIVE:
        out.append(
            wrap(
                target,
                "knative-service",
                workload.knative_service(ns, xr_name, spec, inputs),
                after=with_account,
                readiness="DeriveFromObject",
            )
        )
    else:
        live = (observed or {}).get(key("statefulset"))
        out += [
            wrap(
                target,
                "statefulset",
                workload.statefulset(ns, xr_name, spec, inputs, live),
                after=with_account,
                cel=_CEL_STATEFULSET_SERVING,
                # The count on the cluster belongs to KEDA: when it is not reported,
                # the Object keeps the count it carries rather than the claim's.
                latch=(workload.SENT_REPLICAS,) if workload.live_replicas(live) is None else (),
            ),
            wrap(target, "service", routing.service(ns, xr_name), after=in_namespace),
            wrap(
                target,
                "scaledobject",
                scaling.scaled_object(ns, xr_name, spec),
                after=(*in_namespace, Gate(key("statefulset"), Need.EXISTS)),
                readiness="DeriveFromObject",
            ),
        ]
        if spec.exposure is not None and routing.exposed(spec):
            out.append(
                wrap(
                    target,
                    "httpproxy",
                    routing.http_proxy(ns, xr_name, spec.exposure),
                    after=in_namespace,
                    cel=_CEL_HTTPPROXY_VALID,
                )
            )
    monitor = monitoring.pod_monitor(ns, xr_name, spec)
    if monitor is not None:
        out.append(wrap(target, "podmonitor", monitor, after=in_namespace))
    out += removal.usages(target)
    return out
