"""XOllamaPlatform: the claim a platform team's users apply.

Field names follow the API contract in DESIGN.md. Structural rules (types, enums,
bounds, patterns) live on the fields; cross-field rules live in
``function.validation`` with exact field paths, and the same rules are published
as CEL ``x-kubernetes-validations`` in the generated XRD.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from function.models.common import (
    DNS_LABEL_PATTERN,
    ApiModel,
    BlockStorage,
    Cidr,
    Cloud,
    Cni,
    Distribution,
    DnsLabel,
    DnsSubdomain,
    Exposure,
    Hostname,
    Ingress,
    InstanceType,
    Mesh,
    ObjectStorage,
    Observability,
    Policies,
    Policy,
    Profile,
    Resources,
    Rule,
    Scaling,
    SecretKey,
    Serving,
    StackDeletionPolicy,
    Storage,
    callers,
    cel,
)

LIST_MAP_BY_NAME: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}

ClusterName = Annotated[
    str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=20)
]
ModelName = Annotated[
    str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=40)
]


class SecretKeyRef(ApiModel):
    """A key in a Secret that holds a kubeconfig."""

    name: DnsSubdomain
    namespace: DnsLabel
    key: SecretKey = "kubeconfig"


class IdentityType(StrEnum):
    """The cloud identity provider-helm and provider-kubernetes authenticate with.

    The values are the ProviderConfig ``spec.identity.type`` values of both providers.
    """

    AWS_WEB_IDENTITY = "AWSWebIdentityCredentials"
    GOOGLE_APPLICATION = "GoogleApplicationCredentials"
    AZURE_WORKLOAD_IDENTITY = "AzureWorkloadIdentityCredentials"


# The one identity type that reaches each cloud's clusters.
CLOUD_IDENTITY = {
    Cloud.AWS: IdentityType.AWS_WEB_IDENTITY,
    Cloud.GCP: IdentityType.GOOGLE_APPLICATION,
    Cloud.AZURE: IdentityType.AZURE_WORKLOAD_IDENTITY,
}
_AZURE = IdentityType.AZURE_WORKLOAD_IDENTITY.value


class IdentitySecretRef(ApiModel):
    """A key in a Secret that holds an identity's settings (no secret value)."""

    name: DnsSubdomain
    namespace: DnsLabel
    key: SecretKey = "credentials"


class KubeconfigIdentity(ApiModel):
    """Authenticate to the cluster as a cloud identity instead of a kubeconfig credential."""

    model_config = cel(
        Rule(
            f"self.type != '{_AZURE}' || has(self.secretRef)",
            f"identity.secretRef is required for {_AZURE}: a Secret key with the workload "
            "identity's clientId, tenantId, federatedTokenFile, authorityHost and serverId (JSON)",
            ".secretRef",
        ),
        Rule(
            f"self.type == '{_AZURE}' || !has(self.secretRef)",
            f"identity.secretRef is only for {_AZURE}: the AWS and Google identities come from "
            "the provider pods' workload identity",
            ".secretRef",
        ),
    )

    type: IdentityType = Field(
        description="AWSWebIdentityCredentials (aws: the provider pods' IRSA or EKS Pod "
        "Identity role), GoogleApplicationCredentials (gcp: GKE Workload Identity) or "
        "AzureWorkloadIdentityCredentials (azure: Microsoft Entra Workload ID); the "
        "cluster's cloud decides which.",
    )
    secret_ref: IdentitySecretRef | None = Field(
        default=None,
        alias="secretRef",
        description="AzureWorkloadIdentityCredentials only: the Secret key with the "
        "identity's settings as JSON (clientId, tenantId, federatedTokenFile, authorityHost, "
        "serverId); the key defaults to credentials.",
    )


