"""Resolved, profile-applied views of a claim that the builders read.

Builders never look at the profile or at unset fields: everything they need is
resolved here once, so defaults live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from function import naming, sizing
from function.models.common import (
    BlockStorage,
    Cloud,
    Cni,
    Distribution,
    Ingress,
    Mesh,
    ObjectStorage,
    Observability,
    Policies,
    Profile,
    Serving,
    StackDeletionPolicy,
)
from function.models.input import FunctionInput
from function.models.platform import ClusterSpec, Components, ModelSpec, PlatformSpec

PROFILE_COMPONENTS: dict[Profile, dict[str, Any]] = {
    Profile.DEVELOPMENT: {
        "cni": Cni.NONE,
        "mesh": Mesh.LINKERD,
        "ingress": Ingress.CONTOUR,
        "block_storage": BlockStorage.LONGHORN,
        "object_storage": ObjectStorage.CLOUD,
        "serving": Serving.DEPLOYMENT,
        "observability": Observability.METRICS,
        "policies": Policies.AUDIT,
    },
    Profile.PRODUCTION: {
        "cni": Cni.CILIUM,
        "mesh": Mesh.ISTIO,
        "ingress": Ingress.CONTOUR,
        "block_storage": BlockStorage.ROOK_CEPH,
        "object_storage": ObjectStorage.CLOUD,
        "serving": Serving.DEPLOYMENT,
        "observability": Observability.FULL,
        "policies": Policies.ENFORCE,
    },
}

PROFILE_MIN_NODES = {Profile.DEVELOPMENT: 0, Profile.PRODUCTION: 1}
PROFILE_MAX_NODES = {Profile.DEVELOPMENT: 2, Profile.PRODUCTION: 10}

STORAGE_CLASSES = {
    BlockStorage.ROOK_CEPH: "rook-ceph-block",
    BlockStorage.LONGHORN: "longhorn",
    BlockStorage.NONE: "",
}

# The block StorageClass each cloud provides out of the box.
# EKS: ``gp2`` (EBS, needs the EBS CSI driver add-on; since Kubernetes 1.30 EKS
# no longer marks it as the default class, so volumes must name it); GKE:
# ``standard-rwo`` (PD CSI, on by default); AKS: ``managed-csi`` (Azure Disk CSI,
# on by default).
CLOUD_BLOCK_STORAGE_CLASS = {
    Cloud.AWS: "gp2",
    Cloud.GCP: "standard-rwo",
    Cloud.AZURE: "managed-csi",
}

# Where the observability stack listens, used by the mesh, KEDA and Grafana.
MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_ADDRESS = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
OTEL_COLLECTOR_HOST = "otel-collector.monitoring.svc"
# The IngressClass Contour watches; the fleet's HTTPProxies carry it.
CONTOUR_INGRESS_CLASS = "contour"


@dataclass(frozen=True, slots=True)
class ResolvedComponents:
    """Every component choice, with the profile's defaults applied."""

    cni: Cni
    mesh: Mesh
    ingress: Ingress
    block_storage: BlockStorage
    object_storage: ObjectStorage
    serving: Serving
    observability: Observability
    policies: Policies

    @classmethod
    def resolve(cls, profile: Profile, components: Components) -> ResolvedComponents:
        """Apply ``components`` over the profile's defaults."""
        values = dict(PROFILE_COMPONENTS[profile])
        for name in values:
            chosen = getattr(components, name)
            if chosen is not None:
                values[name] = chosen
        return cls(**values)

    def storage_class(self) -> str:
        """The StorageClass the block storage component provides ('' for the default)."""
        return STORAGE_CLASSES[self.block_storage]


@dataclass(frozen=True, slots=True)
class NodePool:
    """A GPU node pool with every default applied.

    ``sized`` says the claim named no instance type and ``instance_type`` was
    chosen from the table for the cluster's models (``function.sizing``); with
    ``fits`` False no known type holds them all and this is the largest tried.
    """

    instance_type: str
    accelerator_type: str
    accelerator_count: int
    min_nodes: int
    max_nodes: int
    spot: bool
    disk_size_gb: int
    sized: bool = False
    fits: bool = True


