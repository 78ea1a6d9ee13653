"""The function's input: chart versions, images and per-cloud defaults.

Every field has a default here, so a Composition may pass an empty input and
override only what it needs. ``package/input/`` holds the CRD generated from it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from function.models.common import (
    IMAGE_PATTERN,
    PRINTABLE_PATTERN,
    ApiModel,
    Cloud,
    InstanceType,
    Profile,
    Quantity,
)

INPUT_GROUP = "ollama.fn.openhands.ai"
INPUT_VERSION = "v1beta1"
INPUT_KIND = "Input"

Text = Annotated[str, StringConstraints(pattern=PRINTABLE_PATTERN, min_length=1, max_length=512)]
Image = Annotated[str, StringConstraints(pattern=IMAGE_PATTERN, min_length=1, max_length=255)]
AcceleratorType = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][-a-z0-9]*$", min_length=1, max_length=64)
]


class Chart(ApiModel):
    """A Helm chart pinned to a version."""

    repository: Text
    chart: Text
    version: Text


# Chart name -> (repository, chart, version). Versions are the newest releases
# listed in the chart sources the project was checked against.
DEFAULT_CHARTS: dict[str, tuple[str, str, str]] = {
    "cilium": ("https://helm.cilium.io/", "cilium", "1.18.4"),
    "istio-base": ("https://istio-release.storage.googleapis.com/charts", "base", "1.30.3"),
    "istiod": ("https://istio-release.storage.googleapis.com/charts", "istiod", "1.30.3"),
    "istio-gateway": ("https://istio-release.storage.googleapis.com/charts", "gateway", "1.30.3"),
    "linkerd-crds": ("https://helm.linkerd.io/edge", "linkerd-crds", "2026.8.3"),
    "linkerd-control-plane": (
        "https://helm.linkerd.io/edge",
        "linkerd-control-plane",
        "2026.8.3",
    ),
    "contour": ("https://projectcontour.github.io/helm-charts/", "contour", "0.7.0"),
    "kyverno": ("https://kyverno.github.io/kyverno/", "kyverno", "3.9.0"),
    "rook-ceph": ("https://charts.rook.io/release", "rook-ceph", "v1.20.6"),
    "rook-ceph-cluster": ("https://charts.rook.io/release", "rook-ceph-cluster", "v1.20.6"),
    "longhorn": ("https://charts.longhorn.io", "longhorn", "1.12.1"),
    "minio-operator": ("https://operator.min.io/", "operator", "7.1.1"),
    "minio-tenant": ("https://operator.min.io/", "tenant", "7.1.1"),
    "keda": ("https://kedacore.github.io/charts", "keda", "2.20.2"),
    "knative-operator": ("https://knative.github.io/operator", "knative-operator", "v1.23.0"),
    "opentelemetry-operator": (
        "https://open-telemetry.github.io/opentelemetry-helm-charts",
        "opentelemetry-operator",
        "0.122.0",
    ),
    "kube-prometheus-stack": (
        "https://prometheus-community.github.io/helm-charts",
        "kube-prometheus-stack",
        "88.5.3",
    ),
    "grafana-operator": ("oci://ghcr.io/grafana/helm-charts", "grafana-operator", "5.24.0"),
    "loki": ("https://grafana-community.github.io/helm-charts", "loki", "18.11.0"),
    "jaeger": ("https://jaegertracing.github.io/helm-charts", "jaeger", "4.11.1"),
    "gpu-operator": ("https://helm.ngc.nvidia.com/nvidia", "gpu-operator", "v26.7.0"),
    "ceph-csi-drivers": (
        "https://ceph.github.io/ceph-csi-operator",
        "ceph-csi-drivers",
        "1.0.4",
    ),
    # The model gateway: the pairing AI Gateway v1.1.0 is tested with (GATEWAY-FACTS.md).
    "envoy-gateway": ("oci://docker.io/envoyproxy", "gateway-helm", "v1.8.1"),
    "ai-gateway-crds": ("oci://docker.io/envoyproxy", "ai-gateway-crds-helm", "v1.1.0"),
    "ai-gateway": ("oci://docker.io/envoyproxy", "ai-gateway-helm", "v1.1.0"),
}

# The keys ``spec.charts`` may use: the catalogue's components.
CHART_COMPONENTS = tuple(sorted(DEFAULT_CHARTS))

# Release name (the key of ``spec.values``) -> its chart in the catalogue. Both
# Istio gateways are Releases of the one gateway chart.
COMPONENT_CHARTS: dict[str, str] = {
    **{name: name for name in DEFAULT_CHARTS if name != "istio-gateway"},
    "istio-ingressgateway": "istio-gateway",
    "istio-egressgateway": "istio-gateway",
}

DEFAULT_OLLAMA_IMAGE = "docker.io/ollama/ollama:0.32.15"
# Copies the model between its volume and the cluster's bucket (README "Model cache").
DEFAULT_CACHE_IMAGE = "docker.io/rclone/rclone:1.75.1"
# Creates the MinIO model cache's policy once per tenant (the release MinIO's
# operator documentation names for operator 7.x).
DEFAULT_MINIO_CLIENT_IMAGE = "docker.io/minio/mc:RELEASE.2024-10-02T08-27-28Z"
# Counts the model gateway's token quotas (Envoy Gateway's global rate limit).
DEFAULT_REDIS_IMAGE = "docker.io/library/redis:7.4.2-alpine"


class NodePoolDefaults(ApiModel):
    """Instance type and accelerator used when a cluster's gpuNodePool omits them."""

    instance_type: InstanceType = Field(alias="instanceType")
    accelerator_type: AcceleratorType = Field(alias="acceleratorType")
    accelerator_count: int = Field(default=1, alias="acceleratorCount", ge=1, le=16)


