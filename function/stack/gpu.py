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
  installation) and runs its own device plugin: no operator.
- ``existing``: nothing can be assumed; the full operator, driver and toolkit
  included.

The operand DaemonSets tolerate the GPU nodes' ``nvidia.com/gpu`` taint (any
value and effect). With the Prometheus Operator installed (observability
``metrics`` or ``full``), the DCGM exporter gets a ServiceMonitor. The operator,
not Helm, creates it once the ServiceMonitor CRD exists, so the Release does not
wait for the observability stack: GPUs never wait for dashboards.
"""

from __future__ import annotations

from typing import Any

from function import naming, wrap
from function.composed import Composed
from function.context import ClusterContext
from function.models.common import Cloud, Observability

GPU_OPERATOR_NAMESPACE = "gpu-operator"

# Clouds whose GPU node image brings the driver and the container toolkit.
IMAGE_HAS_DRIVER = frozenset({Cloud.AWS, Cloud.AZURE})
# Clouds whose GPU nodes need no operator at all.
NO_OPERATOR = frozenset({Cloud.GCP})


def gpu_tolerations() -> list[dict[str, str]]:
    """Tolerate the GPU nodes' taint, whatever its value and effect."""
    return [{"key": naming.GPU_TAINT_KEY, "operator": "Exists"}]


def gpu_operator_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the gpu-operator chart for the cluster's cloud."""
    monitored = ctx.components.observability is not Observability.NONE
    from_image = ctx.cloud in IMAGE_HAS_DRIVER
    return {
        "driver": {"enabled": not from_image},
        "toolkit": {"enabled": not from_image},
        "devicePlugin": {"enabled": True},
        "dcgmExporter": {"enabled": True, "serviceMonitor": {"enabled": monitored}},
        "daemonsets": {"tolerations": gpu_tolerations()},
    }


def build(ctx: ClusterContext) -> list[Composed]:
    """Build the GPU operator Release of one cluster ([] where the cloud manages GPUs)."""
    if ctx.cloud in NO_OPERATOR:
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