class Kubeconfig(ApiModel):
    """How in-cluster resources reach the cluster: exactly one of the two options.

    With ``secretRef``, ``identity`` may name the cloud identity the providers
    authenticate as (the kubeconfig then holds the endpoint and CA).
    """

    model_config = cel(
        Rule(
            "has(self.secretRef) != has(self.providerConfigName)",
            "set exactly one of kubeconfig.secretRef or kubeconfig.providerConfigName",
        ),
        Rule(
            "!has(self.identity) || has(self.secretRef)",
            "kubeconfig.identity needs kubeconfig.secretRef (a kubeconfig with the cluster's "
            "endpoint and CA); ProviderConfigs named by providerConfigName carry their own "
            "identity",
            ".identity",
        ),
    )

    secret_ref: SecretKeyRef | None = Field(
        default=None,
        alias="secretRef",
        description="Compose provider-helm and provider-kubernetes ProviderConfigs from it.",
    )
    provider_config_name: DnsSubdomain | None = Field(
        default=None,
        alias="providerConfigName",
        description="Use existing provider-helm and provider-kubernetes ProviderConfigs.",
    )
    identity: KubeconfigIdentity | None = Field(
        default=None,
        description="With secretRef: authenticate as this cloud identity, the kubeconfig "
        "holding the endpoint and CA; without it the kubeconfig's own credential is used "
        "(a token or client certificate: the provider pods run no exec plugin).",
    )


SubnetId = Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]


