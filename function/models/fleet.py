"""XOllamaFleet: one model served on one cluster.

The seed's ``ollamafleets.openhands.ai`` CRD, realised as an XRD. It keeps the
seed's fields (``model``, ``replicas``, ``resources``, ``storage``, ``scaling``)
and adds where the model runs (``target``) and how it is served.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from function.models.common import (
    PRINTABLE_PATTERN,
    ApiModel,
    Cloud,
    DnsLabel,
    DnsSubdomain,
    Exposure,
    Ingress,
    InstanceType,
    Mesh,
    Observability,
    Policies,
    Policy,
    Resources,
    Serving,
    Storage,
    StorageClassName,
)
from function.models.common import Scaling as BaseScaling
from function.models.platform import ClusterName, ModelName

Name = DnsSubdomain


_SHORT: dict[str, Any] = {"type": "string", "maxLength": 253}
KEDA_TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "minLength": 1, "maxLength": 63},
        "name": {"type": "string", "maxLength": 63},
        "metricType": {"type": "string", "enum": ["AverageValue", "Utilization", "Value"]},
        "useCachedMetrics": {"type": "boolean"},
        "metadata": {
            "type": "object",
            "maxProperties": 32,
            "additionalProperties": {"type": "string", "maxLength": 1024},
        },
        "authenticationRef": {
            "type": "object",
            "properties": {"name": _SHORT, "kind": _SHORT},
        },
    },
}


class FleetScaling(BaseScaling):
    """The seed's scaling block, with its free-form ``metrics`` list kept."""

    metrics: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=8,
        description="Extra KEDA triggers (type and metadata), added beside the request-rate one.",
        # A closed schema: the API server prunes unknown fields and bounds the depth,
        # so no arbitrarily nested value reaches the function.
        json_schema_extra={"items": KEDA_TRIGGER_SCHEMA},
    )


class Target(ApiModel):
    """The cluster the model runs on, reached through provider ProviderConfigs."""

    provider_config_name: Name = Field(
        alias="providerConfigName",
        description="provider-kubernetes ProviderConfig of the cluster.",
    )
    helm_provider_config_name: Name | None = Field(
        default=None,
        alias="helmProviderConfigName",
        description="provider-helm ProviderConfig; defaults to providerConfigName.",
    )
    cloud: Cloud = Cloud.EXISTING
    cluster_name: ClusterName | None = Field(
        default=None,
        alias="clusterName",
        description="The platform's name for the cluster, used in labels and names.",
    )
    accelerator_count: int = Field(
        default=1,
        alias="acceleratorCount",
        ge=1,
        le=16,
        description="GPUs per node; the model requests up to this many.",
    )
    prometheus_address: (
        Annotated[str, StringConstraints(pattern=PRINTABLE_PATTERN, max_length=512)] | None
    ) = Field(
        default=None,
        alias="prometheusAddress",
        description="Prometheus the KEDA trigger queries.",
    )
    instance_type: InstanceType | None = Field(
        default=None,
        alias="instanceType",
        description="Instance type of the cluster's GPU nodes (the platform sets it); with "
        "it, a model that cannot fit one node is refused and an unknown type is warned about.",
    )


class CacheProvider(StrEnum):
    """Where the model cache lives: the cluster's cloud bucket."""

    S3 = "s3"
    GCS = "gcs"
    AZURE_BLOB = "azureblob"
    MINIO = "minio"


_BUCKET = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][-a-z0-9.]*[a-z0-9]$", max_length=63)]
_TEXT = Annotated[str, StringConstraints(pattern=PRINTABLE_PATTERN, max_length=512)]
_URL = Annotated[str, StringConstraints(pattern=r"^https://[^\s]+$", max_length=512)]


class Cache(ApiModel):
    """The bucket that caches the model's blobs, reached by workload identity.

    The platform fills it in for cloud clusters with a bucket; without it, pods pull
    from the registry only.
    """

    provider: CacheProvider
    bucket: _BUCKET = Field(description="Bucket (S3, GCS, MinIO) or blob container (Azure).")
    region: _TEXT | None = Field(default=None, description="S3 region.")
    account: DnsLabel | None = Field(default=None, description="Azure storage account name.")
    gcp_service_account: _TEXT | None = Field(
        default=None,
        alias="gcpServiceAccount",
        description="Google service account e-mail the model's service account acts as (GKE).",
    )
    azure_client_id: _TEXT | None = Field(
        default=None,
        alias="azureClientId",
        description="Client id of the managed identity the model's service account acts as (AKS).",
    )
    endpoint: _URL | None = Field(
        default=None,
        description="MinIO: the tenant's S3 endpoint; unset: the platform's tenant "
        "(https://minio.minio-tenant.svc.cluster.local).",
    )
    sts_endpoint: _URL | None = Field(
        default=None,
        alias="stsEndpoint",
        description="MinIO: the operator's STS endpoint for the tenant; unset: the platform's "
        "(https://sts.minio-operator.svc.cluster.local:4223/sts/minio-tenant).",
    )


class FleetSpec(ApiModel):
    """The spec of an XOllamaFleet."""

    name: ModelName | None = Field(
        default=None,
        description="Name of the served model, used for its namespace and objects; "
        "defaults to the XR's name.",
    )
    model: Annotated[
        str, StringConstraints(pattern=r"^[a-zA-Z0-9][-a-zA-Z0-9._/:]*$", max_length=128)
    ]
    replicas: int = Field(default=1, ge=1, le=100)
    resources: Resources = Field(default_factory=Resources)
    storage: Storage = Field(default_factory=Storage)
    scaling: FleetScaling = Field(default_factory=FleetScaling)
    target: Target
    serving: Serving = Serving.DEPLOYMENT
    mesh: Mesh = Mesh.NONE
    ingress: Ingress = Ingress.NONE
    exposure: Exposure | None = Field(
        default=None,
        description="Public exposure through Contour (host, TLS, allowed callers); absent "
        "means the model is reachable only inside its cluster and mesh.",
    )
    cache: Cache | None = Field(
        default=None,
        description="The model cache bucket; absent means every pod pulls from the registry.",
    )
    observability: Observability = Observability.NONE
    policies: Policies = Policies.NONE
    policy: Policy = Field(default_factory=Policy)
    storage_class: StorageClassName = Field(
        default="",
        alias="defaultStorageClass",
        description="StorageClass used when storage.class is empty.",
    )
