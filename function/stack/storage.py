"""In-cluster storage: block storage (Rook-Ceph or Longhorn) and object storage (MinIO or Ceph RGW).

Block storage:

- ``rook-ceph``: the ``rook-ceph`` operator chart, the ``ceph-csi-drivers`` chart
  (Rook v1.20 installs no CSI driver itself) with Rook's recommended values, then
  the ``rook-ceph-cluster`` chart carrying the seed's CephCluster spec (three mons
  on distinct nodes, SSL dashboard, one OSD per device) and a
  replicated (size 3) block pool whose StorageClass is ``rook-ceph-block``. The
  seed's ``storeType: bluestore`` is expressed the current way
  (``storage.store.type``); ``journalSizeMB`` is dropped because journals belonged
  to FileStore, which Rook no longer supports. ``databaseSizeMB`` is still a Rook
  OSD setting and is kept. On clouds the OSDs sit on ``storageClassDeviceSets``:
  ``rook.osdCount`` volumes of ``rook.osdSize`` (function input) of the cloud's
  block StorageClass, the mons on volumes of the same class. On existing
  clusters they use the nodes' raw devices: those matching ``rook.deviceFilter``,
  else every empty one.
- ``longhorn``: the Longhorn chart; its StorageClass is ``longhorn``.

Object storage:

- ``minio``: the MinIO operator and a tenant with the seed's 4 servers x 4 volumes x
  1Ti. The open-source MinIO operator is deprecated upstream; it stays available as
  an option and the profiles default to cloud buckets. Root credentials come from
  an existing Secret (``MINIO_CONFIG_SECRET`` in ``MINIO_TENANT_NAMESPACE``, key
  ``config.env`` exporting ``MINIO_ROOT_USER`` and ``MINIO_ROOT_PASSWORD``); the
  function never generates credentials. The seed's ``logging.audit.diskCapacityGB``
  is gone: current Tenant CRDs have no audit settings.
- ``rook-ceph``: a CephObjectStore in the Rook cluster (needs block storage
  ``rook-ceph``; the claim validation rejects other combinations).
- ``cloud`` / ``none``: nothing in-cluster.
"""

from __future__ import annotations

from typing import Any

from function import naming, wrap
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.models.common import (
    BlockStorage,
    Cloud,
    ObjectStorage,
    Observability,
    Profile,
)
from function.stack.gpu import gpu_tolerations, taint_toleration_setting

ROOK_NAMESPACE = "rook-ceph"
ROOK_BLOCK_POOL = "ceph-blockpool"
ROOK_BLOCK_STORAGE_CLASS = "rook-ceph-block"
CEPH_OBJECT_STORE = "ollama-models"

LONGHORN_NAMESPACE = "longhorn-system"
LONGHORN_STORAGE_CLASS = "longhorn"

MINIO_OPERATOR_NAMESPACE = naming.MINIO_OPERATOR_NAMESPACE
MINIO_TENANT_NAMESPACE = naming.MINIO_TENANT_NAMESPACE
MINIO_TENANT_NAME = "minio-tenant"
# The seed's credentials Secret name; it must hold ``config.env`` (see module docstring).
MINIO_CONFIG_SECRET = "minio-creds-secret"  # noqa: S105  # a Secret's name, not a secret

# The seed's tenant: 4 servers x 4 volumes x 1Ti.
MINIO_SERVERS = 4
MINIO_VOLUMES_PER_SERVER = 4
MINIO_VOLUME_SIZE = "1Ti"

# Ceph's replicated pools keep three copies, on distinct hosts.
CEPH_REPLICAS = 3


def _ready(ctx: ClusterContext, component: str) -> Gate:
    return Gate(wrap.release_key(ctx.name, component), Need.READY)


def _monitored(ctx: ClusterContext) -> bool:
    """Whether Prometheus Operator CRDs are installed (kube-prometheus-stack)."""
    return ctx.components.observability is not Observability.NONE


# The provisioner behind each of those classes (the wiring tests check it).
CLOUD_CSI_DRIVER = {
    Cloud.AWS: "ebs.csi.aws.com",
    Cloud.GCP: "pd.csi.storage.gke.io",
    Cloud.AZURE: "disk.csi.azure.com",
}
MON_VOLUME_SIZE = "10Gi"


