"""GPU memory an Ollama model needs, and the smallest known node that holds a cluster's models.

Pure: no I/O, nothing but the model reference, the claim's requests and the
catalogue in ``function.instances``.

The estimate
============

For a model split over ``g`` GPUs of one node (Ollama splits a model's layers
across every GPU its container is given)::

    GPU memory (GiB) = W + KV + R * g
    W  = P * b / 8 bytes    the weights
    KV = 2 GiB              the KV cache of a 4096-token context
    R  = 1 GiB per GPU      CUDA context and workspace, Ollama's compute graph

``P``, the parameter count, comes from the reference ``[namespace/]name[:tag]``
(the tag is ``latest`` when absent): a size token of the tag, one of the
``-``-separated words such as ``70b``, ``8b``, ``1.5b``, ``0.5b`` or ``135m``
(the form the Ollama library's tags use, e.g. ``llama3.1:70b-instruct-q8_0``),
else one in the last part of the name (``hf.co/.../Llama-3.2-1B-Instruct-GGUF``).
A mixture of experts ``8x7b`` counts every expert in full (56B): an upper bound,
as experts share their attention layers (Mixtral 8x7B has 46.7B). Without a
size, an official library model (no namespace, or ``library/``) whose tag is
``latest`` or only a variant or quantisation word takes the size of the
library's ``latest`` tag from ``FAMILY_DEFAULTS`` (kept short: the families
whose default size is well known). Anything else has no estimate: the caller
warns instead of checking.

``b``, bits per weight, is the quantisation named by a tag word (``q8_0``,
``fp16``, ``q4_0``, ``q5_K_M``, ``q6_K``, case-insensitive), else Ollama's
default, Q4_K_M. The K-quant figures are llama.cpp's measured bits per weight
for Llama 2 7B (its ``quantize`` README: Q4_K_M 4.84, Q5_K_M 5.68, Q6_K 6.56);
the older formats follow from their GGUF block layouts, 32 weights and a 16-bit
scale per block (Q4_0: 18 bytes, 4.5 bits; Q8_0: 34 bytes, 8.5 bits); F16 and
BF16 are 16, F32 32. The Ollama library's download sizes agree: llama3.1:8b
(8.03B parameters) is 4.9 GB and llama3.1:70b (70.6B) 43 GB, 4.84-4.9 bits
each. Older library models default to Q4_0 (4.5 bits), for which the Q4_K_M
figure errs a little high.

``KV`` is the 16-bit cache of 4096 tokens (2 tensors, K and V, per layer, of the
model's key/value width) for the widest common architecture, a 7B model without
grouped-query attention (Llama 2 7B: 32 layers x 4096 x 2 x 2 bytes = 512 KiB a
token); grouped-query models need less (Llama 3.1 8B 0.5 GiB, 70B 1.25 GiB).
``R`` stands for what Ollama adds to weights and cache in the estimate it logs
when it loads a model (the compute graph) and what the CUDA runtime takes on
each GPU. The tag's size is rounded (``70b`` is 70.6B), which the allowances
absorb.

Limits: the 4096-token context is Ollama's default on GPUs below 24 GiB only;
from 24 GiB up Ollama defaults to a longer context (its documentation: 32k up
to 48 GiB, 256k above, capped at the model's own), whose larger cache does not
fit beside a model sized to the last GiB, and Ollama then keeps some layers on
the CPU. Models without grouped-query attention above 7B (Llama 2 13B, Command
R) need a larger cache than allowed for. The figures are for NVIDIA GPUs and
Ollama's llama.cpp engine.

The choice
==========

``choose`` picks the node pool's instance type when the claim names none: the
profile's default when every model placed on the cluster fits one node of it
(so small models keep today's nodes), else the first known instance type of the
cloud, in ``order``, that fits them all. A model *fits* a node when its memory
and CPU requests fit the node's allocatable, and, if it asks for a GPU, the
node has the GPUs it requests and its estimate (for that many GPUs) is at most
their usable memory. On a node sizing chose, a model requests every GPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from function.instances import GIB, GPUS, KNOWN, InstanceType, lookup
from function.models.common import Cloud, Profile, Resources
from function.quantity import parse_quantity

CONTEXT_TOKENS = 4096
KV_CACHE_GIB = Decimal(2)
RUNTIME_GIB_PER_GPU = Decimal(1)
DEFAULT_QUANTISATION = "Q4_K_M"

# Bits per weight by quantisation (the docstring says where each figure comes from).
BITS_PER_WEIGHT: dict[str, Decimal] = {
    name: Decimal(bits)
    for name, bits in (
        ("Q2_K", "3.35"),
        ("Q3_K_S", "3.50"),
        ("Q3_K_M", "3.91"),
        ("Q3_K_L", "4.27"),
        ("Q4_0", "4.5"),
        ("Q4_1", "5.0"),
        ("Q4_K_S", "4.58"),
        ("Q4_K_M", "4.84"),
        ("Q5_0", "5.5"),
        ("Q5_1", "6.0"),
        ("Q5_K_S", "5.52"),
        ("Q5_K_M", "5.68"),
        ("Q6_K", "6.56"),
        ("Q8_0", "8.5"),
        ("F16", "16"),
        ("BF16", "16"),
        ("F32", "32"),
    )
}
_QUANT_ALIASES = {"FP16": "F16", "FP32": "F32"}
# A tag word that names some quantisation, known or not (iq4_xs, q4_k, fp8...).
_QUANT_LIKE = re.compile(r"^(i?q[0-9].*|b?fp?[0-9]+)$")

# Ollama library models: the parameter count of the ``latest`` tag, in billions.
FAMILY_DEFAULTS: dict[str, Decimal] = {
    name: Decimal(size)
    for name, size in (
        ("llama2", "7"),
        ("llama3", "8"),
        ("llama3.1", "8"),
        ("llama3.2", "3"),
        ("mistral", "7"),
        ("mixtral", "56"),  # 8x7b, counted as 8 x 7B (see above)
        ("qwen2.5", "7"),
        ("gemma2", "9"),
        ("phi3", "3.8"),
        ("codellama", "7"),
    )
}
# Tag words that select a variant of the same size (chat or base weights).
_SAME_SIZE_WORDS = frozenset({"latest", "instruct", "chat", "text", "code"})
# A size word: 70b, 1.5b, 135m, or 8x7b (experts x size).
_SIZE = re.compile(r"^(?:([0-9]+)x)?([0-9]+(?:\.[0-9]+)?)([bm])$")
_SCALE = {"b": Decimal(1), "m": Decimal("0.001")}


@dataclass(frozen=True, slots=True)
class Estimate:
    """The GPU memory one replica of a model needs, and what it is made of."""

    model: str
    parameters: Decimal  # billions
    quantisation: str
    bits_per_weight: Decimal

    @property
    def weights_gib(self) -> Decimal:
        """GiB of weights: parameters x bits per weight / 8."""
        return self.parameters * 10**9 * self.bits_per_weight / 8 / GIB

    def gib(self, gpus: int = 1) -> Decimal:
        """GiB of GPU memory the model needs when split over ``gpus`` GPUs."""
        return self.weights_gib + KV_CACHE_GIB + RUNTIME_GIB_PER_GPU * max(gpus, 1)

    def explain(self, gpus: int = 1) -> str:
        """How ``gib(gpus)`` adds up, for messages."""
        size = _parameters_text(self.parameters)
        per_gpu = f"{RUNTIME_GIB_PER_GPU * max(gpus, 1):.1f}Gi runtime on {max(gpus, 1)} GPU"
        return (
            f"{size} parameters at {self.quantisation}, {self.bits_per_weight} bits each: "
            f"{self.weights_gib:.1f}Gi of weights, {KV_CACHE_GIB:.1f}Gi of KV cache for "
            f"{CONTEXT_TOKENS} tokens, {per_gpu}{'s' if gpus > 1 else ''}"
        )


def _parameters_text(billions: Decimal) -> str:
    if billions < 1:
        return f"{(billions * 1000).normalize():f}M"
    return f"{billions.normalize():f}B"


def split_reference(reference: str) -> tuple[str, str]:
    """The name (with any registry and namespace) and the tag of an Ollama model reference."""
    slash, colon = reference.rfind("/"), reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :] or "latest"
    return reference, "latest"


def _size(words: Iterable[str]) -> Decimal | None:
    for word in words:
        match = _SIZE.match(word.lower())
        if match:
            experts, size, unit = match.groups()
            return Decimal(size) * _SCALE[unit] * (int(experts) if experts else 1)
    return None


def _quantisation(words: list[str]) -> str | None:
    """The quantisation a tag names, Ollama's default when it names none, None if unknown."""
    for word in reversed(words):
        upper = word.upper()
        name = _QUANT_ALIASES.get(upper, upper)
        if name in BITS_PER_WEIGHT:
            return name
        if _QUANT_LIKE.match(word.lower()):
            return None  # a quantisation this table does not know
    return DEFAULT_QUANTISATION