@dataclass(frozen=True, slots=True)
class InClusterTarget:
    """Where in-cluster resources go: a cluster's ProviderConfigs and what they wait for.

    ``key_prefix`` starts every composition resource name (the cluster's name
    for a platform, empty-free ``fleet`` for a fleet). ``charts`` resolves chart
    names for fleets, which have no PlatformContext. ``deletable`` adds ``Delete``
    to the management policies: a fleet's objects always, the shared stack only
    when the claim asks for it (``stackDeletionPolicy: Delete``).
    """

    cluster: str
    helm_provider_config: str
    kubernetes_provider_config: str
    labels: dict[str, str]
    helm_gates: tuple[Any, ...] = ()
    kubernetes_gates: tuple[Any, ...] = ()
    key_prefix_override: str | None = None
    inputs: FunctionInput | None = None
    deletable: bool = False

    @property
    def key_prefix(self) -> str:
        """The prefix of composition resource names."""
        return self.key_prefix_override or self.cluster

    def role_labels(self, role: str) -> dict[str, str]:
        """Labels of one composed resource (a role too long for a label value is shortened)."""
        return {**self.labels, naming.LABEL_ROLE: naming.label_value(role)}

    def chart(self, name: str) -> Any:  # models.input.Chart
        """The chart ``name`` from the function input (or the catalogue)."""
        return (self.inputs or FunctionInput()).chart(name)


@dataclass(frozen=True, slots=True)
class PlatformContext:
    """Facts about the XR every builder may need."""

    name: str
    uid: str
    profile: Profile
    components: ResolvedComponents
    inputs: FunctionInput
    max_storage_request: str
    claim_name: str = ""
    claim_namespace: str = ""

    def labels(self) -> dict[str, str]:
        """Labels that identify the claim on every composed resource."""
        return {naming.LABEL_PLATFORM: self.name}

    def tags(self) -> dict[str, str]:
        """Cloud tags that identify the claim (AWS tags, GCP/Azure labels are derived)."""
        tags = {"ollama-platform": self.name, "managed-by": "crossplane"}
        if self.claim_name:
            tags["claim-name"] = self.claim_name
        if self.claim_namespace:
            tags["claim-namespace"] = self.claim_namespace
        return tags


@dataclass(frozen=True, slots=True)
class ClusterContext:
    """One cluster entry, resolved.

    ``helm_provider_config`` and ``kubernetes_provider_config`` are the names of
    the ProviderConfigs in-cluster resources use: the user's, or the observed
    names of the ones the platform composed (None until those exist).
    ``public_sources`` are the CIDRs allowed to call the cluster's publicly exposed
    models; empty (no public model) keeps the ingress load balancer internal.
    ``gpu_models`` says whether any model on the cluster asks for a GPU: without
    one there is no GPU operator, and the pool's default minimum is zero.
    ``models`` are the names of the models served on the cluster (the cloud
    identity chains name each model's namespace and ServiceAccount).
    ``gateway`` says whether the cluster runs the model gateway (its Envoy Gateway
    Release then owns the Gateway API CRDs, which the mesh must not install too).
    """

    platform: PlatformContext
    spec: ClusterSpec
    components: ResolvedComponents
    node_pool: NodePool | None
    helm_provider_config: str | None = None
    kubernetes_provider_config: str | None = None
    public_sources: tuple[str, ...] = ()
    gpu_models: bool = True
    models: tuple[str, ...] = ()
    gateway: bool = False

    @property
    def name(self) -> str:
        """The cluster's name in the claim."""
        return self.spec.name

    @property
    def cloud(self) -> Cloud:
        """The cluster's cloud."""
        return self.spec.cloud

    @property
    def distribution(self) -> Distribution:
        """The Kubernetes distribution of an existing cluster (generic for cloud clusters)."""
        return self.spec.distribution or Distribution.GENERIC

    @property
    def uninstalls(self) -> bool:
        """Whether deleting the claim uninstalls the stack (``stackDeletionPolicy: Delete``)."""
        return self.spec.stack_deletion_policy is StackDeletionPolicy.DELETE

    def storage_class(self) -> str:
        """The StorageClass of the volumes the platform claims on this cluster.

        The block storage component's class; without one, the cloud's own block
        class, named rather than left to the default (EKS clusters from 1.30 on
        have no default class); '' on existing clusters (their default).
        """
        return self.components.storage_class() or CLOUD_BLOCK_STORAGE_CLASS.get(self.cloud, "")

    def osd_storage_class(self) -> str | None:
        """The StorageClass of Rook-Ceph's OSD volumes on a cloud cluster (None on existing ones).

        ``rook.deviceStorageClass`` when the function input names one, else the
        cloud's block class. The stack puts the OSDs on it; on AWS the cloud
        installs the EBS CSI driver when it is an EBS class.
        """
        if self.cloud not in CLOUD_BLOCK_STORAGE_CLASS:
            return None
        rook = self.platform.inputs.spec.rook
        return rook.device_storage_class or CLOUD_BLOCK_STORAGE_CLASS[self.cloud]

    def labels(self, role: str) -> dict[str, str]:
        """Labels for a composed resource of this cluster, used by selectors."""
        return {
            **self.platform.labels(),
            naming.LABEL_CLUSTER: self.name,
            naming.LABEL_ROLE: naming.label_value(role),
        }

    def selector(self, role: str) -> dict[str, Any]:
        """A selector that matches this XR's composed resource with ``role`` on this cluster."""
        return {"matchControllerRef": True, "matchLabels": self.labels(role)}

    def memo_key(self) -> tuple[Any, ...]:
        """Everything a builder of this cluster can read, as a hashable value.

        Two contexts with equal keys build the same resources: the claim's and
        the input's models are frozen and dumped to JSON (exact: ``1`` and
        ``1.0``, ``-0.0`` and ``0.0`` dump differently), the rest are frozen
        values, and the storage classes are resolved here so that the tables
        they come from are part of the key too.
        """
        p = self.platform
        return (
            p.name,
            p.uid,
            p.profile,
            p.components,
            p.inputs.model_dump_json(),
            p.max_storage_request,
            p.claim_name,
            p.claim_namespace,
            self.spec.model_dump_json(),
            self.components,
            self.node_pool,
            self.helm_provider_config,
            self.kubernetes_provider_config,
            self.public_sources,
            self.gpu_models,
            self.models,
            self.gateway,
            self.storage_class(),
            self.osd_storage_class(),
        )