def _ceph_storage(ctx: ClusterContext) -> dict[str, Any]:
    """Where OSDs go: volumes of the cloud's block class, or the nodes' raw devices."""
    rook = ctx.platform.inputs.spec.rook
    common: dict[str, Any] = {
        "store": {"type": "bluestore"},
        "config": {"osdsPerDevice": "1", "databaseSizeMB": "1024"},
    }
    storage_class = ctx.osd_storage_class()
    if storage_class is None:
        # Bare metal: the raw devices of every node, those matching the filter
        # when one is given, else every empty one (Rook never formats a device
        # that holds a filesystem or partitions).
        devices = (
            {"useAllDevices": False, "deviceFilter": rook.device_filter}
            if rook.device_filter
            else {"useAllDevices": True}
        )
        return {"useAllNodes": True, **devices, **common}
    return {
        "useAllNodes": False,
        "useAllDevices": False,
        **common,
        "storageClassDeviceSets": [
            {
                "name": "set1",
                "count": rook.osd_count,
                # Volumes follow OSDs to another node when theirs goes away.
                "portable": True,
                "encrypted": False,
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "resources": {"requests": {"storage": rook.osd_size}},
                            "storageClassName": storage_class,
                            "volumeMode": "Block",
                            "accessModes": ["ReadWriteOnce"],
                        },
                    }
                ],
            }
        ],
    }


def ceph_cluster_spec(ctx: ClusterContext) -> dict[str, Any]:
    """Return the seed's CephCluster spec in the form current Rook takes.

    On clouds the OSDs and mons live on volumes of the cloud's block
    StorageClass (Rook's "cluster on PVC"): nodes of managed pools have no
    spare raw devices. On existing clusters they use the nodes' raw devices.
    """
    spec: dict[str, Any] = {
        "dataDirHostPath": "/var/lib/rook",
        "mon": {"count": 3, "allowMultiplePerNode": False},
        "dashboard": {"enabled": True, "ssl": True},
        "storage": _ceph_storage(ctx),
    }
    storage_class = ctx.osd_storage_class()
    if storage_class is not None:
        spec["mon"]["volumeClaimTemplate"] = {
            "spec": {
                "storageClassName": storage_class,
                "resources": {"requests": {"storage": MON_VOLUME_SIZE}},
            }
        }
    return spec


def ceph_block_pool_spec() -> dict[str, Any]:
    """Return a replicated pool spec: three copies on distinct hosts."""
    return {"failureDomain": "host", "replicated": {"size": CEPH_REPLICAS}}


def _rbd_storage_class_parameters() -> dict[str, str]:
    # Helm replaces lists whole, so the pool entry carries the CSI parameters the
    # chart's default entry would have had.
    provisioner = "rook-csi-rbd-provisioner"
    node = "rook-csi-rbd-node"
    return {
        "imageFormat": "2",
        "imageFeatures": "layering",
        "csi.storage.k8s.io/provisioner-secret-name": provisioner,
        "csi.storage.k8s.io/provisioner-secret-namespace": ROOK_NAMESPACE,
        "csi.storage.k8s.io/controller-expand-secret-name": provisioner,
        "csi.storage.k8s.io/controller-expand-secret-namespace": ROOK_NAMESPACE,
        "csi.storage.k8s.io/controller-publish-secret-name": provisioner,
        "csi.storage.k8s.io/controller-publish-secret-namespace": ROOK_NAMESPACE,
        "csi.storage.k8s.io/node-stage-secret-name": node,
        "csi.storage.k8s.io/node-stage-secret-namespace": ROOK_NAMESPACE,
        "csi.storage.k8s.io/fstype": "ext4",
    }


