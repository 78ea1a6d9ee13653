"""AWS: the GPU nodes' IAM role, the EKS managed node group, the S3 bucket, the EBS CSI driver.

Kinds are the classic cluster-scoped ones at their storage versions:
``iam.aws.upbound.io/v1beta1`` Role, RolePolicyAttachment and RolePolicy,
``eks.aws.upbound.io/v1beta2`` NodeGroup, ``eks.aws.upbound.io/v1beta1`` Addon
and PodIdentityAssociation, and the ``s3.aws.upbound.io`` Bucket family
(``v1beta2``, except BucketPublicAccessBlock, stored at ``v1beta1``).

The ``eks-pod-identity-agent`` add-on serves the EBS CSI driver's identity and
the model cache's (modelcache/s3.py composes the cache's role and associations).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from function import naming
from function.clouds.common import (
    AUTOSCALED_MANAGEMENT_POLICIES,
    GPU_NODE_LABELS,
    cloud_tags,
    item_resource,
    managed_resource,
    missing,
    node_pool,
    region,
    wants_bucket,
)
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.models.common import BlockStorage, Cloud

IAM_API = "iam.aws.upbound.io/v1beta1"
EKS_API = "eks.aws.upbound.io/v1beta2"
EKS_V1BETA1_API = "eks.aws.upbound.io/v1beta1"  # Addon, PodIdentityAssociation
S3_API = "s3.aws.upbound.io/v1beta2"
S3_PUBLIC_ACCESS_BLOCK_API = "s3.aws.upbound.io/v1beta1"

# The AMI with the NVIDIA driver and container toolkit (AL2_x86_64_GPU is end of life).
AMI_TYPE = "AL2023_x86_64_NVIDIA"

# Managed policies a worker node needs, by the short name used in keys and roles.
NODE_POLICIES = {
    "worker": "AmazonEKSWorkerNodePolicy",
    "cni": "AmazonEKS_CNI_Policy",
    "ecr": "AmazonEC2ContainerRegistryReadOnly",
}

# Roles (label values) of the composed resources; selectors match on them.
ROLE_NODE_ROLE = "node-role"
ROLE_NODEPOOL = "nodepool"
ROLE_BUCKET = "bucket"
ROLE_POD_IDENTITY_AGENT = "pod-identity-agent"

ROLE_EBS_CSI_ROLE = "ebs-csi-role"
ROLE_EBS_CSI_POLICY = "ebs-csi-policy"
ROLE_EBS_CSI_IDENTITY = "ebs-csi-identity"
ROLE_EBS_CSI_DRIVER = "ebs-csi-driver"

POD_IDENTITY_AGENT = "eks-pod-identity-agent"
# The EBS CSI driver add-on, its controller's ServiceAccount, and the AWS managed
# policy it needs (create, attach, snapshot and delete EBS volumes).
EBS_CSI_ADDON = "aws-ebs-csi-driver"
EBS_CSI_NAMESPACE = "kube-system"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
# StorageClass names backed by EBS (the ones EKS ships and the usual gp3).
EBS_STORAGE_CLASSES = {"gp2", "gp3"}
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"

Observed = Mapping[str, Mapping[str, Any]]


def build(ctx: ClusterContext, observed: Observed | None = None) -> list[Composed]:  # noqa: ARG001  # every cloud's signature
    """Build the AWS resources of one cluster: node role, node group, bucket, EBS CSI driver."""
    resources = [node_role(ctx), *policy_attachments(ctx), node_group(ctx)]
    if wants_bucket(ctx) or needs_ebs(ctx):
        resources.append(pod_identity_agent(ctx))
    if wants_bucket(ctx):
        resources.extend(bucket(ctx))
    if needs_ebs(ctx):
        resources.extend(ebs_csi_driver(ctx))
    return resources


def partition(aws_region: str) -> str:
    """Return the AWS partition of ``aws_region``, for ARNs of AWS managed policies."""
    if aws_region.startswith("cn-"):
        return "aws-cn"
    if aws_region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def assume_role_policy() -> str:
    """Return the node role's trust policy: EC2 instances may assume it.

    Serialised with sorted keys and no whitespace, so the string is the same
    on every call.
    """
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def node_role(ctx: ClusterContext) -> Composed:
    """Build the IAM role the GPU nodes run as; Crossplane's generated name is its name."""
    body = managed_resource(
        ctx,
        IAM_API,
        "Role",
        ROLE_NODE_ROLE,
        {
            "assumeRolePolicy": assume_role_policy(),
            "description": f"GPU nodes of Ollama platform {ctx.platform.name}, cluster {ctx.name}",
            "tags": cloud_tags(ctx),
        },
    )
    return Composed(key=naming.key(ctx.name, ROLE_NODE_ROLE), body=body)


def policy_attachment_key(ctx: ClusterContext, short: str) -> str:
    """Return the key of the attachment of the managed policy ``short`` (see NODE_POLICIES)."""
    return naming.key(ctx.name, ROLE_NODE_ROLE, short)


