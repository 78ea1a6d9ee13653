"""GPU instance types the function knows, and what one node leaves for pods.

Capacity (vCPUs, memory, NVIDIA GPUs) is the cloud's published shape. What a
pod can request is the node's *allocatable*, which is capacity minus what the
kubelet reserves for the system and its eviction threshold. The reservation
follows GKE's documented formula (the most conservative of the three clouds for
these sizes, and close to EKS's and AKS's):

- memory: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of
  the next 112, 2% above 128 GiB, plus a 100 MiB eviction threshold;
- CPU: 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% of
  every core above four.

Daemon pods (CNI, mesh, GPU operator) take their requests from the same
allocatable; a model that fits with nothing to spare may still wait for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from function.models.common import Cloud

GIB = Decimal(1024**3)
MIB = Decimal(1024**2)
EVICTION_THRESHOLD = 100 * MIB

# (upper bound in GiB, share of that slice) for the memory reservation.
_MEMORY_SLICES = ((4, "0.25"), (8, "0.20"), (16, "0.10"), (128, "0.06"), (None, "0.02"))
# (upper bound in cores, share of that slice) for the CPU reservation.
_CPU_SLICES = ((1, "0.06"), (2, "0.01"), (4, "0.005"), (None, "0.0025"))


@dataclass(frozen=True, slots=True)
class InstanceType:
    """A node shape: capacity as published, allocatable as derived above."""

    name: str
    cloud: Cloud
    vcpus: int
    memory_gib: Decimal
    gpus: int

    @property
    def allocatable_cpu(self) -> Decimal:
        """CPU cores a pod can request."""
        return Decimal(self.vcpus) - _reserved(Decimal(self.vcpus), _CPU_SLICES)

    @property
    def allocatable_memory(self) -> Decimal:
        """Bytes of memory a pod can request."""
        capacity = self.memory_gib * GIB
        reserved = _reserved(self.memory_gib, _MEMORY_SLICES) * GIB + EVICTION_THRESHOLD
        return capacity - reserved


def _reserved(amount: Decimal, slices: tuple[tuple[int | None, str], ...]) -> Decimal:
    total, lower = Decimal(0), Decimal(0)
    for upper, share in slices:
        top = amount if upper is None else min(amount, Decimal(upper))
        if top > lower:
            total += (top - lower) * Decimal(share)
        if upper is None or amount <= upper:
            break
        lower = Decimal(upper)
    return total


def _shape(cloud: Cloud, name: str, vcpus: int, memory_gib: str, gpus: int) -> InstanceType:
    return InstanceType(name, cloud, vcpus, Decimal(memory_gib), gpus)


_A, _G, _Z = Cloud.AWS, Cloud.GCP, Cloud.AZURE

# Every default (function/models/input.py) and the common NVIDIA shapes per cloud.
KNOWN: dict[str, InstanceType] = {
    t.name: t
    for t in (
        # AWS: T4 (g4dn), A10G (g5), L4 (g6), L40S (g6e), A100 (p4d), H100 (p5).
        _shape(_A, "g4dn.xlarge", 4, "16", 1),
        _shape(_A, "g4dn.2xlarge", 8, "32", 1),
        _shape(_A, "g4dn.4xlarge", 16, "64", 1),
        _shape(_A, "g4dn.8xlarge", 32, "128", 1),
        _shape(_A, "g4dn.12xlarge", 48, "192", 4),
        _shape(_A, "g5.xlarge", 4, "16", 1),
        _shape(_A, "g5.2xlarge", 8, "32", 1),
        _shape(_A, "g5.4xlarge", 16, "64", 1),
        _shape(_A, "g5.8xlarge", 32, "128", 1),
        _shape(_A, "g5.12xlarge", 48, "192", 4),
        _shape(_A, "g5.48xlarge", 192, "768", 8),
        _shape(_A, "g6.xlarge", 4, "16", 1),
        _shape(_A, "g6.2xlarge", 8, "32", 1),
        _shape(_A, "g6.4xlarge", 16, "64", 1),
        _shape(_A, "g6.8xlarge", 32, "128", 1),
        _shape(_A, "g6.12xlarge", 48, "192", 4),
        _shape(_A, "g6.48xlarge", 192, "768", 8),
        _shape(_A, "g6e.xlarge", 4, "32", 1),
        _shape(_A, "g6e.2xlarge", 8, "64", 1),
        _shape(_A, "g6e.12xlarge", 48, "384", 4),
        _shape(_A, "p4d.24xlarge", 96, "1152", 8),
        _shape(_A, "p5.48xlarge", 192, "2048", 8),
        # GCP: L4 (g2), A100 40GB (a2-highgpu), A100 80GB (a2-ultragpu), H100 (a3).
        _shape(_G, "g2-standard-4", 4, "16", 1),
        _shape(_G, "g2-standard-8", 8, "32", 1),
        _shape(_G, "g2-standard-12", 12, "48", 1),
        _shape(_G, "g2-standard-16", 16, "64", 1),
        _shape(_G, "g2-standard-24", 24, "96", 2),
        _shape(_G, "g2-standard-32", 32, "128", 1),
        _shape(_G, "g2-standard-48", 48, "192", 4),
        _shape(_G, "g2-standard-96", 96, "384", 8),
        _shape(_G, "a2-highgpu-1g", 12, "85", 1),
        _shape(_G, "a2-highgpu-2g", 24, "170", 2),
        _shape(_G, "a2-highgpu-4g", 48, "340", 4),
        _shape(_G, "a2-highgpu-8g", 96, "680", 8),
        _shape(_G, "a2-ultragpu-1g", 12, "170", 1),
        _shape(_G, "a2-ultragpu-8g", 96, "1360", 8),
        _shape(_G, "a3-highgpu-8g", 208, "1872", 8),
        # Azure: T4 (NCas_T4_v3), A10 (NVadsA10_v5 full GPU), A100 (NC_A100_v4), H100.
        _shape(_Z, "Standard_NC4as_T4_v3", 4, "28", 1),
        _shape(_Z, "Standard_NC8as_T4_v3", 8, "56", 1),
        _shape(_Z, "Standard_NC16as_T4_v3", 16, "110", 1),
        _shape(_Z, "Standard_NC64as_T4_v3", 64, "440", 4),
        _shape(_Z, "Standard_NV36ads_A10_v5", 36, "440", 1),
        _shape(_Z, "Standard_NC24ads_A100_v4", 24, "220", 1),
        _shape(_Z, "Standard_NC48ads_A100_v4", 48, "440", 2),
        _shape(_Z, "Standard_NC96ads_A100_v4", 96, "880", 4),
        _shape(_Z, "Standard_NC40ads_H100_v5", 40, "320", 1),
    )
}


def lookup(name: str) -> InstanceType | None:
    """Return the known instance type ``name``, or None."""
    return KNOWN.get(name)
