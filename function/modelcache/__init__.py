"""The model cache's one home: a backend per store, and the one that serves a cluster.

A cluster's models cache their blobs in one store, reached with no keys:

- ``s3``: the cluster's S3 bucket (AWS), by EKS Pod Identity;
- ``gcs``: the cluster's GCS bucket (GCP), by Workload Identity Federation for GKE;
- ``azureblob``: the cluster's blob container (Azure), by Entra Workload ID;
- ``minio``: the cluster's MinIO tenant (``objectStorage: minio``), by MinIO's STS.

Each module answers the same questions (``backend.Backend``): what it composes for
the cluster and its models, the ``cache`` block of the cluster's fleets, what
a model's fleet waits for, and why the store cannot serve as a cache. The
cluster's ``objectStorage`` picks the store, so one cluster has at most one:
``minio`` the tenant, ``cloud`` the cloud's bucket (with ``bucket.enabled``, on
AWS, GCP and Azure); anything else none. The clouds compose the buckets
themselves (clouds/), the stack the tenant (stack/storage.py); the pods'
side of the cache (init containers, rclone's remote) is fleet/cache.py.
"""

from __future__ import annotations

from function.clouds.common import wants_bucket
from function.context import ClusterContext
from function.modelcache import azureblob, gcs, minio, s3
from function.modelcache.backend import NO_CACHE, Backend
from function.models.common import Cloud, ObjectStorage
from function.models.fleet import CacheProvider

# The backends, by the cloud whose bucket each uses.
BUCKETS: dict[Cloud, Backend] = {Cloud.AWS: s3, Cloud.GCP: gcs, Cloud.AZURE: azureblob}
# Every backend, by the fleet's ``cache.provider`` it sets.
BACKENDS: dict[CacheProvider, Backend] = {
    CacheProvider.S3: s3,
    CacheProvider.GCS: gcs,
    CacheProvider.AZURE_BLOB: azureblob,
    CacheProvider.MINIO: minio,
}


def backend(ctx: ClusterContext) -> Backend:
    """Return the one backend that caches the cluster's models (``NO_CACHE`` for none)."""
    if ctx.components.object_storage is ObjectStorage.MINIO:
        return minio
    if wants_bucket(ctx):
        return BUCKETS.get(ctx.cloud, NO_CACHE)
    return NO_CACHE
