"""Cloud builders: resource sets, security defaults field by field, names, determinism."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from function import clouds, naming
from function.clouds import aws, azure, gcp
from function.clouds.common import AUTOSCALED_MANAGEMENT_POLICIES
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.errors import ClaimError
from tests.factories import cluster_composed, cluster_context

CLOUDS = ("aws", "gcp", "azure")
PROFILES = ("production", "development")

VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    *[(cloud, profile, {}) for cloud in CLOUDS for profile in PROFILES],
    *[(cloud, "production", {"gpuNodePool": {"spot": True}}) for cloud in CLOUDS],
    *[(cloud, "development", {"bucket": {"versioning": False}}) for cloud in CLOUDS],
]


def variant_id(variant: tuple[str, str, dict[str, Any]]) -> str:
    cloud, profile, extra = variant
    return "-".join([cloud, profile, *sorted(extra)])


def by_key(resources: list[Composed]) -> dict[str, Composed]:
    return {r.key: r for r in resources}


def fp(resource: Composed) -> dict[str, Any]:
    for_provider: dict[str, Any] = resource.body["spec"]["forProvider"]
    return for_provider


def external_name(resource: Composed) -> str:
    return str(resource.body["metadata"]["annotations"][naming.EXTERNAL_NAME])


def build(cloud: str, profile: str = "production", **extra: Any) -> dict[str, Composed]:
    """The cluster's cloud resources, then its model cache's (as the planner composes them)."""
    return by_key(cluster_composed(cluster_context(cloud, profile, **extra), {}))


def selectors(value: Any) -> Iterator[dict[str, Any]]:
    """Every ``*Selector`` object anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("Selector") and isinstance(item, dict):
                yield item
            else:
                yield from selectors(item)
    elif isinstance(value, list):
        for item in value:
            yield from selectors(item)


def with_names(ctx: ClusterContext, platform: str, cluster: str) -> ClusterContext:
    """``ctx`` with another platform (XR) name and cluster name."""
    return dataclasses.replace(
        ctx,
        platform=dataclasses.replace(ctx.platform, name=platform),
        spec=ctx.spec.model_copy(update={"name": cluster}),
    )


# --- dispatch and resource sets ---------------------------------------------------------


def test_existing_cluster_has_no_cloud_resources() -> None:
    assert clouds.build(cluster_context("existing")) == []


def test_aws_resource_keys() -> None:
    assert list(build("aws")) == [
        "aws-1-node-role",
        "aws-1-node-role-worker",
        "aws-1-node-role-cni",
        "aws-1-node-role-ecr",
        "aws-1-nodepool",
        "aws-1-pod-identity-agent",
        "aws-1-bucket",
        "aws-1-bucket-versioning",
        "aws-1-bucket-encryption",
        "aws-1-bucket-public-access-block",
        "aws-1-bucket-ownership",
        "aws-1-ebs-csi-role",
        "aws-1-ebs-csi-policy",
        "aws-1-ebs-csi-identity",
        "aws-1-ebs-csi-driver",
        "aws-1-cache-role",
        "aws-1-cache-policy",
    ]


def test_gcp_resource_keys() -> None:
    assert list(build("gcp")) == [
        "gcp-1-node-sa",
        "gcp-1-node-sa-default-node",
        "gcp-1-node-sa-artifact-reader",
        "gcp-1-nodepool",
        "gcp-1-gke-cluster",
        "gcp-1-bucket",
        "gcp-1-cache-sa",
        "gcp-1-cache-bucket-access",
    ]


