"""Fit check at render time: does one replica of a model fit one node of its pool?

A model whose memory, CPU or GPU request exceeds what one node of its target
cluster's pool can give (``instances``: allocatable, not capacity) would stay
Pending forever, so it is refused with a Fatal naming the model's field and the
instance type. So is a GPU model whose estimated GPU memory (``sizing``: from
its Ollama tag) exceeds the memory of the GPUs it gets on that node, naming
``spec.models[i].model``; Ollama would otherwise keep part of it on the CPU. A
pool sized by the function (no ``gpuNodePool.instanceType``) that no known type
can hold names the largest type tried. An instance type the table does not
know is not refused: it gets a Warning result saying the check could not be
made, and so does a GPU model whose tag gives no estimate. Existing clusters
bring their own nodes and are not checked. A standalone OllamaFleet is checked
the same way when its ``target.instanceType`` names the nodes (the platform
sets it on the fleets it composes).
"""

from __future__ import annotations

from collections.abc import Iterator

from function import sizing
from function.context import NodePool, models_on, resolve_node_pool
from function.errors import ClaimError
from function.instances import GIB, InstanceType, lookup
from function.models.common import Resources
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.models.platform import ClusterSpec, ModelSpec, PlatformSpec
from function.quantity import parse_quantity


def _pools(
    spec: PlatformSpec, inputs: FunctionInput
) -> Iterator[tuple[int, ModelSpec, ClusterSpec, NodePool]]:
    for cluster in spec.clusters:
        pool = resolve_node_pool(spec, cluster, inputs)
        if pool is None:
            continue
        for i, model in models_on(spec, cluster):
            yield i, model, cluster, pool


def _gib(value: object) -> str:
    return f"{value:.1f}Gi"


# The fields a user changes to make a model fit: the platform's pool, or a fleet's target.
PLATFORM_FIELDS = ("gpuNodePool.instanceType", "gpuNodePool.accelerator.count")
FLEET_FIELDS = ("spec.target.instanceType", "spec.target.acceleratorCount")


def _too_large(
    path: str,
    request: str,
    where: str,
    allocatable: str,
    type_field: str,
    *,
    largest: str | None = None,
) -> ClaimError:
    """Return the error for a memory or CPU request above what one node can give.

    ``largest`` says why no larger type is offered: the pool was sized and this
    is the largest type the sizing knows.
    """
    if largest is None:
        advice = f"request less or choose a larger {type_field}"
    else:
        advice = f"{largest}; request less or name a type in {type_field}"
    return ClaimError(path, f"{request} does not fit {where} ({allocatable} allocatable); {advice}")


def _model_errors(
    path: str,
    resources: Resources,
    instance_type: str,
    accelerator_count: int,
    *,
    where: str,
    fields: tuple[str, str],
    model: tuple[str, str] | None = None,
    largest: bool = False,
) -> list[ClaimError]:
    """What of ``resources`` cannot fit one node of ``instance_type`` ([] when unknown).

    ``model`` is (field path, Ollama reference) of the model, for the GPU memory
    check; ``largest`` says the type is the largest the sizing tried, so the
    advice is to ask for less or name a type rather than to choose a larger one.
    """
    type_field, count_field = fields
    shape = lookup(instance_type)
    if shape is None:
        return []
    sized = (
        f"{instance_type} is the largest {shape.cloud.value} instance type the sizing knows"
        if largest
        else None
    )
    out: list[ClaimError] = []
    memory = parse_quantity(resources.memory)
    if memory > shape.allocatable_memory:
        allocatable = _gib(shape.allocatable_memory / GIB)
        out.append(
            _too_large(
                f"{path}.memory", resources.memory, where, allocatable, type_field, largest=sized
            )
        )
    cpu = parse_quantity(resources.cpu)
    if cpu > shape.allocatable_cpu:
        allocatable = f"{shape.allocatable_cpu.normalize()} CPUs"
        out.append(
            _too_large(f"{path}.cpu", resources.cpu, where, allocatable, type_field, largest=sized)
        )
    if resources.gpu and accelerator_count > shape.gpus:
        out.append(
            ClaimError(
                f"{path}.gpu",
                f"the model asks for {accelerator_count} GPUs ({count_field}) but "
                f"{where} has {shape.gpus}; lower {count_field} or choose a larger "
                f"{type_field}",
            )
        )
    elif resources.gpu and model is not None:
        out += _gpu_memory_errors(
            model, shape, accelerator_count, where=where, fields=fields, largest=sized
        )
    return out


