"""An independent brute force over the catalogue: which instance type should sizing choose?

Written from the documented rules (README "GPU node pool defaults", the
``function.sizing`` docstring), not from the code's loop: every known type of
the cloud is tried, the fitting ones compared with ``min`` under the documented
order. GPU memory needs are computed here from a model's parameter count and
bits per weight, given by the caller, so the estimator's parsing is not reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from function.instances import KNOWN, InstanceType
from function.models.common import Cloud, Profile
from function.models.input import DEFAULT_NODE_POOLS
from function.quantity import parse_quantity

GIB = Decimal(2**30)
# GDDR6 GPUs lose 1/16 of their memory to ECC; HBM ones nothing.
GDDR6 = {"T4", "L4", "A10G", "A10", "L40S"}
# Cheapest first: the order's tie-break at equal GPU memory.
COST_ORDER = ["T4", "L4", "A10G", "A10", "L40S", "A100 40GB", "A100 80GB", "H100 NVL", "H100 80GB"]
# Bits per weight by tag suffix ("" is Ollama's default, Q4_K_M).
BITS = {
    "": Decimal("4.84"),
    "q4_0": Decimal("4.5"),
    "q4_K_M": Decimal("4.84"),
    "q5_K_M": Decimal("5.68"),
    "q6_K": Decimal("6.56"),
    "q8_0": Decimal("8.5"),
    "fp16": Decimal(16),
}


@dataclass(frozen=True)
class Model:
    """One model replica: its requests, and its size when it asks for a GPU."""

    memory: str
    cpu: str
    gpu: bool = True
    billions: Decimal | None = None  # None: no estimate
    quant: str = ""

    def tag(self) -> str:
        """An Ollama reference with this size and quantisation."""
        if self.billions is None:
            return "phi3:medium"  # a tag without a size the estimator knows
        size = f"{self.billions.normalize():f}b"
        return f"llama3.1:{size}-instruct-{self.quant}" if self.quant else f"llama3.1:{size}"

    def claim(self, name: str) -> dict[str, object]:
        """The claim's ``spec.models[]`` entry."""
        resources = {"memory": self.memory, "cpu": self.cpu, "gpu": self.gpu}
        return {"name": name, "model": self.tag(), "resources": resources}

    def gpu_gib(self, gpus: int) -> Decimal | None:
        """Weights + 2 GiB KV cache + 1 GiB per GPU."""
        if not self.gpu or self.billions is None:
            return None
        weights = self.billions * 10**9 * BITS[self.quant] / 8 / GIB
        return weights + 2 + gpus


def usable_gib(shape: InstanceType, gpus: int) -> Decimal:
    """Memory of ``gpus`` of the node's GPUs a model can use."""
    share = Decimal(15) / 16 if shape.gpu.name in GDDR6 else Decimal(1)
    return shape.gpu.memory_gib * share * gpus


def holds(shape: InstanceType, models: list[Model], gpus: int) -> bool:
    """Every model fits one node of ``shape`` requesting ``gpus`` GPUs."""
    for m in models:
        if parse_quantity(m.memory) > shape.allocatable_memory:
            return False
        if parse_quantity(m.cpu) > shape.allocatable_cpu:
            return False
        if m.gpu and gpus > shape.gpus:
            return False
        need = m.gpu_gib(gpus)
        if need is not None and need > usable_gib(shape, gpus):
            return False
    return True


def key(shape: InstanceType) -> tuple[Decimal, int, int, Decimal, str]:
    """The documented order: node GPU memory, cheaper GPU, vCPUs, memory, name."""
    return (
        usable_gib(shape, shape.gpus),
        COST_ORDER.index(shape.gpu.name),
        shape.vcpus,
        shape.memory_gib,
        shape.name,
    )


def pool(cloud: Cloud, profile: Profile) -> list[InstanceType]:
    """What sizing may choose from: selectable types of the cloud (production: no less
    GPU memory than the default node)."""
    default = KNOWN[DEFAULT_NODE_POOLS[(cloud, profile)][0]]
    out = [t for t in KNOWN.values() if t.cloud is cloud and t.selectable]
    if profile is Profile.PRODUCTION:
        out = [t for t in out if usable_gib(t, t.gpus) >= usable_gib(default, default.gpus)]
    return out


def expected(cloud: Cloud, profile: Profile, models: list[Model]) -> tuple[str, int, bool]:
    """(instance type, GPUs per model, whether it holds every model)."""
    name, _accelerator, count = DEFAULT_NODE_POOLS[(cloud, profile)]
    if holds(KNOWN[name], models, count):
        return name, count, True
    options = pool(cloud, profile)
    fitting = [t for t in options if holds(t, models, t.gpus)]
    if fitting:
        best = min(fitting, key=key)
        return best.name, best.gpus, True
    largest = max(options, key=key)
    return largest.name, largest.gpus, False
