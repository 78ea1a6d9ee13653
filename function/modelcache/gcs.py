"""The cluster's GCS bucket as the model cache (GCP), reached by GKE Workload Identity Federation.

The GPU pool serves pods the GKE metadata server (``workloadMetadataConfig.mode:
GKE_METADATA``, clouds/gcp.py); a Google service account ``cache-sa`` may act
for each model's Kubernetes ServiceAccount (``roles/iam.workloadIdentityUser``
for ``serviceAccount:<project>.svc.id.goog[ollama-<model>/ollama]``, one
``ServiceAccountIAMMember`` per model, on that service account only); it holds
``roles/storage.objectUser`` on that bucket only (``BucketIAMMember``). That is
the narrowest predefined role that both reads and writes objects:
``objectViewer`` cannot write, ``objectCreator`` cannot read or replace an
object (GCS needs ``storage.objects.delete`` to overwrite a manifest whose tag
moved), and ``objectAdmin`` also manages object ACLs.

The cluster itself must have Workload Identity
(``--workload-pool=<project>.svc.id.goog``); clouds/gcp.py observes it. Without
a workload pool IAM refuses a binding to the pool's members, so no per-model
binding is composed, the models pull without the cache, and the warning names
the cluster and the ``gcloud`` command that turns Workload Identity on (the
cache follows then).
"""

from __future__ import annotations

from function import naming
from function.clouds.common import item_resource, managed_resource, region, unknown
from function.clouds.gcp import (
    CLOUDPLATFORM_API,
    IAM_MEMBER_API,
    ROLE_BUCKET,
    gcp_cluster,
    gcs_bucket_name,
    gke_cluster_key,
    workload_identity,
)
from function.composed import UNKNOWN, Composed, Gate, Need
from function.context import ClusterContext
from function.modelcache.backend import CacheBlock, Observed
from function.models.fleet import CacheProvider
from function.reports import EMAIL, MEMBER, reported

BUCKET_IAM_API = "storage.gcp.upbound.io/v1beta2"

ROLE_CACHE_SA = "cache-sa"
ROLE_CACHE_ACCESS = "cache-bucket-access"
ROLE_CACHE_BINDING = "model-identity"  # + model name; no other key starts so

WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
CACHE_BUCKET_ROLE = "roles/storage.objectUser"


def cache_sa_key(ctx: ClusterContext) -> str:
    """Return the key of the model cache's Google service account."""
    return naming.key(ctx.name, ROLE_CACHE_SA)


def binding_key(ctx: ClusterContext, model: str) -> str:
    """Return the key of the workloadIdentityUser binding of ``model``'s ServiceAccount."""
    return naming.key(ctx.name, ROLE_CACHE_BINDING, model)


def workload_pool(ctx: ClusterContext) -> str:
    """Return the cluster's Workload Identity pool: ``<project>.svc.id.goog``."""
    return f"{gcp_cluster(ctx).project}.svc.id.goog"


def kubernetes_member(ctx: ClusterContext, model: str) -> str:
    """Return the IAM member of ``model``'s Kubernetes ServiceAccount."""
    ns = naming.model_namespace(model)
    return f"serviceAccount:{workload_pool(ctx)}[{ns}/{naming.MODEL_SERVICE_ACCOUNT}]"


def composes(ctx: ClusterContext, observed: Observed) -> list[Composed]:
    """Build the Workload Identity chain from each model's ServiceAccount to the bucket."""
    project = gcp_cluster(ctx).project
    account = managed_resource(
        ctx,
        CLOUDPLATFORM_API,
        "ServiceAccount",
        ROLE_CACHE_SA,
        {
            "project": project,
            "displayName": f"Ollama model cache {ctx.name}"[:100],
            "description": (
                f"Model cache of Ollama platform {ctx.platform.name}, cluster {ctx.name}"
            ),
        },
        external_name=naming.gcp_service_account_id(
            ctx.platform.uid, ctx.platform.name, ctx.name, purpose="cache"
        ),
    )
    member = reported(observed.get(cache_sa_key(ctx)), MEMBER)
    access = managed_resource(
        ctx,
        BUCKET_IAM_API,
        "BucketIAMMember",
        ROLE_CACHE_ACCESS,
        {
            "bucketSelector": ctx.selector(ROLE_BUCKET),
            "role": CACHE_BUCKET_ROLE,
            "member": member or "",
        },
    )
    out = [
        Composed(key=cache_sa_key(ctx), body=account),
        Composed(
            key=naming.key(ctx.name, ROLE_CACHE_ACCESS),
            body=access,
            gates=(Gate(cache_sa_key(ctx), Need.REPORTED, MEMBER),),
            latch=unknown(member, "member"),
        ),
    ]
    if workload_identity(ctx, observed) is False:
        return out  # IAM refuses members of a pool that does not exist
    for model in ctx.models:
        binding = item_resource(
            ctx,
            IAM_MEMBER_API,
            "ServiceAccountIAMMember",
            ROLE_CACHE_BINDING,
            model,
            for_provider={
                "serviceAccountIdSelector": ctx.selector(ROLE_CACHE_SA),
                "role": WORKLOAD_IDENTITY_USER,
                "member": kubernetes_member(ctx, model),
            },
            gates=(Gate(gke_cluster_key(ctx), Need.READY),),
        )
        out.append(binding)
    return out


def fleet_cache(ctx: ClusterContext, observed: Observed) -> CacheBlock:
    """Return the fleet's ``cache`` block, once the cache service account reports its e-mail.

    None when the cluster is seen without a Workload Identity pool; UNKNOWN
    while the pool or the e-mail is not reported.
    """
    identity = workload_identity(ctx, observed)
    if identity is False:
        return None
    email = reported(observed.get(cache_sa_key(ctx)), EMAIL)
    if identity is None or email is None:
        return UNKNOWN
    return {
        "provider": CacheProvider.GCS.value,
        "bucket": gcs_bucket_name(ctx),
        "gcpServiceAccount": email,
    }


def gates(ctx: ClusterContext, model: str, observed: Observed) -> tuple[Gate, ...]:
    """Return what a model's fleet waits for: the bucket grant and its own binding.

    Nothing once the cluster is seen without Workload Identity (the model pulls).
    """
    if workload_identity(ctx, observed) is False:
        return ()
    return (
        Gate(gke_cluster_key(ctx), Need.READY),
        Gate(cache_sa_key(ctx), Need.READY),
        Gate(cache_sa_key(ctx), Need.REPORTED, EMAIL),
        Gate(naming.key(ctx.name, ROLE_CACHE_ACCESS), Need.READY),
        Gate(binding_key(ctx, model), Need.READY),
    )


def warning(ctx: ClusterContext, observed: Observed) -> str | None:
    """Return why the cluster's models cannot use the bucket cache (None when they can)."""
    if workload_identity(ctx, observed) is not False:
        return None
    gcp = gcp_cluster(ctx)
    return (
        f"GKE cluster {gcp.cluster_name} has no Workload Identity pool, so its models pull "
        "from the registry without the bucket cache; turn it on with: gcloud container "
        f"clusters update {gcp.cluster_name} --location {region(ctx)} "
        f"--project {gcp.project} --workload-pool={workload_pool(ctx)}"
    )