def models_on(spec: PlatformSpec, cluster: ClusterSpec) -> list[tuple[int, ModelSpec]]:
    """The models placed on ``cluster`` with their index: those naming it, or naming none."""
    return [
        (i, m) for i, m in enumerate(spec.models) if not m.clusters or cluster.name in m.clusters
    ]


def resolve_node_pool(
    spec: PlatformSpec, cluster: ClusterSpec, inputs: FunctionInput
) -> NodePool | None:
    """The cluster's GPU node pool with cloud and profile defaults, or None for existing.

    Without ``gpuNodePool.instanceType`` the instance type is sized for the
    cluster's models (``function.sizing.choose``): the profile's default when they
    fit it, else the smallest known type that holds them, whose GPU and GPU count
    the pool then takes unless the claim sets ``gpuNodePool.accelerator``.
    """
    if cluster.cloud is Cloud.EXISTING:
        return None
    defaults = inputs.node_pool_defaults(cluster.cloud, spec.profile)
    pool = cluster.gpu_node_pool
    accelerator = pool.accelerator if pool else None
    min_nodes = pool.min_nodes if pool and pool.min_nodes is not None else None
    max_nodes = pool.max_nodes if pool and pool.max_nodes is not None else None
    if min_nodes is None:
        min_nodes = PROFILE_MIN_NODES[spec.profile]
    if max_nodes is None:
        max_nodes = max(PROFILE_MAX_NODES[spec.profile], min_nodes)
    instance_type = pool.instance_type if pool and pool.instance_type else None
    accelerator_type = accelerator.type if accelerator else defaults.accelerator_type
    accelerator_count = accelerator.count if accelerator else defaults.accelerator_count
    choice = None
    if instance_type is None:
        choice = sizing.choose(
            (sizing.Need.of(m.resources, m.model) for _, m in models_on(spec, cluster)),
            cluster.cloud,
            spec.profile,
            sizing.Default(
                defaults.instance_type, defaults.accelerator_type, defaults.accelerator_count
            ),
            (accelerator.type, accelerator.count) if accelerator else None,
        )
    if choice is not None:
        instance_type = choice.instance.name
        accelerator_type, accelerator_count = choice.accelerator_type, choice.accelerator_count
    return NodePool(
        instance_type=instance_type or defaults.instance_type,
        accelerator_type=accelerator_type,
        accelerator_count=accelerator_count,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        spot=pool.spot if pool else False,
        disk_size_gb=pool.disk_size_gb if pool else 200,
        sized=choice is not None,
        fits=choice is None or choice.fits,
    )


def effective_components(platform: ResolvedComponents, cluster: ClusterSpec) -> ResolvedComponents:
    """Per-cluster adjustments: existing clusters have no cloud bucket."""
    if cluster.cloud is Cloud.EXISTING and platform.object_storage is ObjectStorage.CLOUD:
        return ResolvedComponents(
            cni=platform.cni,
            mesh=platform.mesh,
            ingress=platform.ingress,
            block_storage=platform.block_storage,
            object_storage=ObjectStorage.NONE,
            serving=platform.serving,
            observability=platform.observability,
            policies=platform.policies,
        )
    return platform