def policy_attachments(ctx: ClusterContext) -> list[Composed]:
    """Build one RolePolicyAttachment per worker node policy, on the composed node role."""
    arn_prefix = f"arn:{partition(region(ctx))}:iam::aws:policy"
    return [
        item_resource(
            ctx,
            IAM_API,
            "RolePolicyAttachment",
            ROLE_NODE_ROLE,
            short,
            for_provider={
                "policyArn": f"{arn_prefix}/{policy}",
                "roleSelector": ctx.selector(ROLE_NODE_ROLE),
            },
        )
        for short, policy in NODE_POLICIES.items()
    ]


def node_group(ctx: ClusterContext) -> Composed:
    """Build the EKS managed node group of GPU instances.

    Sizing and the cluster autoscaler: ``minSize`` and ``maxSize`` are in
    ``spec.forProvider`` and follow the claim; ``desiredSize`` (which EKS
    requires) is only in ``spec.initProvider``, so it is sent on create and
    then left to the autoscaler. That alone is not enough: with the
    ``LateInitialize`` management policy the provider copies the observed
    ``desiredSize`` into ``spec.forProvider`` and from then on resets the
    autoscaler's choice on every reconcile (provider-upjet-aws #756, #1469;
    the maintainers' answer in #1469, and Crossplane's ignore-changes design,
    is to leave ``LateInitialize`` out). The node group therefore uses
    ``["Observe", "Create", "Update", "Delete"]``. A consequence worth
    knowing: raising ``minNodes`` above the group's current desired size is
    refused by EKS until the autoscaler (or an operator) raises it.

    The node group waits for its role's policy attachments: nodes that boot
    without the worker and CNI policies never join the cluster.
    """
    pool = node_pool(ctx)
    if ctx.spec.aws is None:
        raise missing(ctx, "aws")
    for_provider: dict[str, Any] = {
        "region": region(ctx),
        "clusterName": ctx.spec.aws.cluster_name,
        "subnetIds": list(ctx.spec.aws.subnet_ids),
        "nodeRoleArnSelector": ctx.selector(ROLE_NODE_ROLE),
        "instanceTypes": [pool.instance_type],
        "amiType": AMI_TYPE,
        "capacityType": "SPOT" if pool.spot else "ON_DEMAND",
        "diskSize": pool.disk_size_gb,
        "scalingConfig": {"minSize": pool.min_nodes, "maxSize": pool.max_nodes},
        "labels": dict(GPU_NODE_LABELS),
        "taint": [{"key": naming.GPU_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}],
        "tags": cloud_tags(ctx),
    }
    body = managed_resource(
        ctx,
        EKS_API,
        "NodeGroup",
        ROLE_NODEPOOL,
        for_provider,
        external_name=naming.node_pool_name(ctx.platform.name, ctx.name),
        init_provider={"scalingConfig": {"desiredSize": pool.min_nodes}},
        management_policies=AUTOSCALED_MANAGEMENT_POLICIES,
    )
    gates = tuple(Gate(policy_attachment_key(ctx, short), Need.READY) for short in NODE_POLICIES)
    return Composed(key=naming.key(ctx.name, ROLE_NODEPOOL), body=body, gates=gates)


def bucket(ctx: ClusterContext) -> list[Composed]:
    """Build the S3 bucket for model artefacts and its security settings.

    Versioning is always composed: ``Enabled`` when the claim asks for it,
    ``Suspended`` otherwise. The claim's field is then authoritative in both
    directions; composing it only when enabled would turn ``true -> false``
    into deleting the BucketVersioning resource, which suspends versioning
    anyway, but implicitly.
    """
    aws_region = region(ctx)
    bucket_body = managed_resource(
        ctx,
        S3_API,
        "Bucket",
        ROLE_BUCKET,
        {"region": aws_region, "forceDestroy": False, "tags": cloud_tags(ctx)},
        external_name=naming.bucket_name(ctx.platform.uid, ctx.platform.name, ctx.name),
    )
    status = "Enabled" if ctx.spec.bucket.versioning else "Suspended"
    settings: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            "versioning",
            S3_API,
            "BucketVersioning",
            {"versioningConfiguration": {"status": status}},
        ),
        (
            "encryption",
            S3_API,
            "BucketServerSideEncryptionConfiguration",
            {
                "rule": [
                    {
                        "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"},
                        "bucketKeyEnabled": True,
                    }
                ]
            },
        ),
        (
            "public-access-block",
            S3_PUBLIC_ACCESS_BLOCK_API,
            "BucketPublicAccessBlock",
            {
                "blockPublicAcls": True,
                "blockPublicPolicy": True,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
        ),
        (
            "ownership",
            S3_API,
            "BucketOwnershipControls",
            {"rule": {"objectOwnership": "BucketOwnerEnforced"}},
        ),
    ]
    resources = [Composed(key=naming.key(ctx.name, ROLE_BUCKET), body=bucket_body)]
    for suffix, api_version, kind, fields in settings:
        role = f"{ROLE_BUCKET}-{suffix}"
        for_provider = {
            "region": aws_region,
            "bucketSelector": ctx.selector(ROLE_BUCKET),
            **fields,
        }
        body = managed_resource(ctx, api_version, kind, role, for_provider)
        resources.append(Composed(key=naming.key(ctx.name, role), body=body))
    return resources


