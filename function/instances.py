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

GPU memory is NVIDIA's published figure per GPU (T4 16 GB, L4, A10G and A10 24 GB,
L40S 48 GB, A100 40 or 80 GB, H100 80 GB, H100 NVL 94 GB; binary gigabytes). What a
model can use is less on GDDR6 parts: with ECC on (the clouds' default) the driver
keeps 1/16 of it for the ECC bits (NVIDIA's CUDA C++ Best Practices Guide: "the
available DRAM is reduced by 6.25%"), so a T4 shows 15 GiB, an L4 or A10G 22.5 and
an L40S 45; HBM parts (A100, H100) keep ECC beside the data and lose nothing.

Shapes are the clouds' published tables: AWS "Accelerated computing instances"
(G4dn, G5, G6, G6e, P4d/P4de, P5), Google Cloud "GPU machine types" (G2, A2
Standard and Ultra, A3 High) and Azure's size pages (NCasT4_v3, NVadsA10 v5,
NC A100 v4, ND A100 v4, NCads H100 v5, ND H100 v5). ``selectable`` is False for
the NVadsA10 v5 sizes: graphics VMs sold with a GRID licence for virtual desktops,
kept for the fit check of a claim that names one, never chosen by sizing.
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
class Gpu:
    """One NVIDIA GPU model: its published memory, and the accelerator name pools carry.

    ``accelerator`` is GKE's accelerator type where GKE has the GPU (the
    node pool's ``guestAccelerator``); elsewhere the same style of name, which
    the pool carries for information only (EKS and AKS take the GPU from the
    instance type).
    """

    name: str
    memory_gib: Decimal
    gddr: bool
    accelerator: str

    @property
    def usable_gib(self) -> Decimal:
        """GiB of one GPU a process can allocate (ECC takes 1/16 of GDDR6)."""
        return self.memory_gib * 15 / 16 if self.gddr else self.memory_gib


def _gpu(name: str, memory_gib: int, *, gddr: bool, accelerator: str) -> Gpu:
    return Gpu(name, Decimal(memory_gib), gddr, accelerator)


# Cheapest first: at equal GPU memory, sizing prefers the earlier GPU (function.sizing).
T4 = _gpu("T4", 16, gddr=True, accelerator="nvidia-tesla-t4")
L4 = _gpu("L4", 24, gddr=True, accelerator="nvidia-l4")
A10G = _gpu("A10G", 24, gddr=True, accelerator="nvidia-a10g")
A10 = _gpu("A10", 24, gddr=True, accelerator="nvidia-a10")
L40S = _gpu("L40S", 48, gddr=True, accelerator="nvidia-l40s")
A100_40 = _gpu("A100 40GB", 40, gddr=False, accelerator="nvidia-tesla-a100")
A100_80 = _gpu("A100 80GB", 80, gddr=False, accelerator="nvidia-a100-80gb")
H100_NVL = _gpu("H100 NVL", 94, gddr=False, accelerator="nvidia-h100-nvl")
H100 = _gpu("H100 80GB", 80, gddr=False, accelerator="nvidia-h100-80gb")
GPUS: tuple[Gpu, ...] = (T4, L4, A10G, A10, L40S, A100_40, A100_80, H100_NVL, H100)


@dataclass(frozen=True, slots=True)
class InstanceType:
    """A node shape: capacity as published, allocatable as derived above."""

    name: str
    cloud: Cloud
    vcpus: int
    memory_gib: Decimal
    gpus: int
    gpu: Gpu
    selectable: bool = True

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

    def gpu_memory(self, count: int | None = None) -> Decimal:
        """GiB of GPU memory usable on ``count`` of the node's GPUs (all of them by default)."""
        used = self.gpus if count is None else min(count, self.gpus)
        return self.gpu.usable_gib * used

    def describe(self) -> str:
        """The node's GPUs, e.g. ``4 x L4``."""
        return f"{self.gpus} x {self.gpu.name}"


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


def _shape(
    cloud: Cloud,
    name: str,
    vcpus: int,
    memory_gib: str,
    gpus_and_gpu: tuple[int, Gpu],
    *,
    selectable: bool = True,
) -> InstanceType:
    gpus, gpu = gpus_and_gpu
    return InstanceType(name, cloud, vcpus, Decimal(memory_gib), gpus, gpu, selectable)


_A, _G, _Z = Cloud.AWS, Cloud.GCP, Cloud.AZURE

# Every default (function/models/input.py) and the common NVIDIA shapes per cloud,
# each with (vCPUs, memory GiB, GPUs, GPU) as published.
KNOWN: dict[str, InstanceType] = {
    t.name: t
    for t in (
        # AWS: T4 (g4dn), A10G (g5), L4 (g6), L40S (g6e), A100 40/80 GB (p4d/p4de), H100 (p5).
        _shape(_A, "g4dn.xlarge", 4, "16", (1, T4)),
        _shape(_A, "g4dn.2xlarge", 8, "32", (1, T4)),
        _shape(_A, "g4dn.4xlarge", 16, "64", (1, T4)),
        _shape(_A, "g4dn.8xlarge", 32, "128", (1, T4)),
        _shape(_A, "g4dn.16xlarge", 64, "256", (1, T4)),
        _shape(_A, "g4dn.12xlarge", 48, "192", (4, T4)),
        _shape(_A, "g5.xlarge", 4, "16", (1, A10G)),
        _shape(_A, "g5.2xlarge", 8, "32", (1, A10G)),
        _shape(_A, "g5.4xlarge", 16, "64", (1, A10G)),
        _shape(_A, "g5.8xlarge", 32, "128", (1, A10G)),
        _shape(_A, "g5.16xlarge", 64, "256", (1, A10G)),
        _shape(_A, "g5.12xlarge", 48, "192", (4, A10G)),
        _shape(_A, "g5.24xlarge", 96, "384", (4, A10G)),
        _shape(_A, "g5.48xlarge", 192, "768", (8, A10G)),
        _shape(_A, "g6.xlarge", 4, "16", (1, L4)),
        _shape(_A, "g6.2xlarge", 8, "32", (1, L4)),
        _shape(_A, "g6.4xlarge", 16, "64", (1, L4)),
        _shape(_A, "g6.8xlarge", 32, "128", (1, L4)),
        _shape(_A, "g6.16xlarge", 64, "256", (1, L4)),
        _shape(_A, "g6.12xlarge", 48, "192", (4, L4)),
        _shape(_A, "g6.24xlarge", 96, "384", (4, L4)),
        _shape(_A, "g6.48xlarge", 192, "768", (8, L4)),
        _shape(_A, "g6e.xlarge", 4, "32", (1, L40S)),
        _shape(_A, "g6e.2xlarge", 8, "64", (1, L40S)),
        _shape(_A, "g6e.4xlarge", 16, "128", (1, L40S)),
        _shape(_A, "g6e.8xlarge", 32, "256", (1, L40S)),
        _shape(_A, "g6e.16xlarge", 64, "512", (1, L40S)),
        _shape(_A, "g6e.12xlarge", 48, "384", (4, L40S)),
        _shape(_A, "g6e.24xlarge", 96, "768", (4, L40S)),
        _shape(_A, "g6e.48xlarge", 192, "1536", (8, L40S)),
        _shape(_A, "p4d.24xlarge", 96, "1152", (8, A100_40)),
        _shape(_A, "p4de.24xlarge", 96, "1152", (8, A100_80)),
        _shape(_A, "p5.48xlarge", 192, "2048", (8, H100)),
        # GCP: L4 (g2), A100 40GB (a2-highgpu, a2-megagpu), A100 80GB (a2-ultragpu), H100 (a3).
        _shape(_G, "g2-standard-4", 4, "16", (1, L4)),
        _shape(_G, "g2-standard-8", 8, "32", (1, L4)),
        _shape(_G, "g2-standard-12", 12, "48", (1, L4)),
        _shape(_G, "g2-standard-16", 16, "64", (1, L4)),
        _shape(_G, "g2-standard-24", 24, "96", (2, L4)),
        _shape(_G, "g2-standard-32", 32, "128", (1, L4)),
        _shape(_G, "g2-standard-48", 48, "192", (4, L4)),
        _shape(_G, "g2-standard-96", 96, "384", (8, L4)),
        _shape(_G, "a2-highgpu-1g", 12, "85", (1, A100_40)),
        _shape(_G, "a2-highgpu-2g", 24, "170", (2, A100_40)),
        _shape(_G, "a2-highgpu-4g", 48, "340", (4, A100_40)),
        _shape(_G, "a2-highgpu-8g", 96, "680", (8, A100_40)),
        _shape(_G, "a2-megagpu-16g", 96, "1360", (16, A100_40)),
        _shape(_G, "a2-ultragpu-1g", 12, "170", (1, A100_80)),
        _shape(_G, "a2-ultragpu-2g", 24, "340", (2, A100_80)),
        _shape(_G, "a2-ultragpu-4g", 48, "680", (4, A100_80)),
        _shape(_G, "a2-ultragpu-8g", 96, "1360", (8, A100_80)),
        _shape(_G, "a3-highgpu-8g", 208, "1872", (8, H100)),
        # Azure: T4 (NCas_T4_v3), A10 (NVadsA10_v5, whole GPUs only), A100 80GB (NC A100 v4),
        # A100 40/80 GB (ND A100 v4), H100 NVL (NCads H100 v5), H100 (ND H100 v5).
        _shape(_Z, "Standard_NC4as_T4_v3", 4, "28", (1, T4)),
        _shape(_Z, "Standard_NC8as_T4_v3", 8, "56", (1, T4)),
        _shape(_Z, "Standard_NC16as_T4_v3", 16, "110", (1, T4)),
        _shape(_Z, "Standard_NC64as_T4_v3", 64, "440", (4, T4)),
        _shape(_Z, "Standard_NV36ads_A10_v5", 36, "440", (1, A10), selectable=False),
        _shape(_Z, "Standard_NV72ads_A10_v5", 72, "880", (2, A10), selectable=False),
        _shape(_Z, "Standard_NC24ads_A100_v4", 24, "220", (1, A100_80)),
        _shape(_Z, "Standard_NC48ads_A100_v4", 48, "440", (2, A100_80)),
        _shape(_Z, "Standard_NC96ads_A100_v4", 96, "880", (4, A100_80)),
        _shape(_Z, "Standard_ND96asr_v4", 96, "900", (8, A100_40)),
        _shape(_Z, "Standard_ND96amsr_A100_v4", 96, "1900", (8, A100_80)),
        _shape(_Z, "Standard_NC40ads_H100_v5", 40, "320", (1, H100_NVL)),
        _shape(_Z, "Standard_NC80adis_H100_v5", 80, "640", (2, H100_NVL)),
        _shape(_Z, "Standard_ND96isr_H100_v5", 96, "1900", (8, H100)),
    )
}


def lookup(name: str) -> InstanceType | None:
    """Return the known instance type ``name``, or None."""
    return KNOWN.get(name)
