"""The model cache's one home: every backend answers the same questions, one backend per cluster.

The observed states are what the simulated providers report once everything
is composed and ready, decoded as the function reads them from a request.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from function import modelcache, plan
from function.composed import UNKNOWN, Need
from function.context import ClusterContext
from function.fleet import checks
from function.modelcache import azureblob, gcs, minio, s3
from function.modelcache.backend import NO_CACHE, Backend
from function.models.fleet import Cache, CacheProvider
from function.models.input import FunctionInput
from function.reports import reported
from tests.factories import (
    cluster_composed,
    cluster_context,
    converged,
    decoded,
    platform_spec,
)
from tests.unit.test_modelcache_azureblob import AKS_WITHOUT_WI, AZURE_REPORTED
from tests.unit.test_modelcache_gcs import GCP_REPORTED, GKE_WITHOUT_POOL

MODELS = ("llama2", "mistral")

# Each backend (by the provider its fleets name), and a cluster it serves: its cloud, components.
CLUSTERS: dict[str, tuple[Backend, str, dict[str, str]]] = {
    "s3": (s3, "aws", {}),
    "gcs": (gcs, "gcp", {}),
    "azureblob": (azureblob, "azure", {}),
    "minio": (minio, "existing", {"objectStorage": "minio"}),
}


def served(provider: str) -> ClusterContext:
    _, cloud, components = CLUSTERS[provider]
    return dataclasses.replace(cluster_context(cloud, components=components), models=MODELS)


def without_reports(observed: dict[str, Any]) -> dict[str, Any]:
    """Every resource still there, none reporting ``status.atProvider`` (a flicker)."""
    out = {}
    for key, obj in observed.items():
        plain = {k: v for k, v in obj.items() if k != "status"}
        conditions = obj.get("status", {}).get("conditions", [])
        out[key] = decoded({**plain, "status": {"conditions": conditions}})
    return out


def test_the_backends_are_the_four_stores() -> None:
    assert {p.value: b for p, b in modelcache.BACKENDS.items()} == {
        p: b for p, (b, _, _) in CLUSTERS.items()
    }


@pytest.mark.parametrize("provider", list(CLUSTERS))
def test_every_backend_answers_every_question(provider: str) -> None:
    backend = CLUSTERS[provider][0]
    ctx = served(provider)
    assert modelcache.backend(ctx) is backend
    observed = converged(lambda seen: cluster_composed(ctx, seen))

    # what it composes: something for the cluster, and a grant per model
    composed = backend.composes(ctx, observed)
    keys = {c.key for c in composed}
    assert keys <= set(observed)  # converged: all of it exists
    for model in MODELS:
        assert [k for k in keys if k.endswith(f"-{model}")], (model, sorted(keys))

    # the fleet's cache block: what the fleet's own checks accept, for that provider
    block = backend.fleet_cache(ctx, observed)
    assert isinstance(block, dict)
    assert block["provider"] == provider
    assert modelcache.BACKENDS[CacheProvider(provider)] is backend
    assert checks.cache_errors(Cache.model_validate(block)) == []

    # the gates: on what the plan composes, all met once converged
    everything = {c.key for c in cluster_composed(ctx, observed)}
    for model in MODELS:
        gates = backend.gates(ctx, model, observed)
        assert gates
        for gate in gates:
            assert gate.key in everything, gate
            assert gate.key in observed, gate
            if gate.need is Need.REPORTED:
                assert reported(observed[gate.key], gate.field) is not None, gate

    # the warning: none while the cluster has what the cache needs
    assert backend.warning(ctx, observed) is None

    # every report lost at once: the block is kept (latched) or stays, never withdrawn
    lost = without_reports(observed)
    assert backend.fleet_cache(ctx, lost) in (block, UNKNOWN)
    assert backend.warning(ctx, lost) is None  # no report, no verdict
    assert {c.key for c in backend.composes(ctx, lost)} == keys


@pytest.mark.parametrize(
    ("components", "extra"),
    [
        ({"objectStorage": "none"}, {}),
        ({"objectStorage": "cloud"}, {"bucket": {"enabled": False}}),
        ({"objectStorage": "rook-ceph", "blockStorage": "rook-ceph"}, {}),
    ],
)
@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_without_a_store_there_is_no_cache(
    cloud: str, components: dict[str, str], extra: dict[str, Any]
) -> None:
    ctx = dataclasses.replace(cluster_context(cloud, components=components, **extra), models=MODELS)
    assert modelcache.backend(ctx) is NO_CACHE
    observed = converged(lambda seen: cluster_composed(ctx, seen))
    keys = set(observed)
    assert not {k for k in keys if "cache" in k or "model-identity" in k or "aks-cluster" in k}
    assert plan.fleet_spec(ctx, platform_spec((cloud,)).models[0], observed).get("cache") is None


def fleet_gates(ctx: ClusterContext, model: Any) -> list[Any]:
    return list(plan._fleet(ctx, model, {}).gates)  # the fleet as planned


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_cluster_with_a_bucket_and_minio_caches_in_minio_only(cloud: str) -> None:
    """objectStorage picks the store: with ``minio`` the bucket is neither composed nor asked."""
    ctx = dataclasses.replace(
        cluster_context(cloud, components={"objectStorage": "minio"}, bucket={"enabled": True}),
        models=MODELS,
    )
    assert modelcache.backend(ctx) is minio
    spec = platform_spec((cloud,), components={"objectStorage": "minio"})
    result = plan.plan_platform(plan.XrMeta(name="demo"), spec, FunctionInput(), {})
    keys = {c.key for c in result.resources}
    assert not {k for k in keys if k.endswith(("-bucket", "-storage-account", "-container"))}
    assert not {k for k in keys if "cache-role" in k or "cache-sa" in k or "cache-identity" in k}
    model = spec.models[0]
    assert plan.fleet_spec(ctx, model, {})["cache"] == {
        "provider": "minio",
        "bucket": "ollama-models",
    }
    cache_gates = [g for g in fleet_gates(ctx, model) if "cache" in g.key or "identity" in g.key]
    assert cache_gates == list(minio.gates(ctx, model.name, {}))


@pytest.mark.parametrize("provider", ["s3", "gcs", "azureblob"])
def test_a_cloud_bucket_cluster_waits_for_its_clouds_backend_only(provider: str) -> None:
    ctx = served(provider)
    model = platform_spec((ctx.cloud.value,)).models[0]
    bucket = ctx.spec.bucket.model_copy(update={"enabled": False})
    without = dataclasses.replace(ctx, spec=ctx.spec.model_copy(update={"bucket": bucket}))
    added = [g for g in fleet_gates(ctx, model) if g not in fleet_gates(without, model)]
    assert added == list(CLUSTERS[provider][0].gates(ctx, model.name, {}))


@pytest.mark.parametrize("cloud", ["gcp", "azure"])
def test_no_bucket_no_cache_chain(cloud: str) -> None:
    ctx = dataclasses.replace(cluster_context(cloud, bucket={"enabled": False}), models=("m",))
    observed = {**GCP_REPORTED, **AZURE_REPORTED}
    keys = {c.key for c in cluster_composed(ctx, observed)}
    assert not {k for k in keys if "cache" in k or "model-identity" in k or "aks-cluster" in k}
    assert modelcache.backend(ctx).fleet_cache(ctx, observed) is None
    assert modelcache.backend(ctx).gates(ctx, "m", observed) == ()


def test_the_platform_warns_per_cluster_and_still_serves() -> None:
    spec = platform_spec(("gcp", "azure"), models=[{"name": "llama2", "model": "llama2"}])
    observed = {
        **{k.replace("gcp-1", "gcp-1"): v for k, v in GKE_WITHOUT_POOL.items()},
        **AKS_WITHOUT_WI,
    }
    result = plan.plan_platform(plan.XrMeta(name="demo"), spec, FunctionInput(), observed)
    paths = [w.split(":", 1)[0] for w in result.warnings]
    assert paths == ["spec.clusters[0] (gcp-1)", "spec.clusters[1] (azure-1)"], result.warnings
