"""The NVIDIA GPU operator, where the node image does not bring the GPU stack.

What each cloud's GPU nodes already have, and so what the operator adds:

- ``aws``: the EKS AL2023 NVIDIA AMI ships the NVIDIA driver and the NVIDIA
  container toolkit (containerd configured with the NVIDIA runtime), but no
  Kubernetes device plugin. The operator runs without its driver and toolkit
  DaemonSets and brings the device plugin, GPU feature discovery and the DCGM
  exporter.
- ``azure``: AKS GPU node pools with ``gpuDriver: Install`` ship the driver and
  the container toolkit; same as AWS.
- ``gcp``: GKE installs the driver (the node pool's managed driver
  installation) and runs its own device plugin: no operator; the DCGM exporter
  comes from ``gpumetrics`` instead.
- ``existing``: nothing can be assumed; the full operator, driver and toolkit
  included. On K3s the toolkit is pointed at K3s's own containerd (its config
  under ``/var/lib/rancher/k3s`` and its socket under ``/run/k3s``), read from
  the file rather than from a ``containerd`` binary K3s does not put on the path.

Only where needed: a cluster none of whose models asks for a GPU gets no
operator (and its GPU pool's default minimum drops to zero, see ``plan``).

The operand DaemonSets and the Node Feature Discovery worker tolerate every
taint the composed GPU pool carries: ``nvidia.com/gpu`` (any value and effect)
and, on AKS spot pools, ``kubernetes.azure.com/scalesetpriority``. With the
Prometheus Operator installed (observability ``metrics`` or ``full``), the DCGM
exporter gets a ServiceMonitor. The operator, not Helm, creates it once the
ServiceMonitor CRD exists, so the Release does not wait for the observability
stack: GPUs never wait for dashboards.
"""

from __future__ import annotations

from typing import Any

from function import naming, wrap
from function.composed import Composed
from function.context import ClusterContext
from function.models.common import Cloud, Distribution, Observability

GPU_OPERATOR_NAMESPACE = "gpu-operator"

# Clouds whose GPU node image brings the driver and the container toolkit.
IMAGE_HAS_DRIVER = frozenset({Cloud.AWS, Cloud.AZURE})
# Clouds whose GPU nodes need no operator at all.
NO_OPERATOR = frozenset({Cloud.GCP})


# Taints a cloud puts on spot nodes by itself (AKS: every spot pool).
SPOT_TAINT_KEYS = {Cloud.AZURE: "kubernetes.azure.com/scalesetpriority"}


def gpu_taint_keys(ctx: ClusterContext | None = None) -> list[str]:
    """Keys of every taint the cluster's composed GPU pool carries."""
    keys = [naming.GPU_TAINT_KEY]
    pool = ctx.node_pool if ctx is not None else None
    if ctx is not None and pool is not None and pool.spot and ctx.cloud in SPOT_TAINT_KEYS:
        keys.append(SPOT_TAINT_KEYS[ctx.cloud])
    return keys


def gpu_tolerations(ctx: ClusterContext | None = None) -> list[dict[str, str]]:
    """Tolerate every taint of the GPU pool, whatever its value and effect."""
    return [{"key": key, "operator": "Exists"} for key in gpu_taint_keys(ctx)]


def taint_toleration_setting(ctx: ClusterContext) -> str:
    """The GPU pool's taints in the ``key:effect;...`` form Longhorn's settings take."""
    return ";".join(f"{key}:NoSchedule" for key in gpu_taint_keys(ctx))


# K3s's embedded containerd (NVIDIA's instructions for K3s).
K3S_CONTAINERD_CONFIG = "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
K3S_CONTAINERD_SOCKET = "/run/k3s/containerd/containerd.sock"


def toolkit_values(ctx: ClusterContext) -> dict[str, Any]:
    """The container toolkit: off where the image has it, K3s's containerd paths on K3s."""
    if ctx.cloud in IMAGE_HAS_DRIVER:
        return {"enabled": False}
    if ctx.distribution is Distribution.K3S:
        return {
            "enabled": True,
            "env": [
                {"name": "CONTAINERD_CONFIG", "value": K3S_CONTAINERD_CONFIG},
                {"name": "CONTAINERD_SOCKET", "value": K3S_CONTAINERD_SOCKET},
                {"name": "RUNTIME_CONFIG_SOURCE", "value": "file"},
            ],
        }
    return {"enabled": True}


def gpu_operator_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the gpu-operator chart for the cluster's cloud."""
    monitored = ctx.components.observability is not Observability.NONE
    from_image = ctx.cloud in IMAGE_HAS_DRIVER
    return {
        "driver": {"enabled": not from_image},
        "toolkit": toolkit_values(ctx),
        "devicePlugin": {"enabled": True},
        "dcgmExporter": {"enabled": True, "serviceMonitor": {"enabled": monitored}},
        "daemonsets": {"tolerations": gpu_tolerations(ctx)},
        # Node Feature Discovery labels the GPU nodes the operands select.
        "node-feature-discovery": {"worker": {"tolerations": gpu_tolerations(ctx)}},
    }


def build(ctx: ClusterContext) -> list[Composed]:
    """Build the GPU operator Release of one cluster.

    None where the cloud manages GPUs, and none where no model on the cluster asks
    for a GPU.
    """
    if ctx.cloud in NO_OPERATOR or not ctx.gpu_models:
        return []
    return [
        wrap.release(
            ctx,
            "gpu-operator",
            chart="gpu-operator",
            namespace=GPU_OPERATOR_NAMESPACE,
            values=gpu_operator_values(ctx),
            wait=True,
        )
    ]
