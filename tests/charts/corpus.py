"""Everything the function asks helm and provider-kubernetes to apply, from the examples.

Sources: every example at every observed stage (``examples/*/observed-*.yaml``,
plus the empty first round), every example under the other profile, and the
multi-cloud example with each ``components`` option alone (walked to its ready
state in-process, as ``scripts/stage.py`` does). For each source's ready state
and each of its clusters, ``cluster_states`` gathers the Releases and the
manifests of the Objects on that cluster, the nested XOllamaFleets' Objects
included: the union the wiring checks read.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import naming
from function.codec import to_struct
from function.models import common
from scripts.render import composition_input, desired, load_docs, observed_map, request, run
from scripts.stage import MAX_ROUNDS, observe, walk
from tests import toolchain

EXAMPLES = toolchain.ROOT / "examples"
HELM_API = "helm.crossplane.io/"
KUBERNETES_API = "kubernetes.crossplane.io/"
FLEET_API = "openhands.ai/v1alpha1"
EKS_API = "eks.aws.upbound.io/"
# The GPU node pools each cloud composes (EKS NodeGroup, GKE NodePool, AKS pool).
NODE_POOL_KINDS = {"NodeGroup", "NodePool", "KubernetesClusterNodePool"}

OPTIONS: dict[str, type] = {
    "cni": common.Cni,
    "mesh": common.Mesh,
    "ingress": common.Ingress,
    "blockStorage": common.BlockStorage,
    "objectStorage": common.ObjectStorage,
    "serving": common.Serving,
    "observability": common.Observability,
    "policies": common.Policies,
}
# Combinations the claim validation refuses (rook-ceph object storage needs rook-ceph blocks).
REFUSED = {("objectStorage", "rook-ceph")}


@dataclass
class Source:
    """A claim and the observed states it passes through."""

    name: str
    xr: dict[str, Any]
    stages: list[dict[str, dict[str, Any]]]


def _fast_docs(path: Path) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]


def _example_dirs() -> list[str]:
    return sorted(p.name for p in EXAMPLES.iterdir() if (p / "xr.yaml").exists())


def _other_profile(xr: dict[str, Any]) -> dict[str, Any] | None:
    if xr["kind"] != "XOllamaPlatform":
        return None
    out = copy.deepcopy(xr)
    profile = xr["spec"].get("profile", "production")
    out["spec"]["profile"] = "development" if profile == "production" else "production"
    for cluster in out["spec"]["clusters"]:
        cluster.pop("gpuNodePool", None)  # take the profile's defaults
        if cluster.get("distribution") == "k3s" and out["spec"]["profile"] == "production":
            cluster["k3s"] = {"flannelDisabled": True}  # production's Cilium replaces flannel
    for model in out["spec"].get("models", []):
        model.pop("resources", None)  # the defaults fit every default pool (fit check)
    return out


@cache
def sources() -> tuple[Source, ...]:
    """Every example (committed stages), each under the other profile, and the option matrix."""
    out: list[Source] = []
    for name in _example_dirs():
        folder = EXAMPLES / name
        xr = load_docs(folder / "xr.yaml")[0]
        stages = [observed_map(_fast_docs(p)) for p in sorted(folder.glob("observed-*.yaml"))]
        out.append(Source(name, xr, stages))
        other = _other_profile(xr)
        if other is not None:
            out.append(Source(f"{name}@{other['spec']['profile']}", other, walk(other)))
    base = load_docs(EXAMPLES / "multicloud" / "xr.yaml")[0]
    for option, enum in OPTIONS.items():
        for member in enum:
            if (option, member.value) in REFUSED:
                continue
            xr = copy.deepcopy(base)
            xr["spec"]["components"] = {option: member.value}
            out.append(Source(f"multicloud+{option}={member.value}", xr, walk(xr)))
    return tuple(out)


def releases() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, Release) for every Release of every source at every stage.

    Each observed stage holds what the function asked for the round before (the
    walk stops when a round asks for nothing new), so the stages are every
    desired state; the bodies are read from them rather than rendered again.
    """
    for src in sources():
        for i, stage in enumerate(src.stages, start=1):
            for key, body in stage.items():
                if body["apiVersion"].startswith(HELM_API) and body["kind"] == "Release":
                    yield f"{src.name} stage {i} {key}", body