# (cloud, profile) -> defaults. Development favours the cheapest GPU that runs
# a 7B model; production a GPU with more memory headroom.
DEFAULT_NODE_POOLS: dict[tuple[Cloud, Profile], tuple[str, str, int]] = {
    (Cloud.AWS, Profile.DEVELOPMENT): ("g4dn.xlarge", "nvidia-tesla-t4", 1),
    (Cloud.AWS, Profile.PRODUCTION): ("g6.xlarge", "nvidia-l4", 1),
    (Cloud.GCP, Profile.DEVELOPMENT): ("g2-standard-4", "nvidia-l4", 1),
    (Cloud.GCP, Profile.PRODUCTION): ("g2-standard-8", "nvidia-l4", 1),
    (Cloud.AZURE, Profile.DEVELOPMENT): ("Standard_NC4as_T4_v3", "nvidia-tesla-t4", 1),
    (Cloud.AZURE, Profile.PRODUCTION): ("Standard_NC8as_T4_v3", "nvidia-tesla-t4", 1),
}


class CloudDefaults(ApiModel):
    """Per-profile node pool defaults for one cloud."""

    development: NodePoolDefaults | None = None
    production: NodePoolDefaults | None = None


class RookInput(ApiModel):
    """Where the Rook-Ceph OSDs keep their data."""

    osd_count: int = Field(
        default=3,
        alias="osdCount",
        ge=1,
        le=64,
        description="OSDs per cloud cluster, each on its own volume (at least 3 for size-3 pools).",
    )
    osd_size: Quantity = Field(
        default="100Gi", alias="osdSize", description="Size of each OSD's volume on clouds."
    )
    device_storage_class: Text | None = Field(
        default=None,
        alias="deviceStorageClass",
        description="Block StorageClass of the OSD volumes on clouds; unset: the cloud's "
        "(gp2 on EKS, standard-rwo on GKE, managed-csi on AKS).",
    )
    device_filter: Text | None = Field(
        default=None,
        alias="deviceFilter",
        description="On existing clusters, a regular expression of the raw devices OSDs "
        "may use (e.g. ^sd[b-z]); unset: every empty raw device.",
    )


class InputSpec(ApiModel):
    """Overrides for the built-in catalogue; every field is optional."""

    charts: dict[str, Chart] = Field(
        default_factory=dict,
        description="Chart overrides keyed by component (cilium, istiod, kyverno, ...).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(k, k in [{', '.join(repr(c) for c in CHART_COMPONENTS)}])",
                    "message": "every key of charts must be a component of the catalogue: "
                    + ", ".join(CHART_COMPONENTS),
                }
            ]
        },
    )
    ollama_image: Image = Field(default=DEFAULT_OLLAMA_IMAGE, alias="ollamaImage")
    cache_image: Image = Field(
        default=DEFAULT_CACHE_IMAGE,
        alias="cacheImage",
        description="rclone image that restores and saves the model cache (pin a version).",
    )
    minio_client_image: Image = Field(
        default=DEFAULT_MINIO_CLIENT_IMAGE,
        alias="minioClientImage",
        description="MinIO client (mc) image that creates the model cache's policy in the "
        "tenant, with objectStorage minio (pin a version).",
    )
    redis_image: Image = Field(
        default=DEFAULT_REDIS_IMAGE,
        alias="redisImage",
        description="Redis image the model gateway's token quotas count in (pin a version).",
    )
    aws: CloudDefaults = Field(default_factory=CloudDefaults)
    gcp: CloudDefaults = Field(default_factory=CloudDefaults)
    azure: CloudDefaults = Field(default_factory=CloudDefaults)
    rook: RookInput = Field(default_factory=RookInput)
    values: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Helm values per component (Release name: cilium, contour, istiod, "
        "kube-prometheus-stack, ...), deep-merged over the values the function computes: "
        "maps merge key by key, anything else replaces the computed value, null deletes the "
        "key. Checked against the chart's published values schema where one exists.",
    )


class FunctionInput(ApiModel):
    """The input object a Composition passes to this function."""

    spec: InputSpec = Field(default_factory=InputSpec)

    def chart(self, name: str) -> Chart:
        """The chart for ``name``: the Composition's override, else the catalogue's."""
        if name in self.spec.charts:
            return self.spec.charts[name]
        repository, chart, version = DEFAULT_CHARTS[name]
        return Chart(repository=repository, chart=chart, version=version)

    def node_pool_defaults(self, cloud: Cloud, profile: Profile) -> NodePoolDefaults:
        """Instance type and accelerator for ``cloud`` under ``profile``."""
        per_cloud: CloudDefaults | None = getattr(self.spec, cloud.value, None)
        override = getattr(per_cloud, profile.value, None) if per_cloud else None
        if isinstance(override, NodePoolDefaults):
            return override
        instance_type, accelerator, count = DEFAULT_NODE_POOLS[(cloud, profile)]
        return NodePoolDefaults(
            instance_type=instance_type, accelerator_type=accelerator, accelerator_count=count
        )
