"""The GCS bucket as the model cache (modelcache/gcs.py): GKE Workload Identity, prerequisites."""

from __future__ import annotations

import dataclasses
from typing import Any

from function import modelcache, naming
from function.composed import UNKNOWN, Composed, Need
from function.readiness import select
from tests.factories import cluster_chain, cluster_composed, cluster_context, reporting

NODE_EMAIL = "ollama-gcp-1-aaaaaa@proj-1234.iam.gserviceaccount.com"

CACHE_EMAIL = "ollama-cache-gcp-1-bbbbbb@proj-1234.iam.gserviceaccount.com"

GCP_REPORTED = {
    **reporting(
        "gcp-1-node-sa", "ServiceAccount", email=NODE_EMAIL, member=f"serviceAccount:{NODE_EMAIL}"
    ),
    **reporting(
        "gcp-1-cache-sa",
        "ServiceAccount",
        email=CACHE_EMAIL,
        member=f"serviceAccount:{CACHE_EMAIL}",
    ),
    **reporting(
        "gcp-1-gke-cluster",
        "Cluster",
        workloadIdentityConfig={"workloadPool": "proj-1234.svc.id.goog"},
    ),
}


def fp(c: Composed) -> dict[str, Any]:
    return dict(c.body["spec"]["forProvider"])


def external_name_of(c: Composed) -> str:
    return str(c.body["metadata"]["annotations"][naming.EXTERNAL_NAME])


def test_gke_node_service_account_gets_only_the_documented_node_roles() -> None:
    chain = cluster_chain("gcp", GCP_REPORTED)
    grants = [c for c in chain.values() if c.kind == "ProjectIAMMember"]
    assert sorted(fp(c)["role"] for c in grants) == [
        "roles/artifactregistry.reader",
        "roles/container.defaultNodeServiceAccount",
    ]
    for c in grants:
        assert fp(c)["member"] == f"serviceAccount:{NODE_EMAIL}"  # the nodes', never the cache's
        assert [(g.key, g.need, g.field) for g in c.gates] == [
            ("gcp-1-node-sa", Need.REPORTED, "member")
        ]
    # without a reported member the grants are held, never sent with an empty member
    held = select(cluster_chain("gcp", {}).values(), {})
    assert {"gcp-1-node-sa-default-node", "gcp-1-node-sa-artifact-reader"} <= set(held.held)


def test_gke_node_roles_do_not_depend_on_the_bucket() -> None:
    ctx = dataclasses.replace(cluster_context("gcp", bucket={"enabled": False}), models=("m",))
    kinds = [c.kind for c in cluster_composed(ctx, GCP_REPORTED)]
    assert kinds.count("ProjectIAMMember") == 2
    assert "BucketIAMMember" not in kinds
    assert "ServiceAccountIAMMember" not in kinds
    pool = {c.key: c for c in cluster_composed(ctx, GCP_REPORTED)}["gcp-1-nodepool"]
    assert "workloadMetadataConfig" not in fp(pool)["nodeConfig"]


