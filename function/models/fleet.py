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
    Rule,
    Serving,
    Storage,
    StorageClassName,
    cel,
)
from function.models.common import Scaling as BaseScaling
from function.models.platform import ClusterName, ModelName

Name = DnsSubdomain


_SHORT: dict[str, Any] = {"type": "string", "maxLength": 253}
# A KEDA trigger's type and setting names: printable ASCII without spaces; its
# settings: any text without control characters (no newline, tab or escape).
TRIGGER_WORD_PATTERN = PRINTABLE_PATTERN
TRIGGER_SETTING_PATTERN = r"^[^\x00-\x1F\x7F-\x9F]*$"
MAX_TRIGGER_SETTINGS = 32
MAX_TRIGGER_SETTING_CHARS = 1024
MAX_TRIGGER_WORD_CHARS = 63
KEDA_TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_TRIGGER_WORD_CHARS,
            "pattern": TRIGGER_WORD_PATTERN,
        },
        "name": {"type": "string", "maxLength": MAX_TRIGGER_WORD_CHARS},
        "metricType": {"type": "string", "enum": ["AverageValue", "Utilization", "Value"]},
        "useCachedMetrics": {"type": "boolean"},
        "metadata": {
            "type": "object",
            "maxProperties": MAX_TRIGGER_SETTINGS,
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_TRIGGER_SETTING_CHARS,
                "pattern": TRIGGER_SETTING_PATTERN,
            },
            "x-kubernetes-validations": [
                {
                    "rule": (
                        f"self.all(k, size(k) <= {MAX_TRIGGER_WORD_CHARS} && "
                        f"k.matches('{TRIGGER_WORD_PATTERN}'))"
                    ),
                    "message": "trigger setting names must be printable ASCII without spaces, "
                    f"at most {MAX_TRIGGER_WORD_CHARS} characters",
                }
            ],
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


# S3 and GCS bucket names (MinIO's too): 3 to 63 lowercase letters, digits, dots and
# hyphens, alphanumeric at both ends, no two dots in a row; not an IP address (CEL).
# An Azure blob container: letters, digits and single hyphens only (CEL).
BUCKET_PATTERN = r"^[a-z0-9]((\.?[-a-z0-9])*\.?[a-z0-9])?$"
IP_ADDRESS_PATTERN = r"^[0-9]{1,3}([.][0-9]{1,3}){3}$"  # [.]: CEL strings take no \.
AZURE_CONTAINER_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
_BUCKET = Annotated[str, StringConstraints(pattern=BUCKET_PATTERN, min_length=3, max_length=63)]
# What each provider's remote reads besides the bucket (fleet/cache.py).
CACHE_REQUIRED: dict[CacheProvider, tuple[str, ...]] = {
    CacheProvider.S3: ("region",),
    CacheProvider.GCS: ("gcpServiceAccount",),
    CacheProvider.AZURE_BLOB: ("account", "azureClientId"),
    CacheProvider.MINIO: (),
}
_TEXT = Annotated[str, StringConstraints(pattern=PRINTABLE_PATTERN, max_length=512)]
_URL = Annotated[str, StringConstraints(pattern=r"^https://[^\s]+$", max_length=512)]


class Cache(ApiModel):
    """The bucket that caches the model's blobs, reached by workload identity.

    The platform fills it in for cloud clusters with a bucket; without it, pods pull
    from the registry only.
    """

    model_config = cel(
        *[
            Rule(
                f"self.provider != '{provider.value}' || has(self.{field})",
                f"{field} is required when provider is {provider.value}",
                f".{field}",
            )
            for provider, fields in CACHE_REQUIRED.items()
            for field in fields
        ],
        Rule(
            f"self.provider == 'azureblob' || !self.bucket.matches('{IP_ADDRESS_PATTERN}')",
            "a bucket name must not be an IP address",
            ".bucket",
        ),
        Rule(
            f"self.provider != 'azureblob' || self.bucket.matches('{AZURE_CONTAINER_PATTERN}')",
            "an Azure blob container name has only lowercase letters, digits and single "
            "hyphens between them",
            ".bucket",
        ),
    )

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
