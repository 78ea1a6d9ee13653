"""The invalid claims, each with who refuses it and the message it gets.

One table for two suites. ``tests/unit/test_invalid_claims.py`` runs every
claim through the function in process: each gets one Fatal naming the field
(the function mirrors the XRD's rules, so a claim that slipped past admission
gets the same answer). ``tests/e2e/test_1_install.py`` applies them to a real
API server with a real Crossplane: a claim with ``api`` set is refused at apply
time with those words (CEL rules and OpenAPI checks of the generated CRDs); one
without is accepted and reaches the claim as the function's Fatal
(``Progressing=False FatalError`` carrying ``fatal``).

Every claim reaches its cluster its own way (ProviderConfig ``invalid-<id>``,
its own kubeconfig Secret and cloud cluster name), so the one-platform-per-cluster
rule never adds a second error, and none of them touches the examples' clusters.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "invalid-claims"
GROUP_VERSION = "openhands.ai/v1alpha1"


@dataclass(frozen=True)
class Invalid:
    """One invalid claim."""

    id: str
    kind: str  # OllamaPlatform or OllamaFleet
    spec: dict[str, Any]
    # What the function's Fatal says (path: message); the XR is refused in process too.
    fatal: str
    # What the API server says when it refuses the claim at apply time (every
    # string appears in kubectl's error); empty: the API server accepts it.
    api: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"inv-{self.id}"

    def claim(self) -> dict[str, Any]:
        return {
            "apiVersion": GROUP_VERSION,
            "kind": self.kind,
            "metadata": {"name": self.name, "namespace": NAMESPACE},
            "spec": copy.deepcopy(self.spec),
        }

    def xr(self) -> dict[str, Any]:
        """The composite the claim would make (what the function is sent)."""
        return {
            "apiVersion": GROUP_VERSION,
            "kind": f"X{self.kind}",
            "metadata": {
                "name": f"{self.name}-x1y2z",
                "labels": {
                    "crossplane.io/claim-name": self.name,
                    "crossplane.io/claim-namespace": NAMESPACE,
                },
            },
            "spec": copy.deepcopy(self.spec),
        }


def existing(case: str, **extra: Any) -> dict[str, Any]:
    """A valid existing cluster reached through its own ProviderConfig."""
    return {
        "name": "k3s",
        "cloud": "existing",
        "kubeconfig": {"providerConfigName": f"invalid-{case}"},
        **extra,
    }


def cloud(case: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A valid cloud cluster of ``kind`` (aws, gcp, azure), its own cloud cluster name."""
    blocks = {
        "aws": {
            "region": "us-east-1",
            "aws": {"clusterName": f"eks-{case}", "subnetIds": ["subnet-0a1b2c3d4e5f60718"]},
        },
        "gcp": {"region": "us-central1", "gcp": {"project": "invalid-claims", "clusterName": f"gke-{case}"}},
        "azure": {
            "region": "eastus",
            "azure": {
                "resourceGroupName": "rg-invalid",
                "clusterId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                f"rg-invalid/providers/Microsoft.ContainerService/managedClusters/aks-{case}",
            },
        },
    }
    return {
        "name": f"{kind}-1",
        "cloud": kind,
        "kubeconfig": {"secretRef": {"name": f"invalid-{case}", "namespace": NAMESPACE}},
        **copy.deepcopy(blocks[kind]),
        **extra,
    }