class AwsCluster(ApiModel):
    """The existing EKS cluster the GPU node group joins."""

    cluster_name: Annotated[
        str, StringConstraints(pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]*$", max_length=100)
    ] = Field(alias="clusterName")
    subnet_ids: list[SubnetId] = Field(
        alias="subnetIds",
        min_length=1,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class GcpCluster(ApiModel):
    """The existing GKE cluster the GPU node pool joins."""

    # The maxLengths repeat the patterns' bounds for the API server's CEL cost estimate.
    project: Annotated[
        str, StringConstraints(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$", max_length=30)
    ]
    cluster_name: Annotated[
        str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", max_length=40)
    ] = Field(alias="clusterName")


class AzureCluster(ApiModel):
    """The existing AKS cluster the GPU node pool joins."""

    resource_group_name: Annotated[str, StringConstraints(pattern=r"^[-\w\._\(\)]{1,90}$")] = Field(
        alias="resourceGroupName"
    )
    cluster_id: Annotated[
        str,
        StringConstraints(
            pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
            r"Microsoft\.ContainerService/managedClusters/[^/]+$",
            max_length=512,
        ),
    ] = Field(alias="clusterId")


class Accelerator(ApiModel):
    """The GPU attached to each node."""

    type: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][-a-z0-9]*$", max_length=64)]
    count: int = Field(default=1, ge=1, le=16)


class GpuNodePool(ApiModel):
    """The GPU node pool; unset fields take the cloud's and profile's defaults."""

    model_config = cel(
        Rule(
            "!has(self.minNodes) || !has(self.maxNodes) || self.minNodes <= self.maxNodes",
            "minNodes must not exceed maxNodes",
            ".minNodes",
        ),
    )

    instance_type: InstanceType | None = Field(default=None, alias="instanceType")
    accelerator: Accelerator | None = None
    min_nodes: int | None = Field(default=None, alias="minNodes", ge=0, le=1000)
    max_nodes: int | None = Field(default=None, alias="maxNodes", ge=1, le=1000)
    spot: bool = False
    disk_size_gb: int = Field(default=200, alias="diskSizeGb", ge=20, le=4096)


class Bucket(ApiModel):
    """Cloud object storage for model artefacts."""

    enabled: bool = True
    versioning: bool = True


class K3sCluster(ApiModel):
    """How the K3s cluster was started."""

    flannel_disabled: bool = Field(
        default=False,
        alias="flannelDisabled",
        description="The servers run with --flannel-backend=none (and --disable-network-policy), "
        "so another CNI such as Cilium may be installed.",
    )


class ClusterGateway(ApiModel):
    """Whether this cluster runs the model gateway (``spec.gateway`` configures it)."""

    enabled: bool = Field(
        default=True,
        description="false: no model gateway on this cluster even when spec.gateway is on.",
    )


class ClusterSpec(ApiModel):
    """One Kubernetes cluster the platform spans."""

    model_config = cel(
        *[
            Rule(
                f"self.cloud != '{c}' || has(self.{c})",
                f"{c} is required when cloud is {c}",
                f".{c}",
            )
            for c in ("aws", "gcp", "azure")
        ],
        *[
            Rule(
                f"self.cloud == '{c}' || !has(self.{c})",
                f"{c} must only be set when cloud is {c}",
                f".{c}",
            )
            for c in ("aws", "gcp", "azure")
        ],
        Rule(
            "self.cloud == 'existing' || has(self.region)",
            "region is required for a cloud cluster",
            ".region",
        ),
        Rule(
            "self.cloud != 'existing' || !has(self.gpuNodePool)",
            "gpuNodePool is not supported when cloud is existing",
            ".gpuNodePool",
        ),
        Rule(
            "self.cloud == 'existing' || !has(self.distribution)",
            "distribution is only for existing clusters",
            ".distribution",
        ),
        Rule(
            "!has(self.k3s) || (has(self.distribution) && self.distribution == 'k3s')",
            "k3s is only for distribution k3s",
            ".k3s",
        ),
        Rule(
            "!has(self.kubeconfig.identity) || "
            + " || ".join(
                f"(self.cloud == '{cloud.value}' && self.kubeconfig.identity.type == "
                f"'{identity.value}')"
                for cloud, identity in CLOUD_IDENTITY.items()
            ),
            "kubeconfig.identity.type must match the cluster's cloud: "
            + ", ".join(f"{i.value} for {c.value}" for c, i in CLOUD_IDENTITY.items())
            + "; existing clusters are reached by their kubeconfig alone",
            ".kubeconfig.identity.type",
        ),
    )

    name: ClusterName
    cloud: Cloud
    region: (
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][-a-z0-9]*$", max_length=64)] | None
    ) = None
    provider_config_name: DnsSubdomain = Field(default="default", alias="providerConfigName")
    kubeconfig: Kubeconfig
    aws: AwsCluster | None = None
    gcp: GcpCluster | None = None
    azure: AzureCluster | None = None
    gpu_node_pool: GpuNodePool | None = Field(default=None, alias="gpuNodePool")
    bucket: Bucket = Field(default_factory=Bucket)
    distribution: Distribution | None = Field(
        default=None,
        description="Existing clusters only: the Kubernetes distribution (generic when unset); "
        "k3s changes the GPU toolkit's containerd paths, skips control-plane scraping and "
        "allows Cilium only when flannel is disabled.",
    )
    k3s: K3sCluster | None = None
    gateway: ClusterGateway = Field(
        default_factory=ClusterGateway,
        description="The model gateway on this cluster (on where models are served, unless "
        "spec.gateway.enabled or this block's enabled is false).",
    )
    stack_deletion_policy: StackDeletionPolicy = Field(
        default=StackDeletionPolicy.ORPHAN,
        alias="stackDeletionPolicy",
        description="Orphan (default) leaves the shared stack (CNI, mesh, storage, "
        "observability, ...) on the cluster when the claim is deleted; Delete uninstalls "
        "it, after the models and in reverse dependency order. Models are always removed.",
    )


class ModelSpec(ApiModel):
    """One Ollama model, served on each of its target clusters."""

    name: ModelName
    model: Annotated[
        str, StringConstraints(pattern=r"^[a-zA-Z0-9][-a-zA-Z0-9._/:]*$", max_length=128)
    ]
    replicas: int = Field(default=1, ge=1, le=100)
    resources: Resources = Field(default_factory=Resources)
    storage: Storage = Field(default_factory=Storage)
    scaling: Scaling = Field(default_factory=Scaling)
    clusters: list[ClusterName] = Field(
        default_factory=list,
        max_length=16,
        description="Names of target clusters; empty means every cluster.",
    )
    exposure: Exposure | None = Field(
        default=None,
        description="Public exposure (host, TLS, allowed callers); absent means the model "
        "is reachable only inside its clusters and mesh.",
    )


TeamName = Annotated[
    str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=40)
]