def test_azure_resource_keys() -> None:
    assert list(build("azure")) == [
        "azure-1-nodepool",
        "azure-1-storage-account",
        "azure-1-container",
        "azure-1-aks-cluster",
        "azure-1-cache-identity",
        "azure-1-cache-access",
    ]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_no_bucket_when_disabled(cloud: str) -> None:
    keys = build(cloud, bucket={"enabled": False})
    assert not [k for k in keys if "bucket" in k or "storage" in k or "container" in k]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_no_bucket_unless_object_storage_is_cloud(cloud: str) -> None:
    ctx = cluster_context(cloud, components={"objectStorage": "minio"})
    keys = [r.key for r in clouds.build(ctx)]
    assert keys == [r.key for r in clouds.build(cluster_context(cloud, bucket={"enabled": False}))]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_bucket_resources_need_no_gates(cloud: str) -> None:
    for resource in build(cloud).values():
        if resource.key.endswith("nodepool") or "cache" in resource.key or "-sa-" in resource.key:
            continue  # IAM grants wait for what the provider reports (test_cache)
        if "ebs-csi-identity" in resource.key or "ebs-csi-driver" in resource.key:
            continue  # after the Pod Identity agent, then the association (test_issue10)
        assert resource.gates == ()


# --- rules every resource follows ------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_every_resource_is_a_classic_cluster_scoped_kind(
    variant: tuple[str, str, dict[str, Any]],
) -> None:
    cloud, profile, extra = variant
    for resource in build(cloud, profile, **extra).values():
        group = resource.api_version.split("/")[0]
        assert group.endswith(f".{cloud}.upbound.io")
        assert f".{cloud}.m." not in group
        assert "namespace" not in resource.body["metadata"]


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_no_metadata_name(variant: tuple[str, str, dict[str, Any]]) -> None:
    cloud, profile, extra = variant
    for resource in build(cloud, profile, **extra).values():
        assert "name" not in resource.body["metadata"]
        assert "generateName" not in resource.body["metadata"]


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_labels_and_provider_config_on_every_resource(
    variant: tuple[str, str, dict[str, Any]],
) -> None:
    cloud, profile, extra = variant
    ctx = cluster_context(cloud, profile, **extra)
    for resource in build(cloud, profile, **extra).values():
        labels = resource.body["metadata"]["labels"]
        assert labels[naming.LABEL_CLUSTER] == ctx.name
        assert labels[naming.LABEL_PLATFORM] == ctx.platform.name
        assert labels == ctx.labels(labels[naming.LABEL_ROLE])
        assert resource.body["spec"]["providerConfigRef"] == {"name": "default"}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_provider_config_name_comes_from_the_claim(cloud: str) -> None:
    for resource in build(cloud, providerConfigName=f"{cloud}-team-a").values():
        assert resource.body["spec"]["providerConfigRef"] == {"name": f"{cloud}-team-a"}


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_roles_are_unique(variant: tuple[str, str, dict[str, Any]]) -> None:
    cloud, profile, extra = variant
    roles = [
        r.body["metadata"]["labels"][naming.LABEL_ROLE]
        for r in build(cloud, profile, **extra).values()
    ]
    assert len(roles) == len(set(roles))


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_every_selector_matches_exactly_one_composed_resource(
    variant: tuple[str, str, dict[str, Any]],
) -> None:
    cloud, profile, extra = variant
    resources = list(build(cloud, profile, **extra).values())
    found = 0
    for resource in resources:
        for selector in selectors(resource.body["spec"]):
            found += 1
            assert selector["matchControllerRef"] is True
            targets = [
                r for r in resources if r.body["metadata"]["labels"] == selector["matchLabels"]
            ]
            assert len(targets) == 1
            assert targets[0] is not resource
    assert found > 0


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_deterministic(variant: tuple[str, str, dict[str, Any]]) -> None:
    cloud, profile, extra = variant
    first = clouds.build(cluster_context(cloud, profile, **extra))
    second = clouds.build(cluster_context(cloud, profile, **extra))
    assert first == second
    assert json.dumps([r.body for r in first]) == json.dumps([r.body for r in second])


def test_builders_do_not_share_mutable_state() -> None:
    first = clouds.build(cluster_context("azure", gpuNodePool={"spot": True}))
    fp(first[0])["nodeLabels"]["x"] = "y"
    fp(first[0])["nodeTaints"].append("x")
    again = clouds.build(cluster_context("azure"))
    assert "x" not in fp(again[0])["nodeLabels"]
    assert "x" not in fp(again[0])["nodeTaints"]


