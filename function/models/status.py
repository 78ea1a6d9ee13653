"""The status the function writes on each XR (every field optional)."""

from __future__ import annotations

from pydantic import Field

from function.models.common import ApiModel


class NodePoolStatus(ApiModel):
    """The cluster's GPU node pool."""

    name: str | None = None
    instance_type: str | None = Field(default=None, alias="instanceType")
    ready: bool | None = None


class BucketStatus(ApiModel):
    """The cluster's bucket for model artefacts."""

    name: str | None = None
    region: str | None = None
    url: str | None = Field(default=None, description="URL or ARN once observed.")


class GatewayStatus(ApiModel):
    """The cluster's model gateway."""

    endpoint: str | None = Field(
        default=None,
        description="The OpenAI base URL (http://<address>/v1) once the Gateway reports "
        "its address.",
    )


class ClusterStatus(ApiModel):
    """Where one cluster stands."""

    name: str | None = None
    ready: bool | None = None
    node_pool: NodePoolStatus | None = Field(default=None, alias="nodePool")
    bucket: BucketStatus | None = None
    gateway: GatewayStatus | None = None
    components: dict[str, bool] | None = Field(
        default=None, description="Readiness of each in-cluster component."
    )


class ModelStatus(ApiModel):
    """Where one model stands on one cluster."""

    name: str | None = None
    cluster: str | None = None
    endpoint: str | None = None
    ready: bool | None = None


class PlatformStatus(ApiModel):
    """The status of an XOllamaPlatform."""

    clusters: list[ClusterStatus] | None = None
    models: list[ModelStatus] | None = None


class FleetStatus(ApiModel):
    """The status of an XOllamaFleet."""

    endpoint: str | None = None
    ready: bool | None = None
    model: str | None = None
