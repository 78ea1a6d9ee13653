"""Types shared by the XOllamaPlatform and XOllamaFleet models."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from function.quantity import QUANTITY_PATTERN

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=32)]


class ApiModel(BaseModel):
    """Base for every API model: camelCase aliases, unknown fields ignored, frozen."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_enum_values=False,
        validate_default=False,
    )


def cel(*rules: tuple[str, str]) -> ConfigDict:
    """ApiModel's config plus CEL ``x-kubernetes-validations`` (rule, message) for the XRD."""
    return ConfigDict(
        **ApiModel.model_config,
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]
        },
    )


class Profile(StrEnum):
    """The seed's two recommendations."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Cloud(StrEnum):
    """Where a cluster runs."""

    AWS = "aws"
    GCP = "gcp"
    AZURE = "azure"
    EXISTING = "existing"


class Cni(StrEnum):
    """Cluster networking."""

    CILIUM = "cilium"
    NONE = "none"


class Mesh(StrEnum):
    """Service mesh."""

    ISTIO = "istio"
    LINKERD = "linkerd"
    NONE = "none"


class Ingress(StrEnum):
    """Ingress controller."""

    CONTOUR = "contour"
    NONE = "none"


class BlockStorage(StrEnum):
    """In-cluster block storage."""

    ROOK_CEPH = "rook-ceph"
    LONGHORN = "longhorn"
    NONE = "none"


class ObjectStorage(StrEnum):
    """Object storage for model artefacts."""

    CLOUD = "cloud"
    MINIO = "minio"
    ROOK_CEPH = "rook-ceph"
    NONE = "none"


class Serving(StrEnum):
    """How a model is served."""

    DEPLOYMENT = "deployment"
    KNATIVE = "knative"


class Observability(StrEnum):
    """How much of the observability stack is installed."""

    FULL = "full"
    METRICS = "metrics"
    NONE = "none"


class Policies(StrEnum):
    """Kyverno policies, and whether they block."""

    ENFORCE = "enforce"
    AUDIT = "audit"
    NONE = "none"


class Resources(ApiModel):
    """CPU, memory and GPU of one model replica."""

    gpu: bool = Field(default=True, description="Request one or more nvidia.com/gpu.")
    memory: Quantity = Field(default="16Gi", description="Memory request and limit.")
    cpu: Quantity = Field(default="4", description="CPU request; the limit is twice this.")


class Storage(ApiModel):
    """Where the pulled model is kept."""

    size: Quantity = Field(default="50Gi", description="PersistentVolumeClaim size.")
    storage_class: str = Field(
        default="",
        alias="class",
        max_length=253,
        description="StorageClass; empty means the profile's block storage class.",
    )


class Scaling(ApiModel):
    """Replica bounds and the autoscaling target."""

    model_config = cel(
        (
            (
                "!has(self.minReplicas) || !has(self.maxReplicas) || "
                "self.minReplicas <= self.maxReplicas"
            ),
            "minReplicas must not exceed maxReplicas",
        ),
    )

    min_replicas: int = Field(default=1, alias="minReplicas", ge=0, le=100)
    max_replicas: int = Field(default=10, alias="maxReplicas", ge=1, le=100)
    target_requests_per_second: int = Field(
        default=100, alias="targetRequestsPerSecond", ge=1, le=100000
    )


class Policy(ApiModel):
    """Limits the policies enforce."""

    max_storage_request: Quantity = Field(
        default="100Gi",
        alias="maxStorageRequest",
        description="Largest PersistentVolumeClaim a model may request.",
    )