class ApiKeySecretRef(ApiModel):
    """A team's API key: one entry of an Opaque Secret in the gateway's namespace.

    Envoy Gateway reads every entry of the Secret as a client (the entry's key
    is the client's ID, its value the API key); the team is the client ``key``.
    """

    name: DnsSubdomain
    key: SecretKey | None = Field(
        default=None,
        description="The Secret entry holding the team's API key; its key is the team's "
        "client ID (unique across teams); defaults to the team's name.",
    )


class QuotaPeriod(StrEnum):
    """The window a token quota counts over (Envoy Gateway rate limit units)."""

    MINUTE = "Minute"
    HOUR = "Hour"
    DAY = "Day"
    MONTH = "Month"


Tokens = Annotated[int, Field(ge=1, le=1_000_000_000_000)]


class ModelQuota(ApiModel):
    """A team's budget for one model, within its own budget (the same period)."""

    name: ModelName = Field(description="A model of spec.models the team may call.")
    tokens: Tokens


class TokenQuota(ApiModel):
    """A budget of tokens (input plus output) per period; over budget gives 429."""

    tokens: Tokens
    period: QuotaPeriod = QuotaPeriod.DAY
    models: list[ModelQuota] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra=LIST_MAP_BY_NAME,
        description="Budgets per model, counted in the same period besides the team's own: "
        "a request is refused (429) once either is spent.",
    )


class GatewayTeam(ApiModel):
    """A team that calls the gateway with its own API key."""

    name: TeamName
    api_key_secret_ref: ApiKeySecretRef | None = Field(
        default=None,
        alias="apiKeySecretRef",
        description="The team's key in a Secret of namespace ollama-gateway on each cluster "
        "(referenced, never created or copied by the platform); required unless "
        "spec.gateway.jwt names the teams, and not allowed then.",
    )
    models: list[ModelName] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Names of spec.models the team may call (others give 403); empty: all.",
    )
    quota: TokenQuota | None = Field(
        default=None, description="Tokens the team may use per period; absent: no limit."
    )


class GatewayExposure(Exposure):
    """Reach the gateway from outside its clusters: the claim's host, over TLS, its callers only."""

    host: Hostname = Field(description="The host name the gateway answers on (HTTPS).")
    tls_secret_name: DnsSubdomain = Field(
        alias="tlsSecretName",
        description="kubernetes.io/tls Secret with the host's certificate, in namespace "
        "ollama-gateway on each cluster (referenced, never created).",
    )
    allowed_source_ranges: list[Cidr] = callers(
        "Callers allowed (CIDRs): the load balancer's source ranges and the gateway's "
        "authorization."
    )


HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[^\s]+$", max_length=512)]
ClaimName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", min_length=1, max_length=128)
]


class GatewayJwt(ApiModel):
    """Callers authenticate with a JWT from the claim's OIDC issuer instead of API keys."""

    issuer: HttpsUrl = Field(description="The tokens' issuer (their iss claim).")
    jwks_uri: HttpsUrl = Field(
        alias="jwksUri",
        description="Where the gateway fetches the issuer's signing keys (the jwks_uri of "
        "its /.well-known/openid-configuration).",
    )
    audiences: list[
        Annotated[str, StringConstraints(pattern=r"^[^\s]+$", min_length=1, max_length=253)]
    ] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Audiences a token must name (its aud claim); empty: any.",
    )
    team_claim: ClaimName = Field(
        default="team",
        alias="teamClaim",
        description="The string claim whose value is the caller's team "
        "(spec.gateway.teams[].name); nested claims with dots.",
    )


class Gateway(ApiModel):
    """One OpenAI-compatible endpoint per cluster that routes by model name."""

    enabled: bool = Field(
        default=True,
        description="A model gateway on every cluster that serves models; false: none.",
    )
    teams: list[GatewayTeam] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra=LIST_MAP_BY_NAME,
        description="Teams and their API keys (or, with jwt, their token claim); with none "
        "the gateway asks for no key.",
    )
    jwt: GatewayJwt | None = Field(
        default=None,
        description="Authenticate callers by a JWT from an OIDC issuer instead of API keys: "
        "a request without a valid token gets 401, the team is the token's teamClaim.",
    )
    exposure: GatewayExposure | None = Field(
        default=None,
        description="Public exposure of every cluster's gateway (HTTPS on the host, the "
        "callers listed only); absent: an internal load balancer (ClusterIP on existing).",
    )


