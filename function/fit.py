"""Fit check at render time: does one replica of a model fit one node of its pool?

A model whose memory, CPU or GPU request exceeds what one node of its target
cluster's pool can give (``instances``: allocatable, not capacity) would stay
Pending forever, so it is refused with a Fatal naming the model's field and the
instance type. An instance type the table does not know is not refused: it gets
a Warning result saying the check could not be made. Existing clusters bring
their own nodes and are not checked.
"""

from __future__ import annotations

from collections.abc import Iterator

from function.context import NodePool, resolve_node_pool
from function.errors import ClaimError
from function.instances import GIB, lookup
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


def _too_large(path: str, request: str, where: str, allocatable: str) -> ClaimError:
    """Return the error for a memory or CPU request above what one node can give."""
    return ClaimError(
        path,
        f"{request} does not fit {where} ({allocatable} allocatable); request less or "
        "choose a larger gpuNodePool.instanceType",
    )


def errors(spec: PlatformSpec, inputs: FunctionInput) -> list[ClaimError]:
    """Models that cannot fit one node of a target pool whose instance type is known."""
    out: list[ClaimError] = []
    for i, model, cluster, pool in _pools(spec, inputs):
        shape = lookup(pool.instance_type)
        if shape is None:
            continue
        path = f"spec.models[{i}].resources"
        where = f"one {pool.instance_type} node of cluster {cluster.name}"
        memory = parse_quantity(model.resources.memory)
        if memory > shape.allocatable_memory:
            allocatable = _gib(shape.allocatable_memory / GIB)
            out.append(_too_large(f"{path}.memory", model.resources.memory, where, allocatable))
        cpu = parse_quantity(model.resources.cpu)
        if cpu > shape.allocatable_cpu:
            allocatable = f"{shape.allocatable_cpu.normalize()} CPUs"
            out.append(_too_large(f"{path}.cpu", model.resources.cpu, where, allocatable))
        if model.resources.gpu and pool.accelerator_count > shape.gpus:
            out.append(
                ClaimError(
                    f"{path}.gpu",
                    f"the model asks for {pool.accelerator_count} GPUs (the pool's "
                    f"accelerator.count) but {where} has {shape.gpus}; lower "
                    "gpuNodePool.accelerator.count or choose a larger instanceType",
                )
            )
    return out


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