def test_gke_workload_identity_chain_from_service_account_to_bucket() -> None:
    chain = cluster_chain("gcp", GCP_REPORTED, models=("llama2", "mistral"))
    pool = chain["gcp-1-nodepool"]
    assert fp(pool)["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    sa = chain["gcp-1-cache-sa"]
    assert (sa.api_version, sa.kind) == ("cloudplatform.gcp.upbound.io/v1beta1", "ServiceAccount")
    assert (
        sa.body["metadata"]["annotations"][naming.EXTERNAL_NAME]
        != chain["gcp-1-node-sa"].body["metadata"]["annotations"][naming.EXTERNAL_NAME]
    )
    for model in ("llama2", "mistral"):
        binding = chain[f"gcp-1-model-identity-{model}"]
        assert (binding.api_version, binding.kind) == (
            "cloudplatform.gcp.upbound.io/v1beta2",
            "ServiceAccountIAMMember",
        )
        assert fp(binding)["role"] == "roles/iam.workloadIdentityUser"
        assert fp(binding)["member"] == (
            f"serviceAccount:my-project.svc.id.goog[ollama-{model}/ollama]"
        )
        # on the cache service account only, not the project
        assert (
            fp(binding)["serviceAccountIdSelector"]["matchLabels"] == sa.body["metadata"]["labels"]
        )
    access = chain["gcp-1-cache-bucket-access"]
    assert (access.api_version, access.kind) == (
        "storage.gcp.upbound.io/v1beta2",
        "BucketIAMMember",
    )
    assert fp(access)["role"] == "roles/storage.objectUser"
    assert fp(access)["member"] == f"serviceAccount:{CACHE_EMAIL}"
    assert (
        fp(access)["bucketSelector"]["matchLabels"]
        == chain["gcp-1-bucket"].body["metadata"]["labels"]
    )


def test_gke_no_project_wide_storage_role() -> None:
    chain = cluster_chain("gcp", GCP_REPORTED)
    for c in chain.values():
        if c.kind == "ProjectIAMMember":
            assert "storage" not in fp(c)["role"]
            assert "iam." not in fp(c)["role"]
        if "IAMMember" in c.kind:
            assert fp(c)["role"] not in {"roles/owner", "roles/editor", "roles/storage.admin"}


def test_gke_fleet_cache_names_the_reported_email_once_known() -> None:
    ctx = cluster_context("gcp")
    assert (
        modelcache.backend(ctx).fleet_cache(ctx, {}) is UNKNOWN
    )  # not known yet: an existing fleet keeps its
    block = modelcache.backend(ctx).fleet_cache(ctx, GCP_REPORTED)
    assert block == {
        "provider": "gcs",
        "bucket": external_name_of(cluster_chain("gcp")["gcp-1-bucket"]),
        "gcpServiceAccount": CACHE_EMAIL,
    }
    assert [
        (g.key, g.need) for g in modelcache.backend(ctx).gates(ctx, "llama2", GCP_REPORTED)
    ] == [
        ("gcp-1-gke-cluster", Need.READY),
        ("gcp-1-cache-sa", Need.READY),
        ("gcp-1-cache-sa", Need.REPORTED),  # its e-mail goes into the fleet
        ("gcp-1-cache-bucket-access", Need.READY),
        ("gcp-1-model-identity-llama2", Need.READY),
    ]


GKE_WITHOUT_POOL = reporting(
    "gcp-1-gke-cluster", "Cluster", id="projects/my-project/locations/us-central1/clusters/gke-prod"
)


def test_gke_cluster_is_observed_never_managed() -> None:
    gke = cluster_chain("gcp")["gcp-1-gke-cluster"]
    assert (gke.api_version, gke.kind) == ("container.gcp.upbound.io/v1beta2", "Cluster")
    assert gke.body["spec"]["managementPolicies"] == ["Observe"]
    assert external_name_of(gke) == "gke-prod"
    assert fp(gke) == {"project": "my-project", "location": "us-central1"}


def test_gke_pool_serves_the_metadata_server_only_once_the_cluster_has_a_workload_pool() -> None:
    def mode(observed: dict[str, dict[str, Any]]) -> Any:
        pool = cluster_chain("gcp", observed)["gcp-1-nodepool"]
        return fp(pool)["nodeConfig"].get("workloadMetadataConfig")

    assert mode(GCP_REPORTED) == {"mode": "GKE_METADATA"}
    # without a pool GKE would refuse GKE_METADATA: the node pool is built without it
    assert mode({**GCP_REPORTED, **GKE_WITHOUT_POOL}) is None
    # and it is not sent before the cluster is observed (it waits for it)
    held = select(cluster_chain("gcp", {}).values(), {})
    assert "gcp-1-nodepool" in held.held


def test_gke_without_workload_identity_serves_models_without_the_cache() -> None:
    observed = {**GCP_REPORTED, **GKE_WITHOUT_POOL}
    ctx = dataclasses.replace(cluster_context("gcp"), models=("llama2",))
    keys = {c.key for c in cluster_composed(ctx, observed)}
    assert "gcp-1-model-identity-llama2" not in keys  # IAM would refuse the member
    assert {"gcp-1-bucket", "gcp-1-cache-sa", "gcp-1-nodepool"} <= keys
    assert modelcache.backend(ctx).fleet_cache(ctx, observed) is None
    assert modelcache.backend(ctx).gates(ctx, "llama2", observed) == ()  # the model is not held
    warning = modelcache.backend(ctx).warning(ctx, observed)
    assert warning is not None
    assert "gcloud container clusters update gke-prod" in warning
    assert "--workload-pool=my-project.svc.id.goog" in warning
    assert modelcache.backend(ctx).warning(ctx, GCP_REPORTED) is None
    # before the cluster is observed: the cache is unknown, the model waits for the cluster
    assert modelcache.backend(ctx).fleet_cache(ctx, {}) is UNKNOWN
    assert ("gcp-1-gke-cluster", Need.READY) in {
        (g.key, g.need) for g in modelcache.backend(ctx).gates(ctx, "llama2", {})
    }
    assert modelcache.backend(ctx).warning(ctx, {}) is None