# --- AWS --------------------------------------------------------------------------------


def test_aws_node_role_trusts_ec2_only() -> None:
    role = build("aws")["aws-1-node-role"]
    assert role.api_version == "iam.aws.upbound.io/v1beta1"
    assert role.kind == "Role"
    policy_text = fp(role)["assumeRolePolicy"]
    policy = json.loads(policy_text)
    assert policy_text == json.dumps(policy, sort_keys=True, separators=(",", ":"))
    assert policy["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
        }
    ]
    assert fp(role)["tags"]["ollama-cluster"] == "aws-1"


def test_aws_node_role_policy_attachments() -> None:
    ctx = cluster_context("aws")
    resources = by_key(clouds.build(ctx))
    arns = {}
    for short in ("worker", "cni", "ecr"):
        attachment = resources[f"aws-1-node-role-{short}"]
        assert attachment.kind == "RolePolicyAttachment"
        assert fp(attachment)["roleSelector"] == ctx.selector("node-role")
        arns[short] = fp(attachment)["policyArn"]
    assert arns == {
        "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "cni": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        "ecr": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    }


@pytest.mark.parametrize(
    ("region", "partition"),
    [("us-east-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_aws_policy_arns_follow_the_partition(region: str, partition: str) -> None:
    worker = build("aws", region=region)["aws-1-node-role-worker"]
    assert fp(worker)["policyArn"].startswith(f"arn:{partition}:iam::aws:policy/")


def test_aws_node_group() -> None:
    ctx = cluster_context("aws")
    group = by_key(clouds.build(ctx))["aws-1-nodepool"]
    assert group.api_version == "eks.aws.upbound.io/v1beta2"
    assert group.kind == "NodeGroup"
    spec = fp(group)
    assert spec["region"] == "us-east-1"
    assert spec["clusterName"] == "eks-prod"
    assert spec["subnetIds"] == ["subnet-0a1b2c3d4e5f60718"]
    assert spec["nodeRoleArnSelector"] == ctx.selector("node-role")
    assert spec["instanceTypes"] == ["g6.xlarge"]
    assert spec["amiType"] == "AL2023_x86_64_NVIDIA"
    assert spec["capacityType"] == "ON_DEMAND"
    assert spec["diskSize"] == 200
    assert spec["labels"] == {naming.GPU_LABEL: "true", "nvidia.com/gpu.present": "true"}
    assert spec["taint"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert spec["tags"] == {**ctx.platform.tags(), "ollama-cluster": "aws-1"}
    assert external_name(group) == naming.node_pool_name(ctx.platform.name, ctx.name)


def test_aws_node_group_waits_for_its_policies() -> None:
    group = build("aws")["aws-1-nodepool"]
    assert group.gates == (
        Gate("aws-1-node-role-worker", Need.READY),
        Gate("aws-1-node-role-cni", Need.READY),
        Gate("aws-1-node-role-ecr", Need.READY),
    )


@pytest.mark.parametrize(
    ("profile", "min_nodes", "max_nodes"), [("production", 1, 10), ("development", 0, 2)]
)
def test_aws_desired_size_only_in_init_provider(
    profile: str, min_nodes: int, max_nodes: int
) -> None:
    group = build("aws", profile)["aws-1-nodepool"]
    assert fp(group)["scalingConfig"] == {"minSize": min_nodes, "maxSize": max_nodes}
    assert group.body["spec"]["initProvider"] == {"scalingConfig": {"desiredSize": min_nodes}}
    policies = group.body["spec"]["managementPolicies"]
    assert policies == ["Observe", "Create", "Update", "Delete"]
    assert "LateInitialize" not in policies
    assert "*" not in policies


def test_aws_spot_node_group() -> None:
    spec = fp(build("aws", gpuNodePool={"spot": True})["aws-1-nodepool"])
    assert spec["capacityType"] == "SPOT"


def test_aws_node_pool_settings_from_claim() -> None:
    pool = {"instanceType": "g5.2xlarge", "minNodes": 2, "maxNodes": 5, "diskSizeGb": 500}
    group = build("aws", gpuNodePool=pool)["aws-1-nodepool"]
    assert fp(group)["instanceTypes"] == ["g5.2xlarge"]
    assert fp(group)["diskSize"] == 500
    assert fp(group)["scalingConfig"] == {"minSize": 2, "maxSize": 5}
    assert group.body["spec"]["initProvider"]["scalingConfig"]["desiredSize"] == 2


def test_aws_bucket() -> None:
    ctx = cluster_context("aws")
    bucket = by_key(clouds.build(ctx))["aws-1-bucket"]
    assert bucket.api_version == "s3.aws.upbound.io/v1beta2"
    assert fp(bucket) == {
        "region": "us-east-1",
        "forceDestroy": False,
        "tags": {**ctx.platform.tags(), "ollama-cluster": "aws-1"},
    }
    assert external_name(bucket) == naming.bucket_name(ctx.platform.uid, ctx.platform.name, "aws-1")


def test_aws_bucket_settings_select_the_bucket_in_its_region() -> None:
    ctx = cluster_context("aws")
    resources = by_key(clouds.build(ctx))
    for suffix in ("versioning", "encryption", "public-access-block", "ownership"):
        spec = fp(resources[f"aws-1-bucket-{suffix}"])
        assert spec["bucketSelector"] == ctx.selector("bucket")
        assert spec["region"] == "us-east-1"


@pytest.mark.parametrize(("versioning", "status"), [(True, "Enabled"), (False, "Suspended")])
def test_aws_bucket_versioning(versioning: bool, status: str) -> None:
    resource = build("aws", bucket={"versioning": versioning})["aws-1-bucket-versioning"]
    assert resource.kind == "BucketVersioning"
    assert fp(resource)["versioningConfiguration"] == {"status": status}


def test_aws_bucket_encryption_uses_kms_with_bucket_key() -> None:
    resource = build("aws")["aws-1-bucket-encryption"]
    assert resource.kind == "BucketServerSideEncryptionConfiguration"
    assert fp(resource)["rule"] == [
        {
            "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"},
            "bucketKeyEnabled": True,
        }
    ]


def test_aws_bucket_blocks_all_public_access() -> None:
    resource = build("aws")["aws-1-bucket-public-access-block"]
    assert resource.api_version == "s3.aws.upbound.io/v1beta1"
    assert resource.kind == "BucketPublicAccessBlock"
    spec = fp(resource)
    for field in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert spec[field] is True


def test_aws_bucket_owner_enforced() -> None:
    resource = build("aws")["aws-1-bucket-ownership"]
    assert resource.kind == "BucketOwnershipControls"
    assert fp(resource)["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


# --- GCP --------------------------------------------------------------------------------


def test_gcp_service_account() -> None:
    ctx = cluster_context("gcp")
    account = by_key(clouds.build(ctx))["gcp-1-node-sa"]
    assert account.api_version == "cloudplatform.gcp.upbound.io/v1beta1"
    assert account.kind == "ServiceAccount"
    assert fp(account)["project"] == "my-project"
    assert fp(account)["displayName"]
    assert external_name(account) == naming.gcp_service_account_id(
        ctx.platform.uid, ctx.platform.name, "gcp-1"
    )


def test_gcp_node_pool() -> None:
    ctx = cluster_context("gcp")
    pool = by_key(clouds.build(ctx))["gcp-1-nodepool"]
    assert pool.api_version == "container.gcp.upbound.io/v1beta2"
    assert pool.kind == "NodePool"
    # with a bucket the pool waits for the observed cluster (its Workload Identity pool)
    assert [(g.key, g.need.value) for g in pool.gates] == [("gcp-1-gke-cluster", "ready")]
    spec = fp(pool)
    assert spec["project"] == "my-project"
    assert spec["location"] == "us-central1"
    assert spec["cluster"] == "gke-prod"
    assert spec["management"] == {"autoRepair": True, "autoUpgrade": True}
    assert spec["autoscaling"]["totalMinNodeCount"] == 1
    assert spec["autoscaling"]["totalMaxNodeCount"] == 10
    assert "nodeCount" not in spec
    assert "initialNodeCount" not in spec
    node = spec["nodeConfig"]
    assert node["machineType"] == "g2-standard-8"
    assert node["diskSizeGb"] == 200
    assert node["spot"] is False
    assert node["guestAccelerator"] == [
        {
            "type": "nvidia-l4",
            "count": 1,
            "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"},
        }
    ]
    assert node["serviceAccountSelector"] == ctx.selector("node-sa")
    assert node["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert node["labels"] == {naming.GPU_LABEL: "true", "nvidia.com/gpu.present": "true"}
    assert node["taint"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert node["shieldedInstanceConfig"] == {
        "enableSecureBoot": True,
        "enableIntegrityMonitoring": True,
    }
    assert node["metadata"] == {"disable-legacy-endpoints": "true"}
    assert pool.body["spec"]["managementPolicies"] == AUTOSCALED_MANAGEMENT_POLICIES
    name = external_name(pool)
    assert name == naming.node_pool_name(ctx.platform.name, "gcp-1", max_length=40)
    assert re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", name)


@pytest.mark.parametrize(
    ("location", "min_nodes", "initial"),
    [("us-central1", 1, 1), ("us-central1", 4, 2), ("us-central1", 0, 0), ("us-central1-a", 4, 4)],
)
def test_gcp_initial_node_count_only_in_init_provider(
    location: str, min_nodes: int, initial: int
) -> None:
    pool = build("gcp", region=location, gpuNodePool={"minNodes": min_nodes, "maxNodes": 10})
    spec = pool["gcp-1-nodepool"].body["spec"]
    assert spec["initProvider"] == {"initialNodeCount": initial}
    assert spec["forProvider"]["autoscaling"]["totalMinNodeCount"] == min_nodes
    assert "LateInitialize" not in spec["managementPolicies"]


def test_gcp_spot_node_pool() -> None:
    pool = build("gcp", gpuNodePool={"spot": True})["gcp-1-nodepool"]
    assert fp(pool)["nodeConfig"]["spot"] is True


@pytest.mark.parametrize("versioning", [True, False])
def test_gcp_bucket(versioning: bool) -> None:
    ctx = cluster_context("gcp", bucket={"versioning": versioning})
    bucket = by_key(clouds.build(ctx))["gcp-1-bucket"]
    assert bucket.api_version == "storage.gcp.upbound.io/v1beta2"
    spec = fp(bucket)
    assert spec["project"] == "my-project"
    assert spec["location"] == "US-CENTRAL1"
    assert spec["uniformBucketLevelAccess"] is True
    assert spec["publicAccessPrevention"] == "enforced"
    assert spec["versioning"] == {"enabled": versioning}
    assert spec["forceDestroy"] is False
    assert external_name(bucket) == naming.bucket_name(ctx.platform.uid, ctx.platform.name, "gcp-1")


def test_gcp_bucket_in_the_region_of_a_zonal_cluster() -> None:
    bucket = build("gcp", region="europe-west4-b")["gcp-1-bucket"]
    assert fp(bucket)["location"] == "EUROPE-WEST4"


def test_gcp_labels_follow_gcp_rules() -> None:
    ctx = cluster_context("gcp")
    ctx = dataclasses.replace(
        ctx, platform=dataclasses.replace(ctx.platform, name="Team.A", claim_namespace="NS.x")
    )
    for resource in gcp.build(ctx):
        labels = fp(resource).get("labels") if resource.kind == "Bucket" else None
        labels = labels or fp(resource).get("nodeConfig", {}).get("resourceLabels")
        if labels is None:
            continue
        for key, value in labels.items():
            assert re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key)
            assert re.fullmatch(r"[a-z0-9_-]{0,63}", value)
        assert labels["ollama-platform"] == "team-a"


def test_gcp_bucket_name_never_contains_google() -> None:
    ctx = with_names(cluster_context("gcp"), "google-models", "google-1")
    name = external_name(by_key(gcp.build(ctx))["google-1-bucket"])
    assert "google" not in name
    assert name.endswith(naming.bucket_name(ctx.platform.uid, ctx.platform.name, ctx.name)[-10:])


# --- Azure ------------------------------------------------------------------------------


def test_azure_node_pool() -> None:
    ctx = cluster_context("azure")
    pool = by_key(clouds.build(ctx))["azure-1-nodepool"]
    assert pool.api_version == "containerservice.azure.upbound.io/v1beta2"
    assert pool.kind == "KubernetesClusterNodePool"
    assert pool.gates == ()
    spec = fp(pool)
    assert spec["kubernetesClusterId"] == ctx.spec.azure.cluster_id  # type: ignore[union-attr]
    assert spec["vmSize"] == "Standard_NC8as_T4_v3"
    assert spec["gpuDriver"] == "Install"
    assert spec["mode"] == "User"
    assert spec["osDiskSizeGb"] == 200
    assert spec["autoScalingEnabled"] is True
    assert spec["minCount"] == 1
    assert spec["maxCount"] == 10
    assert "nodeCount" not in spec
    assert spec["nodeTaints"] == ["nvidia.com/gpu=true:NoSchedule"]
    assert spec["nodeLabels"] == {naming.GPU_LABEL: "true", "nvidia.com/gpu.present": "true"}
    assert spec["nodePublicIpEnabled"] is False
    assert "priority" not in spec
    assert pool.body["spec"]["initProvider"] == {"nodeCount": 1}
    assert pool.body["spec"]["managementPolicies"] == AUTOSCALED_MANAGEMENT_POLICIES
    assert external_name(pool) == naming.azure_node_pool_name(
        ctx.platform.uid, ctx.platform.name, "azure-1"
    )


def test_azure_spot_node_pool() -> None:
    spec = fp(build("azure", gpuNodePool={"spot": True})["azure-1-nodepool"])
    assert spec["priority"] == "Spot"
    assert spec["evictionPolicy"] == "Delete"
    assert spec["spotMaxPrice"] == -1
    assert spec["nodeTaints"] == [
        "nvidia.com/gpu=true:NoSchedule",
        "kubernetes.azure.com/scalesetpriority=spot:NoSchedule",
    ]
    assert spec["nodeLabels"]["kubernetes.azure.com/scalesetpriority"] == "spot"


def test_azure_rotation_name_is_a_valid_other_pool_name() -> None:
    pool = build("azure")["azure-1-nodepool"]
    rotation = fp(pool)["temporaryNameForRotation"]
    assert re.fullmatch(r"[a-z][a-z0-9]{0,11}", rotation)
    assert rotation != external_name(pool)


@pytest.mark.parametrize(
    ("profile", "replication"), [("production", "ZRS"), ("development", "LRS")]
)
def test_azure_storage_account(profile: str, replication: str) -> None:
    ctx = cluster_context("azure", profile)
    account = by_key(clouds.build(ctx))["azure-1-storage-account"]
    assert account.api_version == "storage.azure.upbound.io/v1beta2"
    assert account.kind == "Account"
    spec = fp(account)
    assert spec["resourceGroupName"] == "rg-ollama"
    assert spec["location"] == "eastus"
    assert spec["accountTier"] == "Standard"
    assert spec["accountKind"] == "StorageV2"
    assert spec["accountReplicationType"] == replication
    assert spec["minTlsVersion"] == "TLS1_2"
    assert spec["httpsTrafficOnlyEnabled"] is True
    assert spec["allowNestedItemsToBePublic"] is False
    assert spec["crossTenantReplicationEnabled"] is False
    assert spec["blobProperties"] == {"versioningEnabled": True}
    assert spec["tags"]["ollama-cluster"] == "azure-1"
    assert external_name(account) == naming.azure_storage_account_name(
        ctx.platform.uid, ctx.platform.name, "azure-1"
    )


def test_azure_storage_account_versioning_off() -> None:
    account = build("azure", bucket={"versioning": False})["azure-1-storage-account"]
    assert fp(account)["blobProperties"] == {"versioningEnabled": False}


def test_azure_container_is_private_in_the_composed_account() -> None:
    ctx = cluster_context("azure")
    container = by_key(clouds.build(ctx))["azure-1-container"]
    assert container.api_version == "storage.azure.upbound.io/v1beta1"
    assert container.kind == "Container"
    assert fp(container) == {
        "containerAccessType": "private",
        "storageAccountIdSelector": ctx.selector("storage-account"),
    }
    assert external_name(container) == "models"


# --- names ------------------------------------------------------------------------------

NAME_CASES = [
    ("demo-abc12", "c1"),
    ("a" * 63, "b" * 20),
    ("x", "cluster-with-20-char"),
    ("platform.with.dots", "0-starts-with-digit"),
]


@pytest.mark.parametrize(("platform", "cluster"), NAME_CASES)
def test_aws_names_within_limits(platform: str, cluster: str) -> None:
    resources = by_key(aws.build(with_names(cluster_context("aws"), platform, cluster)))
    group = external_name(resources[f"{cluster}-nodepool"])
    assert len(group) <= 63
    assert re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9_-]*", group)
    bucket = external_name(resources[f"{cluster}-bucket"])
    assert 3 <= len(bucket) <= 63
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", bucket)


@pytest.mark.parametrize(("platform", "cluster"), NAME_CASES)
def test_gcp_names_within_limits(platform: str, cluster: str) -> None:
    resources = by_key(gcp.build(with_names(cluster_context("gcp"), platform, cluster)))
    account = external_name(resources[f"{cluster}-node-sa"])
    assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account)
    pool = external_name(resources[f"{cluster}-nodepool"])
    assert re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", pool)
    bucket = external_name(resources[f"{cluster}-bucket"])
    assert 3 <= len(bucket) <= 63
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*[a-z0-9]", bucket)
    assert not bucket.startswith("goog")


@pytest.mark.parametrize(("platform", "cluster"), NAME_CASES)
def test_azure_names_within_limits(platform: str, cluster: str) -> None:
    resources = by_key(azure.build(with_names(cluster_context("azure"), platform, cluster)))
    pool = resources[f"{cluster}-nodepool"]
    assert re.fullmatch(r"[a-z][a-z0-9]{0,11}", external_name(pool))
    assert re.fullmatch(r"[a-z][a-z0-9]{0,11}", fp(pool)["temporaryNameForRotation"])
    account = external_name(resources[f"{cluster}-storage-account"])
    assert re.fullmatch(r"[a-z0-9]{3,24}", account)
    container = external_name(resources[f"{cluster}-container"])
    assert re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", container)


def test_names_differ_between_clusters_of_one_platform() -> None:
    one = by_key(clouds.build(cluster_context("aws")))
    other = by_key(aws.build(with_names(cluster_context("aws"), "demo-abc12", "aws-2")))
    assert external_name(one["aws-1-bucket"]) != external_name(other["aws-2-bucket"])
    assert external_name(one["aws-1-nodepool"]) != external_name(other["aws-2-nodepool"])


# --- specs the validation layer should have refused -------------------------------------


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("field", ["region", "cloud block"])
def test_missing_cloud_fields_raise_claim_errors(cloud: str, field: str) -> None:
    ctx = cluster_context(cloud)
    name = "region" if field == "region" else cloud
    broken = dataclasses.replace(ctx, spec=ctx.spec.model_copy(update={name: None}))
    with pytest.raises(ClaimError, match=f"cluster {cloud}-1.{name}: required when cloud is"):
        clouds.build(broken)