def rook_cluster_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the ``rook-ceph-cluster`` chart."""
    return {
        "operatorNamespace": ROOK_NAMESPACE,
        "cephClusterSpec": ceph_cluster_spec(ctx),
        "cephBlockPools": [
            {
                "name": ROOK_BLOCK_POOL,
                "spec": ceph_block_pool_spec(),
                "storageClass": {
                    "enabled": True,
                    "name": ROOK_BLOCK_STORAGE_CLASS,
                    # The cloud's own default StorageClass stays the default;
                    # workloads name this class explicitly.
                    "isDefault": False,
                    "reclaimPolicy": "Delete",
                    "allowVolumeExpansion": True,
                    "volumeBindingMode": "Immediate",
                    "parameters": _rbd_storage_class_parameters(),
                },
            }
        ],
        # The chart's default filesystem and object store are not used; the
        # object store, when chosen, is its own CephObjectStore.
        "cephFileSystems": [],
        "cephObjectStores": [],
        "monitoring": {"enabled": _monitored(ctx)},
    }


def ceph_csi_drivers_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of ``ceph-csi-drivers``: Rook's recommended values for Rook v1.20.

    The driver names are the provisioners of Rook's StorageClasses
    (``<operator namespace>.rbd.csi.ceph.com``); the node plugins run on the GPU
    nodes too, where model volumes are mounted.
    """
    return {
        "operatorConfig": {
            "namespace": ROOK_NAMESPACE,
            "driverSpecDefaults": {
                "imageSet": {"name": "rook-csi-operator-image-set-configmap"},
                "nodePlugin": {
                    "priorityClassName": "system-node-critical",
                    "tolerations": gpu_tolerations(ctx),
                },
                "controllerPlugin": {"priorityClassName": "system-cluster-critical"},
            },
        },
        "drivers": {
            "rbd": {"enabled": True, "name": f"{ROOK_NAMESPACE}.rbd.csi.ceph.com"},
            "cephfs": {"enabled": True, "name": f"{ROOK_NAMESPACE}.cephfs.csi.ceph.com"},
            "nfs": {"enabled": False, "name": f"{ROOK_NAMESPACE}.nfs.csi.ceph.com"},
            "nvmeof": {"enabled": False, "name": f"{ROOK_NAMESPACE}.nvmeof.csi.ceph.com"},
        },
    }


def _rook(ctx: ClusterContext) -> list[Composed]:
    monitored = _monitored(ctx)
    operator = wrap.release(
        ctx,
        "rook-ceph",
        chart="rook-ceph",
        namespace=ROOK_NAMESPACE,
        values={"crds": {"enabled": True}, "monitoring": {"enabled": monitored}},
        wait=True,
    )
    # Rook v1.20 leaves the CSI drivers to this chart (its CRDs come with the
    # operator chart's ceph-csi-operator); without it no volume provisions.
    drivers = wrap.release(
        ctx,
        "ceph-csi-drivers",
        chart="ceph-csi-drivers",
        namespace=ROOK_NAMESPACE,
        values=ceph_csi_drivers_values(ctx),
        wait=True,
        after=(_ready(ctx, "rook-ceph"),),
    )
    after = [_ready(ctx, "rook-ceph"), _ready(ctx, "ceph-csi-drivers")]
    if monitored:
        # ServiceMonitors need the Prometheus Operator CRDs.
        after.append(_ready(ctx, "kube-prometheus-stack"))
    cluster = wrap.release(
        ctx,
        "rook-ceph-cluster",
        chart="rook-ceph-cluster",
        namespace=ROOK_NAMESPACE,
        values=rook_cluster_values(ctx),
        wait=True,
        wait_timeout="30m",
        after=after,
    )
    return [operator, drivers, cluster]