def without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def platform(clusters: list[dict[str, Any]], models: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A platform spec: development profile (no GPUs needed), one small model by default."""
    return {
        "profile": "development",
        "clusters": clusters,
        "models": models if models is not None else [{"name": "llama2", "model": "llama2"}],
        **extra,
    }


def fleet(case: str, **extra: Any) -> dict[str, Any]:
    return {"model": "llama2", "target": {"providerConfigName": f"invalid-{case}"}, **extra}


def _cases() -> list[Invalid]:
    p, f = "OllamaPlatform", "OllamaFleet"
    secret_and_pc = {"secretRef": {"name": "x", "namespace": NAMESPACE}, "providerConfigName": "invalid-kc-both"}
    return [
        # --- every CEL rule of the two XRDs (x-kubernetes-validations) ----------------
        Invalid(
            "kc-both", p,
            platform([existing("kc-both", kubeconfig=secret_and_pc)]),
            "spec.clusters[0].kubeconfig: set exactly one of secretRef or providerConfigName",
            ("spec.clusters[0].kubeconfig: Invalid value",
             "set exactly one of kubeconfig.secretRef or kubeconfig.providerConfigName"),
        ),
        Invalid(
            "kc-neither", p,
            platform([existing("kc-neither", kubeconfig={})]),
            "spec.clusters[0].kubeconfig: set exactly one of secretRef or providerConfigName",
            ("spec.clusters[0].kubeconfig: Invalid value",
             "set exactly one of kubeconfig.secretRef or kubeconfig.providerConfigName"),
        ),
        Invalid(
            "pool-min-max", p,
            platform([cloud("pool-min-max", "aws", gpuNodePool={"minNodes": 5, "maxNodes": 2})]),
            "spec.clusters[0].gpuNodePool.minNodes: minNodes (5) must not exceed maxNodes (2)",
            ("spec.clusters[0].gpuNodePool.minNodes: Invalid value", "minNodes must not exceed maxNodes"),
        ),
        Invalid(
            "aws-missing", p,
            platform([without(cloud("aws-missing", "aws"), "aws")]),
            "spec.clusters[0].aws: required when cloud is aws",
            ("spec.clusters[0].aws: Invalid value", "aws is required when cloud is aws"),
        ),
        Invalid(
            "gcp-missing", p,
            platform([without(cloud("gcp-missing", "gcp"), "gcp")]),
            "spec.clusters[0].gcp: required when cloud is gcp",
            ("spec.clusters[0].gcp: Invalid value", "gcp is required when cloud is gcp"),
        ),
        Invalid(
            "azure-missing", p,
            platform([without(cloud("azure-missing", "azure"), "azure")]),
            "spec.clusters[0].azure: required when cloud is azure",
            ("spec.clusters[0].azure: Invalid value", "azure is required when cloud is azure"),
        ),
        Invalid(
            "aws-on-gcp", p,
            platform([{**cloud("aws-on-gcp", "gcp"), "aws": cloud("aws-on-gcp", "aws")["aws"]}]),
            "spec.clusters[0].aws: must not be set when cloud is gcp",
            ("spec.clusters[0].aws: Invalid value", "aws must only be set when cloud is aws"),
        ),
        Invalid(
            "gcp-on-existing", p,
            platform([existing("gcp-on-existing", gcp=cloud("gcp-on-existing", "gcp")["gcp"])]),
            "spec.clusters[0].gcp: must not be set when cloud is existing",
            ("spec.clusters[0].gcp: Invalid value", "gcp must only be set when cloud is gcp"),
        ),
        Invalid(
            "azure-on-aws", p,
            platform([{**cloud("azure-on-aws", "aws"), "azure": cloud("azure-on-aws", "azure")["azure"]}]),
            "spec.clusters[0].azure: must not be set when cloud is aws",
            ("spec.clusters[0].azure: Invalid value", "azure must only be set when cloud is azure"),
        ),
        Invalid(
            "region-missing", p,
            platform([without(cloud("region-missing", "gcp"), "region")]),
            "spec.clusters[0].region: required when cloud is gcp",
            ("spec.clusters[0].region: Invalid value", "region is required for a cloud cluster"),
        ),
        Invalid(
            "pool-on-existing", p,
            platform([existing("pool-on-existing", gpuNodePool={"minNodes": 1})]),
            "spec.clusters[0].gpuNodePool: not supported when cloud is existing",
            ("spec.clusters[0].gpuNodePool: Invalid value", "gpuNodePool is not supported when cloud is existing"),
        ),
        Invalid(
            "distribution-on-cloud", p,
            platform([cloud("distribution-on-cloud", "azure", distribution="k3s")]),
            "spec.clusters[0].distribution: only for existing clusters",
            ("spec.clusters[0].distribution: Invalid value", "distribution is only for existing clusters"),
        ),
        Invalid(
            "k3s-without-k3s", p,
            platform([existing("k3s-without-k3s", k3s={"flannelDisabled": True})]),
            "spec.clusters[0].k3s: only for distribution k3s",
            ("spec.clusters[0].k3s: Invalid value", "k3s is only for distribution k3s"),
        ),
        # Cluster access by cloud identity (kubeconfig.identity, function/access.py).
        Invalid(
            "identity-wrong-cloud", p,
            platform([cloud("identity-wrong-cloud", "aws", kubeconfig={
                "secretRef": {"name": "invalid-identity-wrong-cloud", "namespace": NAMESPACE},
                "identity": {"type": "GoogleApplicationCredentials"},
            })]),
            "spec.clusters[0].kubeconfig.identity.type: GoogleApplicationCredentials cannot reach a "
            "cluster whose cloud is aws; use AWSWebIdentityCredentials",
            ("spec.clusters[0].kubeconfig.identity.type: Invalid value",
             ("kubeconfig.identity.type must match the cluster's cloud: AWSWebIdentityCredentials for "
             "aws, GoogleApplicationCredentials for gcp, AzureWorkloadIdentityCredentials for azure; "
             "existing clusters are reached by their kubeconfig alone")),
        ),
        Invalid(
            "identity-without-secret", p,
            platform([cloud("identity-without-secret", "aws", kubeconfig={
                "providerConfigName": "invalid-identity-without-secret",
                "identity": {"type": "AWSWebIdentityCredentials"},
            })]),
            "spec.clusters[0].kubeconfig.identity: needs kubeconfig.secretRef",
            ("spec.clusters[0].kubeconfig.identity: Invalid value",
             ("kubeconfig.identity needs kubeconfig.secretRef (a kubeconfig with the cluster's endpoint "
             "and CA); ProviderConfigs named by providerConfigName carry their own identity")),
        ),
        Invalid(
            "identity-azure-no-secret", p,
            platform([cloud("identity-azure-no-secret", "azure", kubeconfig={
                "secretRef": {"name": "invalid-identity-azure-no-secret", "namespace": NAMESPACE},
                "identity": {"type": "AzureWorkloadIdentityCredentials"},
            })]),
            "spec.clusters[0].kubeconfig.identity.secretRef: required for AzureWorkloadIdentityCredentials",
            ("spec.clusters[0].kubeconfig.identity.secretRef: Invalid value",
             ("identity.secretRef is required for AzureWorkloadIdentityCredentials: a Secret key with the "
             "workload identity's clientId, tenantId, federatedTokenFile, authorityHost and serverId (JSON)")),
        ),
        Invalid(
            "identity-secret-not-azure", p,
            platform([cloud("identity-secret-not-azure", "gcp", kubeconfig={
                "secretRef": {"name": "invalid-identity-secret-not-azure", "namespace": NAMESPACE},
                "identity": {
                    "type": "GoogleApplicationCredentials",
                    "secretRef": {"name": "invalid-identity-secret-not-azure", "namespace": NAMESPACE},
                },
            })]),
            "spec.clusters[0].kubeconfig.identity.secretRef: only for AzureWorkloadIdentityCredentials",
            ("spec.clusters[0].kubeconfig.identity.secretRef: Invalid value",
             ("identity.secretRef is only for AzureWorkloadIdentityCredentials: the AWS and Google "
             "identities come from the provider pods' workload identity")),
        ),
        Invalid(
            "model-min-max", p,
            platform(
                [existing("model-min-max")],
                [{"name": "llama2", "model": "llama2", "scaling": {"minReplicas": 4, "maxReplicas": 2}}],
            ),
            "spec.models[0].scaling.minReplicas: minReplicas (4) must not exceed maxReplicas (2)",
            ("spec.models[0].scaling.minReplicas: Invalid value", "minReplicas must not exceed maxReplicas"),
        ),
        Invalid(
            "unknown-cluster", p,
            platform(
                [existing("unknown-cluster")],
                [{"name": "llama2", "model": "llama2", "clusters": ["k3s", "nope"]}],
            ),
            "spec.models[0].clusters[1]: unknown cluster 'nope'; known clusters: k3s",
            # The API server's CEL cannot name the model (fieldPath takes no index).
            ("spec.models: Invalid value", "every models[].clusters entry must name a cluster in spec.clusters"),
        ),
        Invalid(
            "fleet-min-max", f,
            fleet("fleet-min-max", scaling={"minReplicas": 4, "maxReplicas": 2}),
            "spec.scaling.maxReplicas: 2 is less than minReplicas 4",
            ("spec.scaling.minReplicas: Invalid value", "minReplicas must not exceed maxReplicas"),
        ),
        # One cluster listed twice (the identities of the one-platform-per-cluster rule).
        Invalid(
            "same-providerconfig", p,
            platform([existing("same-providerconfig"), existing("same-providerconfig", name="k3s-2")]),
            "spec.clusters[1]: cluster 'k3s-2' is the same cluster as spec.clusters[0] ('k3s'): "
            "both use the ProviderConfig invalid-same-providerconfig",
            ("spec.clusters: Invalid value", "two clusters use the same kubeconfig.providerConfigName; list each cluster once"),
        ),
        Invalid(
            "same-secret", p,
            platform([
                existing("same-secret", kubeconfig={"secretRef": {"name": "invalid-same-secret", "namespace": NAMESPACE}}),
                existing(
                    "same-secret", name="k3s-2",
                    kubeconfig={"secretRef": {"name": "invalid-same-secret", "namespace": NAMESPACE, "key": "kubeconfig"}},
                ),
            ]),
            "spec.clusters[1]: cluster 'k3s-2' is the same cluster as spec.clusters[0] ('k3s'): "
            f"both use the kubeconfig Secret {NAMESPACE}/invalid-same-secret key kubeconfig",
            ("spec.clusters: Invalid value", "two clusters use the same kubeconfig Secret key; list each cluster once"),
        ),
        Invalid(
            "same-eks", p,
            platform([
                cloud("same-eks", "aws"),
                {**cloud("same-eks", "aws", name="aws-2"),
                 "kubeconfig": {"secretRef": {"name": "invalid-same-eks-2", "namespace": NAMESPACE}}},
            ]),
            "spec.clusters[1]: cluster 'aws-2' is the same cluster as spec.clusters[0] ('aws-1'): "
            "both use the EKS cluster us-east-1/eks-same-eks",
            ("spec.clusters: Invalid value",
             "two clusters name the same EKS cluster (region and aws.clusterName); list each cluster once"),
        ),
        Invalid(
            "same-gke", p,
            platform([
                cloud("same-gke", "gcp"),
                {**cloud("same-gke", "gcp", name="gcp-2"),
                 "kubeconfig": {"secretRef": {"name": "invalid-same-gke-2", "namespace": NAMESPACE}}},
            ]),
            "spec.clusters[1]: cluster 'gcp-2' is the same cluster as spec.clusters[0] ('gcp-1'): "
            "both use the GKE cluster invalid-claims/us-central1/gke-same-gke",
            ("spec.clusters: Invalid value",
             "two clusters name the same GKE cluster (gcp.project, region and gcp.clusterName); list each cluster once"),
        ),
        Invalid(
            "same-aks", p,
            platform([
                cloud("same-aks", "azure"),
                # Azure resource ids ignore case.
                {**cloud("same-aks", "azure", name="azure-2"),
                 "kubeconfig": {"secretRef": {"name": "invalid-same-aks-2", "namespace": NAMESPACE}},
                 "azure": {"resourceGroupName": "rg-invalid",
                           "clusterId": cloud("same-aks", "azure")["azure"]["clusterId"].replace("aks-same", "AKS-same")}},
            ]),
            "spec.clusters[1]: cluster 'azure-2' is the same cluster as spec.clusters[0] ('azure-1'): "
            "both use the AKS cluster /subscriptions/",
            ("spec.clusters: Invalid value", "two clusters name the same AKS cluster (azure.clusterId); list each cluster once"),
        ),
        # A fleet's cache without what its provider reads, or with a bucket it refuses.
        Invalid(
            "cache-s3-no-region", f,
            fleet("cache-s3-no-region", cache={"provider": "s3", "bucket": "models"}),
            "spec.cache.region: required when provider is s3",
            ("spec.cache.region: Invalid value", "region is required when provider is s3"),
        ),
        Invalid(
            "cache-gcs-no-account", f,
            fleet("cache-gcs-no-account", cache={"provider": "gcs", "bucket": "models"}),
            "spec.cache.gcpServiceAccount: required when provider is gcs",
            ("spec.cache.gcpServiceAccount: Invalid value", "gcpServiceAccount is required when provider is gcs"),
        ),
        Invalid(
            "cache-azure-no-account", f,
            fleet("cache-azure-no-account", cache={"provider": "azureblob", "bucket": "models", "azureClientId": "x"}),
            "spec.cache.account: required when provider is azureblob",
            ("spec.cache.account: Invalid value", "account is required when provider is azureblob"),
        ),
        Invalid(
            "cache-azure-no-client", f,
            fleet("cache-azure-no-client", cache={"provider": "azureblob", "bucket": "models", "account": "models"}),
            "spec.cache.azureClientId: required when provider is azureblob",
            ("spec.cache.azureClientId: Invalid value", "azureClientId is required when provider is azureblob"),
        ),
        Invalid(
            "cache-bucket-ip", f,
            fleet("cache-bucket-ip", cache={"provider": "minio", "bucket": "10.0.0.1"}),
            "spec.cache.bucket: '10.0.0.1' is formatted as an IP address",
            ("spec.cache.bucket: Invalid value", "a bucket name must not be an IP address"),
        ),
        Invalid(
            "cache-azure-container", f,
            fleet(
                "cache-azure-container",
                cache={"provider": "azureblob", "bucket": "my.models", "account": "models", "azureClientId": "x"},
            ),
            "spec.cache.bucket: 'my.models' is not an Azure blob container name",
            ("spec.cache.bucket: Invalid value",
             "an Azure blob container name has only lowercase letters, digits and single hyphens between them"),
        ),
        # Exposure: callers that are networks, a TLS Secret name that is a name.
        Invalid(
            "exposure-host-bits", f,
            fleet(
                "exposure-host-bits", ingress="contour",
                exposure={"host": "llama.example.com", "tlsSecretName": "llama-tls", "allowedSourceRanges": ["10.0.0.1/8"]},
            ),
            "spec.exposure.allowedSourceRanges[0]: '10.0.0.1/8' has host bits set; use its network 10.0.0.0/8",
            ("spec.exposure.allowedSourceRanges: Invalid value",
             "allowedSourceRanges must be IP addresses or CIDR blocks without host bits (10.0.0.0/8, not 10.0.0.1/8)"),
        ),
        Invalid(
            "exposure-secret-name", f,
            fleet(
                "exposure-secret-name", ingress="contour",
                exposure={"host": "llama.example.com", "tlsSecretName": "certs/" + "a" * 254,
                          "allowedSourceRanges": ["10.0.0.0/8"]},
            ),
            "spec.exposure.tlsSecretName: the Secret name is 254 characters",
            ("spec.exposure.tlsSecretName: Invalid value", "the Secret name in tlsSecretName must be at most 253 characters"),
        ),
        Invalid(
            "trigger-setting-name", f,
            fleet(
                "trigger-setting-name",
                scaling={"metrics": [{"type": "cron", "metadata": {"time zone": "UTC"}}]},
            ),
            "spec.scaling.metrics[0].metadata: setting name 'time zone' is not printable ASCII without spaces",
            ("spec.scaling.metrics[0].metadata: Invalid value",
             "trigger setting names must be printable ASCII without spaces, at most 63 characters"),
        ),
        # --- OpenAPI: enums, patterns, list keys, types, required fields ------------
        Invalid(
            "unknown-cloud", p,
            platform([{**existing("unknown-cloud"), "cloud": "mars"}]),
            "spec.clusters[0].cloud: 'mars' is not one of",
            ('spec.clusters[0].cloud: Unsupported value: "mars"',),
        ),
        Invalid(
            "name-not-dns", p,
            platform([{**existing("name-not-dns"), "name": "K3S_1"}]),
            "spec.clusters[0].name: 'K3S_1' must be a DNS-1123 label",
            ('spec.clusters[0].name: Invalid value: "K3S_1"', "should match"),
        ),
        Invalid(
            "duplicate-cluster", p,
            platform([existing("duplicate-cluster"), cloud("duplicate-cluster", "aws", name="k3s")]),
            "spec.clusters[1].name: duplicate cluster name 'k3s'",
            ("spec.clusters[1]: Duplicate value",),
        ),
        Invalid(
            "duplicate-model", p,
            platform(
                [existing("duplicate-model")],
                [{"name": "m", "model": "llama2"}, {"name": "m", "model": "mistral"}],
            ),
            "spec.models[1].name: duplicate model name 'm'",
            ("spec.models[1]: Duplicate value",),
        ),
        Invalid(
            "replicas-not-int", p,
            platform([existing("replicas-not-int")], [{"name": "llama2", "model": "llama2", "replicas": "three"}]),
            "spec.models[0].replicas: ",
            ("spec.models[0].replicas: Invalid value", "must be of type integer"),
        ),
        Invalid(
            "storage-zero", p,
            platform([existing("storage-zero")], [{"name": "llama2", "model": "llama2", "storage": {"size": "0"}}]),
            "spec.models[0].storage.size: '0' must be a Kubernetes quantity greater than zero",
            ('spec.models[0].storage.size: Invalid value: "0"', "should match"),
        ),
        Invalid(
            "exposure-not-an-address", f,
            fleet(
                "exposure-not-an-address", ingress="contour",
                exposure={"host": "llama.example.com", "tlsSecretName": "llama-tls",
                          "allowedSourceRanges": ["999.999.999.999/99"]},
            ),
            "spec.exposure.allowedSourceRanges[0]: '999.999.999.999/99' must be an IPv4 or IPv6 address",
            ('spec.exposure.allowedSourceRanges[0]: Invalid value: "999.999.999.999/99"', "should match"),
        ),
        Invalid(
            "exposure-host-label", f,
            fleet(
                "exposure-host-label", ingress="contour",
                exposure={"host": "a" * 64 + ".example.com", "tlsSecretName": "llama-tls",
                          "allowedSourceRanges": ["10.0.0.0/8"]},
            ),
            "spec.exposure.host: ",
            ("spec.exposure.host: Invalid value", "should match"),
        ),
        Invalid(
            "cache-bucket-dots", f,
            fleet("cache-bucket-dots", cache={"provider": "minio", "bucket": "a..b"}),
            "spec.cache.bucket: 'a..b' must be a bucket name",
            ('spec.cache.bucket: Invalid value: "a..b"', "should match"),
        ),
        Invalid(
            "trigger-type-control", f,
            fleet("trigger-type-control", scaling={"metrics": [{"type": "cron\u001b[2J", "metadata": {}}]}),
            "spec.scaling.metrics[0].type: ",
            ("spec.scaling.metrics[0].type: Invalid value", "should match"),
        ),
        Invalid(
            "fleet-no-target", f,
            without(fleet("fleet-no-target"), "target"),
            "spec.target: required field is missing",
            ("spec.target: Required value",),
        ),
        # --- what only the function can judge: the API server accepts these --------
        Invalid(
            "storage-components", p,
            platform([existing("storage-components")], components={"objectStorage": "rook-ceph", "blockStorage": "longhorn"}),
            "spec.components.objectStorage: rook-ceph object storage needs blockStorage rook-ceph",
        ),
        Invalid(
            "minio-no-volumes", p,
            platform([existing("minio-no-volumes")], components={"objectStorage": "minio", "blockStorage": "none"}),
            "spec.components.objectStorage: minio needs a block storage class",
        ),
        Invalid(
            "knative-no-network", p,
            platform(
                [existing("knative-no-network")],
                components={"serving": "knative", "ingress": "none", "mesh": "linkerd"},
            ),
            "spec.components.serving: knative needs a networking layer",
        ),
        Invalid(
            "cilium-on-flannel", p,
            platform([existing("cilium-on-flannel", distribution="k3s")], components={"cni": "cilium"}),
            "spec.clusters[0].k3s.flannelDisabled: cni cilium on K3s needs flannel off",
        ),
        Invalid(
            "storage-policy", p,
            platform(
                [existing("storage-policy")],
                [{"name": "llama2", "model": "llama2", "storage": {"size": "200Gi"}}],
                components={"policies": "enforce"},
            ),
            "spec.models[0].storage.size: 200Gi is more than policy.maxStorageRequest 100Gi",
        ),
        Invalid(
            "scale-to-zero", p,
            platform(
                [existing("scale-to-zero")],
                [{"name": "llama2", "model": "llama2", "scaling": {"minReplicas": 0, "maxReplicas": 2}}],
            ),
            "spec.models[0].scaling.minReplicas: 0 would scale the model to zero",
        ),
        Invalid(
            "does-not-fit", p,
            platform(
                [cloud("does-not-fit", "aws", gpuNodePool={"instanceType": "g6.2xlarge"})],
                [{"name": "llama2", "model": "llama2", "resources": {"memory": "200Gi"}}],
            ),
            "spec.models[0].resources.memory: 200Gi does not fit one g6.2xlarge node of cluster aws-1",
        ),
        Invalid(
            "fleet-exposure", f,
            fleet(
                "fleet-exposure",
                exposure={"host": "llama.example.com", "tlsSecretName": "llama-tls", "allowedSourceRanges": ["10.0.0.0/8"]},
            ),
            "spec.exposure: public exposure is served by Contour",
        ),
        Invalid(
            "fleet-trigger-twice", f,
            fleet(
                "fleet-trigger-twice",
                scaling={"metrics": [
                    {"type": "cron", "name": "work-hours", "metadata": {"timezone": "UTC"}},
                    {"type": "cron", "name": "work-hours", "metadata": {"timezone": "UTC"}},
                ]},
            ),
            "spec.scaling.metrics[1].name: trigger name work-hours is already used",
        ),
        Invalid(
            "gw-team-model", p,
            platform(
                [existing("gw-team-model")],
                gateway={"teams": [{"name": "a", "apiKeySecretRef": {"name": "keys"}, "models": ["gpt-4"]}]},
            ),
            "spec.gateway.teams[0].models[0]: model 'gpt-4' is not served by this claim",
        ),
        Invalid(
            "gw-client-twice", p,
            platform(
                [existing("gw-client-twice")],
                gateway={"teams": [
                    {"name": "a", "apiKeySecretRef": {"name": "keys", "key": "k"}},
                    {"name": "b", "apiKeySecretRef": {"name": "other", "key": "k"}},
                ]},
            ),
            "spec.gateway.teams[1].apiKeySecretRef.key: client ID 'k' is also spec.gateway.teams[0]'s",
        ),
        Invalid(
            "gw-teams-off", p,
            platform(
                [existing("gw-teams-off")],
                gateway={"enabled": False, "teams": [{"name": "a", "apiKeySecretRef": {"name": "keys"}}]},
            ),
            "spec.gateway.teams: teams need the gateway",
        ),
        Invalid(
            "gw-jwt-and-key", p,
            platform(
                [existing("gw-jwt-and-key")],
                gateway={
                    "jwt": {"issuer": "https://login.example.com", "jwksUri": "https://login.example.com/keys"},
                    "teams": [{"name": "a", "apiKeySecretRef": {"name": "keys"}}],
                },
            ),
            "spec.gateway.teams[0].apiKeySecretRef: with spec.gateway.jwt a team is named by its token's teamClaim",
        ),
        Invalid(
            "gw-quota-model", p,
            platform(
                [existing("gw-quota-model")],
                gateway={"teams": [{
                    "name": "a", "apiKeySecretRef": {"name": "keys"},
                    "quota": {"tokens": 100, "models": [{"name": "gpt-4", "tokens": 10}]},
                }]},
            ),
            "spec.gateway.teams[0].quota.models[0].name: model 'gpt-4' is not one the team may call",
        ),
    ]


CASES: list[Invalid] = _cases()
REFUSED_BY_API = [c for c in CASES if c.api]
REFUSED_BY_FUNCTION = [c for c in CASES if not c.api]