def _gpu_memory_errors(
    model: tuple[str, str],
    shape: InstanceType,
    gpus: int,
    *,
    where: str,
    fields: tuple[str, str],
    largest: str | None,
) -> list[ClaimError]:
    """The model's estimated GPU memory against what its ``gpus`` GPUs of ``shape`` give."""
    path, reference = model
    found = sizing.estimate(reference)
    if found is None:
        return []
    need, have = found.gib(gpus), shape.gpu_memory(gpus)
    if need <= have:
        return []
    type_field, count_field = fields
    more = f" or more of its GPUs ({count_field})" if gpus < shape.gpus else ""
    if largest is None:
        advice = f"choose a larger {type_field}{more}, or a smaller model or quantisation"
    else:
        advice = (
            f"{largest}; choose a smaller model or quantisation, or name a type in {type_field}"
        )
    return [
        ClaimError(
            path,
            f"{reference} needs about {_gib(need)} of GPU memory ({found.explain(gpus)}) but "
            f"{where} gives it {_gib(have)} ({gpus} x {shape.gpu.name}); {advice}",
        )
    ]


def errors(spec: PlatformSpec, inputs: FunctionInput) -> list[ClaimError]:
    """Models that cannot fit one node of a target pool whose instance type is known."""
    out: list[ClaimError] = []
    for i, model, cluster, pool in _pools(spec, inputs):
        where = f"one {pool.instance_type} node of cluster {cluster.name}"
        out += _model_errors(
            f"spec.models[{i}].resources",
            model.resources,
            pool.instance_type,
            pool.accelerator_count,
            where=where,
            fields=PLATFORM_FIELDS,
            model=(f"spec.models[{i}].model", model.model),
            largest=pool.sized and not pool.fits,
        )
    return out


def fleet_errors(spec: FleetSpec) -> list[ClaimError]:
    """The same check for a fleet whose target names its instance type."""
    instance_type = spec.target.instance_type
    if instance_type is None:
        return []
    where = f"one {instance_type} node (spec.target.instanceType)"
    return _model_errors(
        "spec.resources",
        spec.resources,
        instance_type,
        spec.target.accelerator_count,
        where=where,
        fields=FLEET_FIELDS,
        model=("spec.model", spec.model),
    )


def _no_estimate(reference: str) -> str:
    return (
        f"cannot estimate the GPU memory {reference} needs (its tag names no parameter count "
        "such as :8b, and it is no library model whose default size is known)"
    )


def fleet_warnings(spec: FleetSpec) -> list[str]:
    """What the fleet's fit check could not check.

    A message when the fleet's instance type is not in the table (no check was
    made), or when the model's GPU memory cannot be estimated for a type that is.
    """
    instance_type = spec.target.instance_type
    if instance_type is None:
        return []
    if lookup(instance_type) is not None:
        if spec.resources.gpu and sizing.estimate(spec.model) is None:
            return [f"spec.model: {_no_estimate(spec.model)}; its GPU memory was not checked"]
        return []
    message = (
        f"spec.target.instanceType: {instance_type} is not in the fit table; cannot check "
        f"that {spec.resources.memory} memory and {spec.resources.cpu} CPU fit one node"
    )
    return [message]


def warnings(spec: PlatformSpec, inputs: FunctionInput) -> list[str]:
    """What the fit check could not check.

    One message per (model, cluster) whose instance type the table does not know,
    and one per GPU model on a cloud cluster whose GPU memory cannot be estimated.
    """
    out: list[str] = []
    unestimated: dict[int, ModelSpec] = {}
    for i, model, cluster, pool in _pools(spec, inputs):
        if lookup(pool.instance_type) is None:
            out.append(
                f"spec.models[{i}] ({model.name}) on cluster {cluster.name}: instance type "
                f"{pool.instance_type} is not in the fit table; cannot check that "
                f"{model.resources.memory} memory and {model.resources.cpu} CPU fit one node"
            )
        elif model.resources.gpu and sizing.estimate(model.model) is None:
            unestimated[i] = model
    for i, model in sorted(unestimated.items()):
        out.append(
            f"spec.models[{i}] ({model.name}): {_no_estimate(model.model)}; its GPU memory "
            "was not checked, nor counted when sizing GPU node pools"
        )
    return out