def longhorn_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the Longhorn chart.

    Volumes of model pods attach on GPU nodes, so the manager, the driver
    deployer and the components Longhorn creates itself (CSI plugin, instance
    managers: ``taintToleration``) tolerate the GPU pool's taints.

    With ``stackDeletionPolicy: Delete`` the chart's uninstall is confirmed
    (``deletingConfirmationFlag``): Longhorn's pre-delete hook refuses to run
    without it, so the Release would never finish deleting. Otherwise the flag
    stays unset and guards against an uninstall by hand.
    """
    replicas = 1 if ctx.platform.profile is Profile.DEVELOPMENT else CEPH_REPLICAS
    tolerations = gpu_tolerations(ctx)
    return {
        "longhornManager": {"tolerations": tolerations},
        "longhornDriver": {"tolerations": tolerations},
        "persistence": {
            # The StorageClass is always named ``longhorn``; workloads name it
            # explicitly, so the cloud's default class stays the default.
            "defaultClass": False,
            "defaultClassReplicaCount": replicas,
            "reclaimPolicy": "Delete",
        },
        "defaultSettings": {
            "defaultReplicaCount": replicas,
            "taintToleration": taint_toleration_setting(ctx),
            **({"deletingConfirmationFlag": True} if ctx.uninstalls else {}),
        },
    }


def _longhorn(ctx: ClusterContext) -> list[Composed]:
    return [
        wrap.release(
            ctx,
            "longhorn",
            chart="longhorn",
            namespace=LONGHORN_NAMESPACE,
            values=longhorn_values(ctx),
            wait=True,
        )
    ]


def minio_tenant_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the MinIO ``tenant`` chart: the seed's tenant, credentials by Secret name."""
    pool: dict[str, Any] = {
        "name": "pool-0",
        "servers": MINIO_SERVERS,
        "volumesPerServer": MINIO_VOLUMES_PER_SERVER,
        "size": MINIO_VOLUME_SIZE,
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "fsGroupChangePolicy": "OnRootMismatch",
            "runAsNonRoot": True,
        },
        "containerSecurityContext": {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    storage_class = ctx.storage_class()
    if storage_class:
        pool["storageClassName"] = storage_class
    return {
        "tenant": {
            "name": MINIO_TENANT_NAME,
            # An existing Secret: the chart creates none and no key material
            # passes through the function.
            "configSecret": {
                "name": MINIO_CONFIG_SECRET,
                "existingSecret": True,
                "accessKey": "",
                "secretKey": "",
            },
            "pools": [pool],
            # The operator's prometheusOperator mode edits the Prometheus
            # resource (Helm owns it) and fails every reconcile without its
            # own scrape config; MinIO's metrics need a bearer token anyway.
            "prometheusOperator": False,
        }
    }


def _block_storage_release(ctx: ClusterContext) -> str | None:
    if ctx.components.block_storage is BlockStorage.ROOK_CEPH:
        return "rook-ceph-cluster"
    if ctx.components.block_storage is BlockStorage.LONGHORN:
        return "longhorn"
    return None


def _minio(ctx: ClusterContext) -> list[Composed]:
    operator = wrap.release(
        ctx,
        "minio-operator",
        chart="minio-operator",
        namespace=MINIO_OPERATOR_NAMESPACE,
        wait=True,
    )
    after = [_ready(ctx, "minio-operator")]
    block = _block_storage_release(ctx)
    if block:
        # The tenant's volumes come from the block storage's StorageClass.
        after.append(_ready(ctx, block))
    tenant = wrap.release(
        ctx,
        "minio-tenant",
        chart="minio-tenant",
        namespace=MINIO_TENANT_NAMESPACE,
        values=minio_tenant_values(ctx),
        after=after,
    )
    return [operator, tenant]


def ceph_object_store_manifest() -> dict[str, Any]:
    """Build the CephObjectStore for model artefacts."""
    return {
        "apiVersion": "ceph.rook.io/v1",
        "kind": "CephObjectStore",
        "metadata": {"name": CEPH_OBJECT_STORE, "namespace": ROOK_NAMESPACE},
        "spec": {
            "metadataPool": ceph_block_pool_spec(),
            "dataPool": ceph_block_pool_spec(),
            "preservePoolsOnDelete": True,
            "gateway": {"port": 80, "instances": 1},
        },
    }


def _ceph_object_store(ctx: ClusterContext) -> list[Composed]:
    return [
        wrap.k8s_object(
            ctx,
            "ceph-object-store",
            ceph_object_store_manifest(),
            after=(_ready(ctx, "rook-ceph-cluster"),),
        )
    ]


def build(ctx: ClusterContext) -> list[Composed]:
    """Block and object storage Releases and Objects of one cluster ([] when off)."""
    out: list[Composed] = []
    block = ctx.components.block_storage
    if block is BlockStorage.ROOK_CEPH:
        out.extend(_rook(ctx))
    elif block is BlockStorage.LONGHORN:
        out.extend(_longhorn(ctx))
    obj = ctx.components.object_storage
    if obj is ObjectStorage.MINIO:
        out.extend(_minio(ctx))
    elif obj is ObjectStorage.ROOK_CEPH:
        out.extend(_ceph_object_store(ctx))
    return out