def _official_family(name: str) -> str | None:
    parts = name.lower().split("/")
    if len(parts) == 1 or parts[-2] == "library":
        return parts[-1]
    return None


def parameters(reference: str) -> Decimal | None:
    """The parameter count (billions) of an Ollama model reference, when it can be told."""
    name, tag = split_reference(reference)
    words = tag.split("-")
    found = _size(words)
    if found is None:
        found = _size(name.rsplit("/", 1)[-1].split("-"))
    if found is not None:
        return found
    family = _official_family(name)
    if family not in FAMILY_DEFAULTS:
        return None
    same_size = all(w.lower() in _SAME_SIZE_WORDS or _QUANT_LIKE.match(w.lower()) for w in words)
    return FAMILY_DEFAULTS[family] if same_size else None


@lru_cache(maxsize=1024)
def estimate(reference: str) -> Estimate | None:
    """The GPU memory estimate of an Ollama model reference, or None when it cannot be told."""
    count = parameters(reference)
    quantisation = _quantisation(split_reference(reference)[1].split("-"))
    if count is None or quantisation is None:
        return None
    return Estimate(reference, count, quantisation, BITS_PER_WEIGHT[quantisation])


# --- what a node must give -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Need:
    """What one replica of one or more models asks of one node (the largest of each)."""

    memory: Decimal = Decimal(0)  # bytes
    cpu: Decimal = Decimal(0)
    gpu: bool = False
    weights_gib: Decimal | None = None  # the largest estimated weights of a GPU model

    @classmethod
    def of(cls, resources: Resources, reference: str) -> Need:
        """One model's request; ``weights_gib`` is None without a GPU or an estimate."""
        found = estimate(reference) if resources.gpu else None
        return cls(
            memory=parse_quantity(resources.memory),
            cpu=parse_quantity(resources.cpu),
            gpu=resources.gpu,
            weights_gib=found.weights_gib if found else None,
        )

    def __or__(self, other: Need) -> Need:
        """The envelope of two needs: a node that gives it holds either."""
        weights = [w for w in (self.weights_gib, other.weights_gib) if w is not None]
        return Need(
            memory=max(self.memory, other.memory),
            cpu=max(self.cpu, other.cpu),
            gpu=self.gpu or other.gpu,
            weights_gib=max(weights) if weights else None,
        )

    def gpu_gib(self, gpus: int) -> Decimal | None:
        """GiB of GPU memory needed when split over ``gpus`` GPUs (None: not estimated)."""
        if not self.gpu or self.weights_gib is None:
            return None
        return self.weights_gib + KV_CACHE_GIB + RUNTIME_GIB_PER_GPU * max(gpus, 1)