class Components(ApiModel):
    """Each field overrides the profile's default."""

    cni: Cni | None = None
    mesh: Mesh | None = None
    ingress: Ingress | None = None
    block_storage: BlockStorage | None = Field(default=None, alias="blockStorage")
    object_storage: ObjectStorage | None = Field(default=None, alias="objectStorage")
    serving: Serving | None = None
    observability: Observability | None = None
    policies: Policies | None = None


def _listed_once(has: Callable[[str], str], same: str, what: str) -> Rule:
    """A rule that no two clusters ``c`` with ``has(c)`` are ``same`` (``a`` and ``b``)."""
    return Rule(
        f"self.clusters.all(a, !({has('a')}) || self.clusters.exists_one(b, {has('b')} && {same}))",
        f"two clusters {what}; list each cluster once",
        ".clusters",
    )


# The same cluster twice would compose the stack and the models into it twice
# (the identities of the one-platform-per-cluster rule, function/exclusive.py).
SAME_CLUSTER_RULES = (
    _listed_once(
        lambda c: f"has({c}.kubeconfig.providerConfigName)",
        "b.kubeconfig.providerConfigName == a.kubeconfig.providerConfigName",
        "use the same kubeconfig.providerConfigName",
    ),
    _listed_once(
        lambda c: f"has({c}.kubeconfig.secretRef)",
        # name, namespace and key (its default is set before validation); CEL
        # reaches a field named namespace only as __namespace__.
        "b.kubeconfig.secretRef == a.kubeconfig.secretRef",
        "use the same kubeconfig Secret key",
    ),
    _listed_once(
        lambda c: f"{c}.cloud == 'aws' && has({c}.aws) && has({c}.region)",
        "b.aws.clusterName == a.aws.clusterName && b.region == a.region",
        "name the same EKS cluster (region and aws.clusterName)",
    ),
    _listed_once(
        lambda c: f"{c}.cloud == 'gcp' && has({c}.gcp) && has({c}.region)",
        "b.gcp.project == a.gcp.project && b.region == a.region && "
        "b.gcp.clusterName == a.gcp.clusterName",
        "name the same GKE cluster (gcp.project, region and gcp.clusterName)",
    ),
    _listed_once(
        lambda c: f"{c}.cloud == 'azure' && has({c}.azure)",
        "b.azure.clusterId.lowerAscii() == a.azure.clusterId.lowerAscii()",
        "name the same AKS cluster (azure.clusterId)",
    ),
)


class PlatformSpec(ApiModel):
    """The spec of an XOllamaPlatform."""

    model_config = cel(
        Rule(
            (
                "!has(self.models) || self.models.all(m, !has(m.clusters) || "
                "m.clusters.all(c, self.clusters.exists(k, k.name == c)))"
            ),
            "every models[].clusters entry must name a cluster in spec.clusters",
            # Kubernetes takes no list index in fieldPath, and kube-apiserver
            # 1.34 refuses any messageExpression here as too costly, so the API
            # server names spec.models; the function's Fatal names the entry.
            ".models",
        ),
        *SAME_CLUSTER_RULES,
    )

    profile: Profile = Profile.PRODUCTION
    clusters: list[ClusterSpec] = Field(
        min_length=1, max_length=16, json_schema_extra=LIST_MAP_BY_NAME
    )
    models: list[ModelSpec] = Field(
        default_factory=list, max_length=32, json_schema_extra=LIST_MAP_BY_NAME
    )
    components: Components = Field(default_factory=Components)
    policy: Policy = Field(default_factory=Policy)
    gateway: Gateway = Field(
        default_factory=Gateway,
        description="The model gateway (Envoy AI Gateway): one OpenAI-compatible endpoint per "
        "cluster, API keys per team, token quotas.",
    )