@dataclass
class ClusterState:
    """What one cluster of a source's ready state runs: its Releases and Object manifests."""

    source: str
    cluster: str
    spec: dict[str, Any]
    releases: list[dict[str, Any]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    fleets: list[dict[str, Any]] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)
    addons: list[dict[str, Any]] = field(default_factory=list)  # EKS add-ons

    @property
    def label(self) -> str:
        """``source/cluster``."""
        return f"{self.source}/{self.cluster}"


def _fleet_objects(fleet: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifests a nested XOllamaFleet puts on its cluster once ready."""
    return [copy.deepcopy(m) for m in _fleet_objects_of(json.dumps(fleet["spec"], sort_keys=True))]


@cache
def _fleet_objects_of(spec: str) -> tuple[dict[str, Any], ...]:
    xr = {"apiVersion": FLEET_API, "kind": "XOllamaFleet", "metadata": {"name": "fleet"}}
    xr["spec"] = json.loads(spec)
    stages = walk(xr)
    return tuple(
        body["spec"]["forProvider"]["manifest"]
        for body in (stages[-1] if stages else {}).values()
        if body["apiVersion"].startswith(KUBERNETES_API) and body["kind"] == "Object"
    )


@cache
def cluster_states() -> tuple[ClusterState, ...]:
    """Every cluster of every source's ready state (platform sources; fleets by themselves too)."""
    return tuple(state for src in sources() for state in states_of(src))


def states_of(src: Source) -> list[ClusterState]:
    """The clusters of one source's ready state."""
    final = src.stages[-1]
    if src.xr["kind"] == "XOllamaFleet":
        state = ClusterState(src.name, src.xr["spec"]["target"].get("clusterName", "fleet"), {})
        state.fleets.append(src.xr)
        for body in final.values():
            if body["kind"] == "Object":
                state.objects.append(body["spec"]["forProvider"]["manifest"])
        return [state]
    out = []
    for cluster in src.xr["spec"]["clusters"]:
        state = ClusterState(src.name, cluster["name"], cluster)
        for body in final.values():
            labels = body.get("metadata", {}).get("labels") or {}
            if labels.get(naming.LABEL_CLUSTER) != cluster["name"]:
                continue
            if body["kind"] == "Release" and body["apiVersion"].startswith(HELM_API):
                state.releases.append(body)
            elif body["kind"] == "Object" and body["apiVersion"].startswith(KUBERNETES_API):
                state.objects.append(body["spec"]["forProvider"]["manifest"])
            elif body["kind"] == "XOllamaFleet":
                state.fleets.append(body)
                state.objects.extend(_fleet_objects(body))
            elif body["kind"] in NODE_POOL_KINDS:
                state.pools.append(body)
            elif body["kind"] == "Addon" and body["apiVersion"].startswith(EKS_API):
                state.addons.append(body)
        out.append(state)
    return out


def _input_with(xr: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    inputs = copy.deepcopy(composition_input(xr["kind"]))
    inputs["spec"] = {**(inputs.get("spec") or {}), **spec}
    return inputs


def fatal_of(xr: dict[str, Any], spec: dict[str, Any]) -> str:
    """The Fatal results of the first call with ``spec`` as the input's spec, one per line."""
    req = request(xr, {})
    req.input.CopyFrom(to_struct(_input_with(xr, spec)))
    rsp = run(req)
    return "\n".join(r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL)


def walk_with_input(name: str, xr: dict[str, Any], spec: dict[str, Any]) -> Source:
    """A source walked to its ready state with ``spec`` as the function input's spec.

    No stages when the function refuses the first call.
    """
    inputs = _input_with(xr, spec)
    observed: dict[str, dict[str, Any]] = {}
    stages = []
    for _ in range(MAX_ROUNDS):
        req = request(xr, observed)
        req.input.CopyFrom(to_struct(inputs))
        rsp = run(req)
        if any(r.severity == fnv1.SEVERITY_FATAL for r in rsp.results):
            break
        wanted = desired(rsp)
        nxt = {
            key: observe(key, body, xr["metadata"]["name"], ready=key in observed)
            for key, body in wanted.items()
        }
        if nxt == observed:
            break
        observed = nxt
        stages.append(observed)
    return Source(name, xr, stages)