def envelope(needs: Iterable[Need]) -> Need:
    """One need a node must give for every one of ``needs`` to fit it."""
    out = Need()
    for need in needs:
        out = out | need
    return out


def fits(need: Need, shape: InstanceType, gpus: int) -> bool:
    """Whether ``need`` fits one node of ``shape`` when each model requests ``gpus`` GPUs."""
    if need.memory > shape.allocatable_memory or need.cpu > shape.allocatable_cpu:
        return False
    if not need.gpu:
        return True
    if gpus > shape.gpus:
        return False
    gib = need.gpu_gib(gpus)
    return gib is None or gib <= shape.gpu_memory(gpus)


# --- the choice ------------------------------------------------------------------------------

_GPU_RANK = {gpu.name: rank for rank, gpu in enumerate(GPUS)}


def order(shape: InstanceType) -> tuple[Decimal, int, int, Decimal, str]:
    """Sizing's sort key, smallest first.

    Usable GPU memory of the whole node, then the cheaper GPU (T4, L4, A10G, A10,
    L40S, A100 40GB, A100 80GB, H100 NVL, H100 80GB), then vCPUs, then memory,
    then the name.
    """
    rank = _GPU_RANK[shape.gpu.name]
    return (shape.gpu_memory(), rank, shape.vcpus, shape.memory_gib, shape.name)


