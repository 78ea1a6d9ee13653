"""The S3 bucket as the model cache (modelcache/s3.py): EKS Pod Identity from model to bucket."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from function import modelcache, naming
from function.composed import Composed, Need
from function.fleet import cache
from function.modelcache import s3
from function.readiness import select
from tests.factories import cluster_chain, cluster_composed, cluster_context, decoded, reporting
from tests.unit.test_cache import final_desired

BUCKET_ARN = "arn:aws:s3:::ollama-demo-abc12-aws-1-9f2e0c1d7a"


def bucket_reported(arn: str = BUCKET_ARN) -> dict[str, Any]:
    return reporting("aws-1-bucket", "Bucket", arn=arn)


def fp(c: Composed) -> dict[str, Any]:
    return dict(c.body["spec"]["forProvider"])


def test_eks_pod_identity_chain_from_service_account_to_bucket() -> None:
    chain = cluster_chain("aws", bucket_reported(), models=("llama2", "mistral"))
    agent = chain["aws-1-pod-identity-agent"]
    assert (agent.api_version, agent.kind) == ("eks.aws.upbound.io/v1beta1", "Addon")
    assert fp(agent)["addonName"] == "eks-pod-identity-agent"
    assert fp(agent)["clusterName"] == "eks-prod"
    assert fp(agent)["preserve"] is True  # the cluster is not the platform's

    role = chain["aws-1-cache-role"]
    trust = json.loads(fp(role)["assumeRolePolicy"])
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ]

    policy = chain["aws-1-cache-policy"]
    assert (policy.api_version, policy.kind) == ("iam.aws.upbound.io/v1beta1", "RolePolicy")
    assert fp(policy)["roleSelector"]["matchLabels"] == role.body["metadata"]["labels"]

    for model in ("llama2", "mistral"):
        assoc = chain[f"aws-1-model-identity-{model}"]
        assert (assoc.api_version, assoc.kind) == (
            "eks.aws.upbound.io/v1beta1",
            "PodIdentityAssociation",
        )
        assert fp(assoc)["namespace"] == naming.model_namespace(model) == f"ollama-{model}"
        assert fp(assoc)["serviceAccount"] == cache.SERVICE_ACCOUNT == "ollama"
        assert fp(assoc)["clusterName"] == "eks-prod"
        assert fp(assoc)["roleArnSelector"]["matchLabels"] == role.body["metadata"]["labels"]
        assert fp(assoc)["roleArnSelector"]["matchControllerRef"] is True


def test_eks_policy_names_only_that_bucket() -> None:
    chain = cluster_chain("aws", bucket_reported())
    document = json.loads(fp(chain["aws-1-cache-policy"])["policy"])
    resources = {r for s in document["Statement"] for r in [s["Resource"]]}
    assert resources == {BUCKET_ARN, f"{BUCKET_ARN}/*"}
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    assert all(s["Effect"] == "Allow" for s in document["Statement"])
    text = fp(chain["aws-1-cache-policy"])["policy"]
    assert '"*"' not in text
    assert "s3:*" not in text
    assert "Delete" not in text  # the cache only grows; nothing it runs deletes


def test_eks_policy_waits_for_the_bucket_arn_and_is_never_sent_without_it() -> None:
    chain = cluster_chain("aws", {})
    policy = chain["aws-1-cache-policy"]
    assert [(g.key, g.need, g.field) for g in policy.gates] == [
        ("aws-1-bucket", Need.REPORTED, "arn")
    ]
    held = select(chain.values(), {})
    assert "aws-1-cache-policy" in held.held
    # once reported, it is composed with the reported ARN
    observed = bucket_reported()
    chain = cluster_chain("aws", observed)
    assert "aws-1-cache-policy" in {c.key for c in select(chain.values(), observed).emitted}
    # a policy that exists while its bucket stops reporting the ARN keeps the policy it
    # carries (withdrawing it would delete it; an empty ARN would rewrite it)
    carried = {c.key: c for c in select(chain.values(), observed).emitted}[
        "aws-1-cache-policy"
    ].body
    assert BUCKET_ARN in carried["spec"]["forProvider"]["policy"]
    observed = {
        **bucket_reported(),
        "aws-1-cache-policy": decoded({"kind": "RolePolicy", **carried}),
    }
    observed["aws-1-bucket"] = decoded({"kind": "Bucket", "status": {"atProvider": {}}})
    chain = cluster_chain("aws", observed)
    assert chain["aws-1-cache-policy"].body != carried  # built without the ARN ...
    kept = {c.key: c for c in select(chain.values(), observed).emitted}
    assert kept["aws-1-cache-policy"].body == carried  # ... but sent as it exists


def test_associations_wait_for_the_agent() -> None:
    chain = cluster_chain("aws", bucket_reported())
    gates = [(g.key, g.need) for g in chain["aws-1-model-identity-llama2"].gates]
    assert gates == [("aws-1-pod-identity-agent", Need.READY)]


@pytest.mark.parametrize("extra", [{"bucket": {"enabled": False}}, {}])
def test_no_bucket_no_identity_chain_and_no_cache(extra: dict[str, Any]) -> None:
    components = {"objectStorage": "none"} if not extra else None
    ctx = dataclasses.replace(
        cluster_context("aws", components=components, **extra), models=("llama2",)
    )
    keys = {c.key for c in cluster_composed(ctx, bucket_reported())}
    # the EBS CSI driver's identity (and the agent it needs) is not the cache's
    assert not {k for k in keys if "cache" in k or "model-identity" in k}
    assert modelcache.backend(ctx).fleet_cache(ctx, bucket_reported()) is None
    assert modelcache.backend(ctx).gates(ctx, "llama2", {}) == ()


def test_aws_fleet_cache_block() -> None:
    ctx = cluster_context("aws")
    block = s3.fleet_cache(ctx, {})
    assert block == {
        "provider": "s3",
        "bucket": naming.bucket_name(ctx.platform.uid, ctx.platform.name, ctx.name),
        "region": "us-east-1",
    }
    assert [(g.key, g.need) for g in s3.gates(ctx, "llama2", {})] == [
        ("aws-1-pod-identity-agent", Need.READY),
        ("aws-1-cache-policy", Need.READY),
        ("aws-1-model-identity-llama2", Need.READY),
    ]


def test_aws_example_composes_the_chain_and_the_fleet_names_the_bucket() -> None:
    docs = final_desired("aws")
    kinds = {(b["apiVersion"], b["kind"]) for b in docs.values()}
    assert ("eks.aws.upbound.io/v1beta1", "Addon") in kinds
    assert ("eks.aws.upbound.io/v1beta1", "PodIdentityAssociation") in kinds
    assert ("iam.aws.upbound.io/v1beta1", "RolePolicy") in kinds
    fleets = [b for b in docs.values() if b["kind"] == "XOllamaFleet"]
    assert fleets
    bucket = next(b for k, b in docs.items() if b["kind"] == "Bucket" and k.endswith("-bucket"))
    for f in fleets:
        assert f["spec"]["cache"]["provider"] == "s3"
        assert (
            f["spec"]["cache"]["bucket"] == bucket["metadata"]["annotations"][naming.EXTERNAL_NAME]
        )
