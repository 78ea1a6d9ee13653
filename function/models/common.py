"""Types shared by the XOllamaPlatform and XOllamaFleet models."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

from function.quantity import POSITIVE_QUANTITY_PATTERN, QUANTITY_PATTERN

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Kubernetes object names (RFC 1123 subdomain), e.g. Secrets, ProviderConfigs, StorageClasses.
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS_SUBDOMAIN_PATTERN = f"^{_SUBDOMAIN}$"
OPTIONAL_DNS_SUBDOMAIN_PATTERN = f"^({_SUBDOMAIN})?$"
# A label value: at most 63 characters (checked separately), alphanumeric at both ends.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A key in a Secret's data.
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105  # a pattern, not a secret
# Printable ASCII without spaces: URLs, chart names and versions.
PRINTABLE_PATTERN = r"^[!-~]+$"
# A container image reference: [registry[:port]/]path[:tag][@sha256:digest].
_IMAGE_DOMAIN = (
    r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?"
)
_IMAGE_COMPONENT = r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN = (
    f"^({_IMAGE_DOMAIN}/)?{_IMAGE_COMPONENT}(/{_IMAGE_COMPONENT})*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
INSTANCE_TYPE_PATTERN = r"^[A-Za-z0-9][-A-Za-z0-9_.]*$"

DnsSubdomain = Annotated[
    str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)
]
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
SecretKey = Annotated[
    str, StringConstraints(pattern=SECRET_KEY_PATTERN, min_length=1, max_length=253)
]
StorageClassName = Annotated[
    str, StringConstraints(pattern=OPTIONAL_DNS_SUBDOMAIN_PATTERN, max_length=253)
]
InstanceType = Annotated[
    str, StringConstraints(pattern=INSTANCE_TYPE_PATTERN, min_length=1, max_length=64)
]

Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=32)]
PositiveQuantity = Annotated[
    str, StringConstraints(pattern=POSITIVE_QUANTITY_PATTERN, max_length=32)
]


class ApiModel(BaseModel):
    """Base for every API model: camelCase aliases, unknown fields ignored, frozen."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_enum_values=False,
        validate_default=False,
    )


class Rule(NamedTuple):
    """One CEL rule: what it checks, its message, and the field it judges.

    ``field_path`` (relative to the schema node the rule sits on, e.g. ``.aws``)
    makes the API server report the field itself (``spec.clusters[0].aws``)
    instead of the object holding the rule. Kubernetes accepts no list index in
    it. A ``message_expression`` must pass kube-apiserver's cost estimate, which
    ``crossplane beta validate`` does not check: the end-to-end tests do.
    """

    rule: str
    message: str
    field_path: str | None = None
    message_expression: str | None = None

    def schema(self) -> JsonDict:
        """The ``x-kubernetes-validations`` entry."""
        out: JsonDict = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.message_expression:
            out["messageExpression"] = self.message_expression
        return out


def cel(*rules: Rule) -> ConfigDict:
    """ApiModel's config plus CEL ``x-kubernetes-validations`` for the XRD."""
    return ConfigDict(
        **ApiModel.model_config,
        json_schema_extra={"x-kubernetes-validations": [r.schema() for r in rules]},
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


class Distribution(StrEnum):
    """What Kubernetes an existing cluster runs (cloud clusters are EKS, GKE or AKS)."""

    GENERIC = "generic"
    K3S = "k3s"


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


# An IPv4 or IPv6 address or CIDR block (Contour's ipAllowPolicy takes both). The
# pattern bounds octets and prefix lengths; whether an IPv6 text is an address, and
# that no host bits are set, is for CEL here and the ipaddress module in the function.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
CIDR_PATTERN = (
    rf"^({_IPV4}(/(3[0-2]|[12]?[0-9]))?"
    r"|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"
)
Cidr = Annotated[str, StringConstraints(pattern=CIDR_PATTERN, min_length=2, max_length=49)]
# A host name: RFC 1123 labels of at most 63 characters (253 in all, maxLength).
_HOST_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
HOSTNAME_PATTERN = rf"^{_HOST_LABEL}(\.{_HOST_LABEL})*$"
Hostname = Annotated[str, StringConstraints(pattern=HOSTNAME_PATTERN, min_length=1, max_length=253)]
# A TLS Secret: ``name`` in the model's namespace, or ``namespace/name`` (delegated):
# a namespace (a label, at most 63 characters) and a name (a subdomain, at most 253,
# a CEL rule below: a pattern cannot bound one part of the value).
MAX_SUBDOMAIN = 253
TLS_SECRET_PATTERN = f"^({_HOST_LABEL}/)?{_SUBDOMAIN}$"


def callers(description: str) -> Any:
    """The ``allowedSourceRanges`` field of an exposure: 1 to 32 distinct CIDRs."""
    return Field(
        alias="allowedSourceRanges",
        min_length=1,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description=description,
    )


class Exposure(ApiModel):
    """Reach a model from outside its cluster: the claim's host, over TLS, its callers only.

    Without it a model is reachable only inside its cluster and mesh.
    """

    model_config = cel(
        Rule(
            "self.allowedSourceRanges.all(r, isCIDR(r) ? cidr(r) == cidr(r).masked() : isIP(r))",
            "allowedSourceRanges must be IP addresses or CIDR blocks without host bits "
            "(10.0.0.0/8, not 10.0.0.1/8)",
            ".allowedSourceRanges",
        ),
        Rule(
            f"size(self.tlsSecretName) - self.tlsSecretName.indexOf('/') - 1 <= {MAX_SUBDOMAIN}",
            f"the Secret name in tlsSecretName must be at most {MAX_SUBDOMAIN} characters",
            ".tlsSecretName",
        ),
    )

    host: Hostname = Field(description="The host name the model answers on (Contour).")
    tls_secret_name: Annotated[
        str,
        StringConstraints(pattern=TLS_SECRET_PATTERN, min_length=1, max_length=64 + MAX_SUBDOMAIN),
    ] = Field(
        alias="tlsSecretName",
        description="kubernetes.io/tls Secret with the host's certificate: a name in the "
        "model's namespace (ollama-<model>), or namespace/name delegated with a Contour "
        "TLSCertificateDelegation.",
    )
    allowed_source_ranges: list[Cidr] = callers(
        "Callers allowed (CIDRs): Contour's IP allow list on the model's host, "
        "and the load balancer's source ranges."
    )


class StackDeletionPolicy(StrEnum):
    """What deleting the claim does to a cluster's shared stack."""

    ORPHAN = "Orphan"
    DELETE = "Delete"


class Resources(ApiModel):
    """CPU, memory and GPU of one model replica."""

    gpu: bool = Field(default=True, description="Request one or more nvidia.com/gpu.")
    memory: Quantity = Field(
        default="12Gi",
        description="Memory request and limit; the default fits one node of every default pool.",
    )
    cpu: Quantity = Field(default="3", description="CPU request; the limit is twice this.")


class Storage(ApiModel):
    """Where the pulled model is kept."""

    size: PositiveQuantity = Field(default="50Gi", description="PersistentVolumeClaim size.")
    storage_class: StorageClassName = Field(
        default="",
        alias="class",
        description="StorageClass; empty means the profile's block storage class.",
    )


class Scaling(ApiModel):
    """Replica bounds and the autoscaling target."""

    model_config = cel(
        Rule(
            (
                "!has(self.minReplicas) || !has(self.maxReplicas) || "
                "self.minReplicas <= self.maxReplicas"
            ),
            "minReplicas must not exceed maxReplicas",
            ".minReplicas",
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
