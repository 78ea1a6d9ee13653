"""The cluster's S3 bucket as the model cache (AWS), reached by EKS Pod Identity.

The ``eks-pod-identity-agent`` add-on runs on the cluster (clouds/aws.py
composes it: the EBS CSI driver uses it too); the IAM role ``cache-role``
trusts only the ``pods.eks.amazonaws.com`` service; its one inline policy
``cache-policy`` allows listing that bucket and reading and writing its
objects (nothing else, no wildcard resource); a ``PodIdentityAssociation`` per
model binds the model's ServiceAccount (``ollama`` in ``ollama-<model>``) to
the role. Pod Identity needs nothing turned on, so there is no warning.
"""

from __future__ import annotations

import json

from function import naming
from function.clouds.aws import (
    EKS_V1BETA1_API,
    IAM_API,
    ROLE_POD_IDENTITY_AGENT,
    bucket_key,
    pod_identity_trust_policy,
)
from function.clouds.common import (
    cloud_tags,
    item_resource,
    managed_resource,
    missing,
    region,
    unknown,
)
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.modelcache.backend import CacheBlock, Observed
from function.models.fleet import CacheProvider
from function.reports import ARN, reported

ROLE_CACHE_ROLE = "cache-role"
ROLE_CACHE_POLICY = "cache-policy"
ROLE_CACHE_ASSOCIATION = "model-identity"  # + model name; no other key starts so

# What the restore and save steps do: list the bucket, read and write objects
# (multipart uploads included, and their abort). No delete: nothing removes
# blobs from the cache, and a role that cannot delete cannot empty the bucket.
BUCKET_ACTIONS = ["s3:ListBucket"]
OBJECT_ACTIONS = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]


def association_key(ctx: ClusterContext, model: str) -> str:
    """Return the key of the PodIdentityAssociation of ``model``'s ServiceAccount."""
    return naming.key(ctx.name, ROLE_CACHE_ASSOCIATION, model)


def cache_policy(bucket_arn: str) -> str:
    """Return the cache role's inline policy: that bucket and its objects, nothing broader."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListTheCacheBucket",
                "Effect": "Allow",
                "Action": list(BUCKET_ACTIONS),
                "Resource": bucket_arn,
            },
            {
                "Sid": "ReadAndWriteCachedModels",
                "Effect": "Allow",
                "Action": list(OBJECT_ACTIONS),
                "Resource": f"{bucket_arn}/*",
            },
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def composes(ctx: ClusterContext, observed: Observed) -> list[Composed]:
    """Build the Pod Identity chain from each model's ServiceAccount to the bucket.

    The inline policy names the bucket's ARN as the provider reports it
    (``status.atProvider.arn``), so it is composed once the bucket reports it.
    """
    if ctx.spec.aws is None:
        raise missing(ctx, "aws")
    aws_region = region(ctx)
    cluster_name = ctx.spec.aws.cluster_name
    role = managed_resource(
        ctx,
        IAM_API,
        "Role",
        ROLE_CACHE_ROLE,
        {
            "assumeRolePolicy": pod_identity_trust_policy(),
            "description": (
                f"Model cache of Ollama platform {ctx.platform.name}, cluster {ctx.name}"
            ),
            "tags": cloud_tags(ctx),
        },
    )
    arn = reported(observed.get(bucket_key(ctx)), ARN)
    policy = managed_resource(
        ctx,
        IAM_API,
        "RolePolicy",
        ROLE_CACHE_POLICY,
        {"policy": cache_policy(arn or ""), "roleSelector": ctx.selector(ROLE_CACHE_ROLE)},
    )
    out = [
        Composed(key=naming.key(ctx.name, ROLE_CACHE_ROLE), body=role),
        Composed(
            key=naming.key(ctx.name, ROLE_CACHE_POLICY),
            body=policy,
            gates=(Gate(bucket_key(ctx), Need.REPORTED, ARN),),
            latch=unknown(arn, "policy"),
        ),
    ]
    for model in ctx.models:
        association = item_resource(
            ctx,
            EKS_V1BETA1_API,
            "PodIdentityAssociation",
            ROLE_CACHE_ASSOCIATION,
            model,
            for_provider={
                "region": aws_region,
                "clusterName": cluster_name,
                "namespace": naming.model_namespace(model),
                "serviceAccount": naming.MODEL_SERVICE_ACCOUNT,
                "roleArnSelector": ctx.selector(ROLE_CACHE_ROLE),
                "tags": cloud_tags(ctx),
            },
            gates=(Gate(naming.key(ctx.name, ROLE_POD_IDENTITY_AGENT), Need.READY),),
        )
        out.append(association)
    return out


def fleet_cache(ctx: ClusterContext, observed: Observed) -> CacheBlock:  # noqa: ARG001  # every backend's signature
    """Return the fleet's ``cache`` block: the bucket and its region (known from the claim)."""
    name = naming.bucket_name(ctx.platform.uid, ctx.platform.name, ctx.name)
    return {"provider": CacheProvider.S3.value, "bucket": name, "region": region(ctx)}


def gates(ctx: ClusterContext, model: str, observed: Observed) -> tuple[Gate, ...]:  # noqa: ARG001  # every backend's signature
    """Return what a model's fleet waits for: the agent, the role's policy, its association."""
    return (
        Gate(naming.key(ctx.name, ROLE_POD_IDENTITY_AGENT), Need.READY),
        Gate(naming.key(ctx.name, ROLE_CACHE_POLICY), Need.READY),
        Gate(association_key(ctx, model), Need.READY),
    )


def warning(ctx: ClusterContext, observed: Observed) -> None:  # noqa: ARG001  # every backend's signature
    """Return None: Pod Identity needs nothing turned on (the platform installs the agent)."""
    return