def bucket_key(ctx: ClusterContext) -> str:
    """Return the key of the cluster's S3 bucket."""
    return naming.key(ctx.name, ROLE_BUCKET)


def pod_identity_trust_policy() -> str:
    """Return the cache role's trust policy: only EKS Pod Identity may assume it."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def pod_identity_agent(ctx: ClusterContext) -> Composed:
    """Build the ``eks-pod-identity-agent`` add-on (the model cache and the EBS CSI driver use it).

    ``preserve``d: deleting the claim leaves the agent running on a cluster the
    platform does not own (other workloads may use it).
    """
    if ctx.spec.aws is None:
        raise missing(ctx, "aws")
    agent = managed_resource(
        ctx,
        EKS_V1BETA1_API,
        "Addon",
        ROLE_POD_IDENTITY_AGENT,
        {
            "region": region(ctx),
            "clusterName": ctx.spec.aws.cluster_name,
            "addonName": POD_IDENTITY_AGENT,
            "preserve": True,
            "tags": cloud_tags(ctx),
        },
    )
    return Composed(key=naming.key(ctx.name, ROLE_POD_IDENTITY_AGENT), body=agent)


def needs_ebs(ctx: ClusterContext) -> bool:
    """Whether the cluster's storage claims EBS volumes, so the EBS CSI driver must run.

    Rook-Ceph on EKS puts its OSDs and mons on ``gp2`` volumes (unless
    ``rook.deviceStorageClass`` names a class that is not EBS); without block
    storage, volumes use the cluster's default class (``gp2`` on EKS). Longhorn
    keeps its data on the nodes' disks and is the default class.
    """
    if ctx.cloud is not Cloud.AWS:
        return False
    if ctx.components.block_storage is BlockStorage.NONE:
        return True
    if ctx.components.block_storage is BlockStorage.ROOK_CEPH:
        return ctx.osd_storage_class() in EBS_STORAGE_CLASSES
    return False


def ebs_csi_driver(ctx: ClusterContext) -> list[Composed]:
    """Build the EBS CSI driver add-on and its controller's identity (EKS Pod Identity).

    The controller (a Deployment on any node) creates and attaches volumes, so
    the role goes to its ServiceAccount, not to the GPU node role (the
    controller rarely runs on GPU nodes, which may scale to zero). The
    association is made before the add-on, so the controller's first pods get
    credentials. ``preserve``d, like the agent: volumes of other workloads on
    the cluster depend on it.
    """
    if ctx.spec.aws is None:
        raise missing(ctx, "aws")
    arn_prefix = f"arn:{partition(region(ctx))}:iam::aws:policy"
    role = managed_resource(
        ctx,
        IAM_API,
        "Role",
        ROLE_EBS_CSI_ROLE,
        {
            "assumeRolePolicy": pod_identity_trust_policy(),
            "description": (
                f"EBS CSI driver of Ollama platform {ctx.platform.name}, cluster {ctx.name}"
            ),
            "tags": cloud_tags(ctx),
        },
    )
    policy = managed_resource(
        ctx,
        IAM_API,
        "RolePolicyAttachment",
        ROLE_EBS_CSI_POLICY,
        {
            "policyArn": f"{arn_prefix}/{EBS_CSI_POLICY}",
            "roleSelector": ctx.selector(ROLE_EBS_CSI_ROLE),
        },
    )
    identity = managed_resource(
        ctx,
        EKS_V1BETA1_API,
        "PodIdentityAssociation",
        ROLE_EBS_CSI_IDENTITY,
        {
            "region": region(ctx),
            "clusterName": ctx.spec.aws.cluster_name,
            "namespace": EBS_CSI_NAMESPACE,
            "serviceAccount": EBS_CSI_SERVICE_ACCOUNT,
            "roleArnSelector": ctx.selector(ROLE_EBS_CSI_ROLE),
            "tags": cloud_tags(ctx),
        },
    )
    addon = managed_resource(
        ctx,
        EKS_V1BETA1_API,
        "Addon",
        ROLE_EBS_CSI_DRIVER,
        {
            "region": region(ctx),
            "clusterName": ctx.spec.aws.cluster_name,
            "addonName": EBS_CSI_ADDON,
            "preserve": True,
            "tags": cloud_tags(ctx),
        },
    )
    identity_key = naming.key(ctx.name, ROLE_EBS_CSI_IDENTITY)
    return [
        Composed(key=naming.key(ctx.name, ROLE_EBS_CSI_ROLE), body=role),
        Composed(key=naming.key(ctx.name, ROLE_EBS_CSI_POLICY), body=policy),
        Composed(
            key=identity_key,
            body=identity,
            gates=(Gate(naming.key(ctx.name, ROLE_POD_IDENTITY_AGENT), Need.READY),),
        ),
        Composed(
            key=naming.key(ctx.name, ROLE_EBS_CSI_DRIVER),
            body=addon,
            gates=(
                Gate(identity_key, Need.READY),
                Gate(naming.key(ctx.name, ROLE_EBS_CSI_POLICY), Need.READY),
            ),
        ),
    ]
