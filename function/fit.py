"""Fit check at render time: does one replica of a model fit one node of its pool?

A model whose memory, CPU or GPU request exceeds what one node of its target
cluster's pool can give (``instances``: allocatable, not capacity) would stay
Pending forever, so it is refused with a Fatal naming the model's field and the
instance type. An instance type the table does not know is not refused: it gets
a Warning result saying the check could not be made. Existing clusters bring
their own nodes and are not checked. A standalone OllamaFleet is checked the
same way when its ``target.instanceType`` names the nodes (the platform sets it
on the fleets it composes).
"""

from __future__ import annotations

from collections.abc import Iterator

from function.context import NodePool, resolve_node_pool
from function.errors import ClaimError
from function.instances import GIB, lookup
from function.models.common import Resources
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.models.platform import ClusterSpec, ModelSpec, PlatformSpec
from function.quantity import parse_quantity


def _pools(
    spec: PlatformSpec, inputs: FunctionInput
) -> Iterator[tuple[int, ModelSpec, ClusterSpec, NodePool]]:
    for i, model in enumerate(spec.models):
        wanted = set(model.clusters)
        for cluster in spec.clusters:
            if wanted and cluster.name not in wanted:
                continue
            pool = resolve_node_pool(spec, cluster, inputs)
            if pool is not None:
                yield i, model, cluster, pool


def _gib(value: object) -> str:
    return f"{value:.1f}Gi"


# The fields a user changes to make a model fit: the platform's pool, or a fleet's target.
PLATFORM_FIELDS = ("gpuNodePool.instanceType", "gpuNodePool.accelerator.count")
FLEET_FIELDS = ("spec.target.instanceType", "spec.target.acceleratorCount")


def _too_large(
    path: str, request: str, where: str, allocatable: str, type_field: str
) -> ClaimError:
    """Return the error for a memory or CPU request above what one node can give."""
    return ClaimError(
        path,
        f"{request} does not fit {where} ({allocatable} allocatable); request less or "
        f"choose a larger {type_field}",
    )


def _model_errors(
    path: str,
    resources: Resources,
    instance_type: str,
    accelerator_count: int,
    *,
    where: str,
    fields: tuple[str, str],
) -> list[ClaimError]:
    """What of ``resources`` cannot fit one node of ``instance_type`` ([] when unknown)."""
    type_field, count_field = fields
    shape = lookup(instance_type)
    if shape is None:
        return []
    out: list[ClaimError] = []
    memory = parse_quantity(resources.memory)
    if memory > shape.allocatable_memory:
        allocatable = _gib(shape.allocatable_memory / GIB)
        out.append(
            _too_large(f"{path}.memory", resources.memory, where, allocatable, type_field)
        )
    cpu = parse_quantity(resources.cpu)
    if cpu > shape.allocatable_cpu:
        allocatable = f"{shape.allocatable_cpu.normalize()} CPUs"
        out.append(_too_large(f"{path}.cpu", resources.cpu, where, allocatable, type_field))
    if resources.gpu and accelerator_count > shape.gpus:
        out.append(
            ClaimError(
                f"{path}.gpu",
                f"the model asks for {accelerator_count} GPUs ({count_field}) but "
                f"{where} has {shape.gpus}; lower {count_field} or choose a larger "
                f"{type_field}",
            )
        )
    return out


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
    )


def fleet_warnings(spec: FleetSpec) -> list[str]:
    """A message when the fleet's instance type is not in the table (no check was made)."""
    instance_type = spec.target.instance_type
    if instance_type is None or lookup(instance_type) is not None:
        return []
    message = (
        f"spec.target.instanceType: {instance_type} is not in the fit table; cannot check "
        f"that {spec.resources.memory} memory and {spec.resources.cpu} CPU fit one node"
    )
    return [message]


def warnings(spec: PlatformSpec, inputs: FunctionInput) -> list[str]:
    """One message per (model, cluster) whose instance type the table does not know."""
    out: list[str] = []
    for i, model, cluster, pool in _pools(spec, inputs):
        if lookup(pool.instance_type) is None:
            out.append(
                f"spec.models[{i}] ({model.name}) on cluster {cluster.name}: instance type "
                f"{pool.instance_type} is not in the fit table; cannot check that "
                f"{model.resources.memory} memory and {model.resources.cpu} CPU fit one node"
            )
    return out