@dataclass(frozen=True, slots=True)
class Default:
    """The profile's node pool defaults (function input ``NodePoolDefaults``)."""

    instance_type: str
    accelerator_type: str
    accelerator_count: int


@dataclass(frozen=True, slots=True)
class Choice:
    """The node pool's instance type and accelerator.

    ``fits`` is False when no known instance type holds every model, and
    ``instance`` is then the largest tried.
    """

    instance: InstanceType
    accelerator_type: str
    accelerator_count: int
    fits: bool = True


def candidates(
    cloud: Cloud,
    profile: Profile,
    default: InstanceType,
    accelerator: tuple[str, int] | None = None,
) -> list[InstanceType]:
    """The instance types sizing may choose on ``cloud``, in ``order``.

    Every selectable known type of the cloud; under the production profile none
    with less usable GPU memory than the default node (production keeps its
    headroom: on AWS and GCP no T4 in place of the default L4). A claim's
    ``gpuNodePool.accelerator`` keeps the types with at least its ``count`` GPUs
    and, when its ``type`` names a GPU the cloud's table has, that GPU only.
    """
    out = [t for t in KNOWN.values() if t.cloud is cloud and t.selectable]
    if profile is Profile.PRODUCTION:
        out = [t for t in out if t.gpu_memory() >= default.gpu_memory()]
    if accelerator is not None:
        out = [t for t in out if _matches(t, cloud, accelerator)]
    return sorted(out, key=order)


def _matches(shape: InstanceType, cloud: Cloud, accelerator: tuple[str, int]) -> bool:
    kind, count = accelerator
    known = {t.gpu.accelerator for t in KNOWN.values() if t.cloud is cloud}
    return shape.gpus >= count and (kind not in known or shape.gpu.accelerator == kind)


def choose(
    needs: Iterable[Need],
    cloud: Cloud,
    profile: Profile,
    default: Default,
    accelerator: tuple[str, int] | None = None,
) -> Choice | None:
    """The node pool for a cluster whose claim names no instance type (see the module doc).

    ``accelerator`` is the claim's ``gpuNodePool.accelerator`` (type, count), kept
    as is; without it the pool takes the chosen type's GPU and all of its GPUs
    (the default's own accelerator when the default is kept). None when the
    default instance type is not in the table (a Composition's own default): the
    caller keeps it, unsized.
    """
    return _choose(envelope(needs), cloud, profile, default, accelerator)


@lru_cache(maxsize=1024)  # a few per cluster: its models' envelope and the pool's defaults
def _choose(
    need: Need,
    cloud: Cloud,
    profile: Profile,
    default: Default,
    accelerator: tuple[str, int] | None,
) -> Choice | None:
    """``choose`` for the envelope ``need`` of the cluster's models."""
    shape = lookup(default.instance_type)
    if shape is None or shape.cloud is not cloud:
        return None
    if accelerator is None:
        if fits(need, shape, default.accelerator_count):
            return Choice(shape, default.accelerator_type, default.accelerator_count)
    elif _matches(shape, cloud, accelerator) and fits(need, shape, accelerator[1]):
        return Choice(shape, *accelerator)
    tried = candidates(cloud, profile, shape, accelerator)
    if not tried:
        return None
    for option in tried:
        count = accelerator[1] if accelerator else option.gpus
        if fits(need, option, count):
            return _choice(option, accelerator)
    return _choice(tried[-1], accelerator, fits=False)


def _choice(
    shape: InstanceType, accelerator: tuple[str, int] | None, *, fits: bool = True
) -> Choice:
    if accelerator is not None:
        return Choice(shape, *accelerator, fits=fits)
    return Choice(shape, shape.gpu.accelerator, shape.gpus, fits=fits)
