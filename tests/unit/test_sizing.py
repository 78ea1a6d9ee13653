"""GPU node pools sized from the models: the estimator, the catalogue, the choice, the checks.

The choice is checked against ``tests.sizing_oracle``, a brute force over the
catalogue written from the documented rules, not against the code's own loop.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import plan, sizing
from function.clouds import aws, azure, gcp
from function.context import (
    ClusterContext,
    resolve_node_pool,
)
from function.instances import GPUS, KNOWN
from function.models.common import Cloud, Profile
from function.models.input import DEFAULT_NODE_POOLS, FunctionInput
from function.models.platform import PlatformSpec
from tests import sizing_oracle as oracle
from tests.factories import cluster_dict, context_of
from tests.sizing_oracle import Model
from tests.unit.test_fit import results, run

GIB = Decimal(2**30)
CLOUDS = (Cloud.AWS, Cloud.GCP, Cloud.AZURE)
PROFILES = (Profile.DEVELOPMENT, Profile.PRODUCTION)
NAMED_DEFAULTS = {"aws": "g6.xlarge", "gcp": "g2-standard-8", "azure": "Standard_NC8as_T4_v3"}
LARGEST = {"aws": "p5.48xlarge", "gcp": "a3-highgpu-8g", "azure": "Standard_ND96isr_H100_v5"}
ISSUE = Model("80Gi", "16", billions=Decimal(70))  # llama3.1:70b with 80Gi and 16 CPUs


def spec_of(
    cloud: Cloud | str,
    models: list[Model],
    profile: Profile | str = Profile.PRODUCTION,
    pool: dict[str, Any] | None = None,
) -> dict[str, Any]:
    cloud = Cloud(cloud).value
    cluster = cluster_dict(f"{cloud}-1", cloud)
    if pool is not None:
        cluster["gpuNodePool"] = pool
    return {
        "profile": Profile(profile).value,
        "clusters": [cluster],
        "models": [m.claim(f"m{i}") for i, m in enumerate(models)],
    }


def context(raw: dict[str, Any]) -> ClusterContext:
    """The resolved context of the spec's one cluster, its ProviderConfigs observed."""
    return context_of(
        raw,
        FunctionInput(),
        claim=None,
        provider_configs=("pc-helm", "pc-k8s"),
        with_models=True,
    )


def pool_of(raw: dict[str, Any]) -> Any:
    spec = PlatformSpec.model_validate(raw)
    return resolve_node_pool(spec, spec.clusters[0], FunctionInput())


# --- the estimator ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "billions"),
    [
        ("llama3.1:70b", "70"),
        ("llama3.1:8b", "8"),
        ("qwen2.5:1.5b", "1.5"),
        ("qwen2.5:0.5b", "0.5"),
        ("smollm:135m", "0.135"),
        ("mixtral:8x7b", "56"),  # every expert in full: an upper bound
        ("mixtral:8x22b-instruct-v0.1-q4_0", "176"),
        ("llama3.1:70b-instruct-q8_0", "70"),
        ("gemma2:27b-text-fp16", "27"),
        # no size in the tag: the library's latest tag
        ("llama2", "7"),
        ("mistral", "7"),
        ("llama3.1", "8"),
        ("llama3.1:latest", "8"),
        ("llama3.1:instruct-q8_0", "8"),
        ("library/qwen2.5", "7"),
        ("registry.ollama.ai/library/gemma2:latest", "9"),
        ("phi3", "3.8"),
        ("mixtral", "56"),
        # a size in the name (GGUF repositories on Hugging Face)
        ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "1"),
    ],
)
def test_the_parameter_count_comes_from_the_tag(reference: str, billions: str) -> None:
    assert sizing.parameters(reference) == Decimal(billions)


@pytest.mark.parametrize(
    ("reference", "quantisation", "bits"),
    [
        ("llama3.1:8b", "Q4_K_M", "4.84"),  # Ollama's default
        ("llama3.1:8b-instruct-q4_K_M", "Q4_K_M", "4.84"),
        ("llama3.1:8b-instruct-q4_0", "Q4_0", "4.5"),
        ("llama3.1:8b-instruct-q5_K_M", "Q5_K_M", "5.68"),
        ("llama3.1:8b-instruct-q6_K", "Q6_K", "6.56"),
        ("llama3.1:8b-instruct-q8_0", "Q8_0", "8.5"),
        ("llama3.1:8b-instruct-fp16", "F16", "16"),
        ("hf.co/x/Qwen2.5-7B-Instruct-GGUF:Q8_0", "Q8_0", "8.5"),
    ],
)
def test_the_quantisation_comes_from_the_tag(reference: str, quantisation: str, bits: str) -> None:
    found = sizing.estimate(reference)
    assert found is not None
    assert (found.quantisation, found.bits_per_weight) == (quantisation, Decimal(bits))


@pytest.mark.parametrize(
    "reference",
    [
        "phi3:medium",  # a size word the table does not know
        "nomic-embed-text",  # no size, not a family with a known default
        "someone/llama3.1",  # a user's model: its size is not the library's
        "my-model:v2",
        "llama3.1:70b-instruct-iq4_xs",  # a quantisation the table does not know
        "gemma3n:e4b",
    ],
)
def test_unknown_tags_have_no_estimate(reference: str) -> None:
    assert sizing.estimate(reference) is None


def test_the_formula_is_weights_plus_kv_cache_plus_runtime_per_gpu() -> None:
    found = sizing.estimate("llama3.1:70b")
    assert found is not None
    weights = Decimal(70) * 10**9 * Decimal("4.84") / 8 / GIB
    assert found.weights_gib == weights
    assert found.gib(1) == weights + 2 + 1
    assert found.gib(4) == weights + 2 + 4
    assert "70B parameters at Q4_K_M, 4.84 bits each" in found.explain()


def test_a_70b_q4_model_needs_40_to_45_gib_and_a_small_one_fits_any_gpu() -> None:
    big, small = sizing.estimate("llama3.1:70b"), sizing.estimate("llama2")
    assert big is not None and small is not None
    assert 40 <= big.gib() <= 45
    assert small.gib() <= min(gpu.usable_gib for gpu in GPUS)


@pytest.mark.parametrize(
    ("reference", "download_gb"),
    [("llama3.1:8b", "4.9"), ("llama3.1:70b", "43"), ("llama3.1:405b", "243")],
)
def test_weights_agree_with_the_ollama_library_download_sizes(
    reference: str, download_gb: str
) -> None:
    """Tags round the parameter count (70b is 70.6B): within 5% of the published size."""
    found = sizing.estimate(reference)
    assert found is not None
    published = Decimal(download_gb) * 10**9 / GIB
    assert abs(found.weights_gib - published) / published < Decimal("0.05")


# --- the catalogue ---------------------------------------------------------------------------


PUBLISHED_GPU_GIB = {
    "T4": 16,
    "L4": 24,
    "A10G": 24,
    "A10": 24,
    "L40S": 48,
    "A100 40GB": 40,
    "A100 80GB": 80,
    "H100 NVL": 94,
    "H100 80GB": 80,
}


def test_every_instance_type_has_its_gpus_and_their_memory() -> None:
    for shape in KNOWN.values():
        assert shape.gpus >= 1, shape.name
        assert shape.gpu.memory_gib == PUBLISHED_GPU_GIB[shape.gpu.name], shape.name
    # usable: ECC takes 1/16 of GDDR6
    assert KNOWN["g4dn.xlarge"].gpu_memory() == 15
    assert KNOWN["g6.12xlarge"].gpu_memory() == Decimal("90")
    assert KNOWN["g6e.xlarge"].gpu_memory() == 45
    assert KNOWN["a2-ultragpu-1g"].gpu_memory() == 80


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_cloud_has_types_that_hold_a_70b_model(cloud: Cloud) -> None:
    need = sizing.estimate("llama3.1:70b")
    assert need is not None
    holding = [
        t.name
        for t in KNOWN.values()
        if t.cloud is cloud and t.selectable and need.gib(t.gpus) <= t.gpu_memory()
    ]
    assert any(KNOWN[n].gpus == 1 for n in holding), holding  # one large GPU
    assert any(KNOWN[n].gpus > 1 for n in holding), holding  # or several split


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("profile", PROFILES)
def test_the_largest_candidate_is_at_least_every_other(cloud: Cloud, profile: Profile) -> None:
    """So a model that fits no candidate is named against the largest, and fits none."""
    options = oracle.pool(cloud, profile)
    largest = max(options, key=oracle.key)
    for t in options:
        assert largest.vcpus >= t.vcpus and largest.memory_gib >= t.memory_gib, t.name
        assert largest.gpu_memory() >= t.gpu_memory(), t.name


# --- the choice ------------------------------------------------------------------------------

SCENARIOS: dict[str, list[Model]] = {
    "no models": [],
    "the default model": [Model("12Gi", "3", billions=Decimal(7))],
    "a small model": [Model("4Gi", "1", billions=Decimal("0.5"))],
    "the issue": [ISSUE],
    "70b without much memory": [Model("8Gi", "2", billions=Decimal(70))],
    "8b at fp16": [Model("24Gi", "4", billions=Decimal(8), quant="fp16")],
    "8b at q8_0": [Model("16Gi", "4", billions=Decimal(8), quant="q8_0")],
    "27b at q6_K": [Model("40Gi", "8", billions=Decimal(27), quant="q6_K")],
    "mixtral": [Model("64Gi", "8", billions=Decimal(56))],
    "lots of memory": [Model("100Gi", "4", billions=Decimal(7))],
    "lots of CPU": [Model("4Gi", "40", billions=Decimal(7))],
    "a CPU model": [Model("200Gi", "20", gpu=False, billions=Decimal(70))],
    "no estimate": [Model("12Gi", "3")],
    "two models": [
        Model("12Gi", "3", billions=Decimal(7)),
        Model("8Gi", "2", billions=Decimal(34)),
    ],
    "72b at q8_0": [Model("100Gi", "16", billions=Decimal(72), quant="q8_0")],
    "405b": [Model("300Gi", "32", billions=Decimal(405))],
    "too big anywhere": [Model("8Gi", "2", billions=Decimal(405), quant="fp16")],
    "too much memory": [Model("5000Gi", "2", billions=Decimal(7))],
}


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_chosen_instance_is_the_smallest_that_fits(
    cloud: Cloud, profile: Profile, scenario: str
) -> None:
    models = SCENARIOS[scenario]
    name, gpus, fits = oracle.expected(cloud, profile, models)
    pool = pool_of(spec_of(cloud, models, profile))
    assert (pool.instance_type, pool.accelerator_count, pool.fits) == (name, gpus, fits)
    assert pool.sized
    if not fits:
        assert name == LARGEST[cloud.value]


@pytest.mark.parametrize(("cloud", "profile"), sorted(DEFAULT_NODE_POOLS))
def test_small_models_keep_the_profile_default(cloud: Cloud, profile: Profile) -> None:
    """Today's nodes for today's claims: the default pool and its accelerator, unchanged."""
    instance_type, accelerator, count = DEFAULT_NODE_POOLS[(cloud, profile)]
    for models in ([], SCENARIOS["the default model"], [Model("12Gi", "3")]):
        pool = pool_of(spec_of(cloud, models, profile))
        assert (pool.instance_type, pool.accelerator_type, pool.accelerator_count) == (
            instance_type,
            accelerator,
            count,
        )


def test_production_keeps_its_gpu_memory_headroom() -> None:
    """A memory-heavy 7B model: development takes a T4 node, production no less than an L4."""
    models = SCENARIOS["lots of memory"]
    assert pool_of(spec_of("aws", models, "development")).instance_type == "g4dn.8xlarge"
    assert pool_of(spec_of("aws", models, "production")).instance_type == "g6.8xlarge"


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("profile", PROFILES)
def test_the_issue_composes_on_every_cloud(cloud: Cloud, profile: Profile) -> None:
    """llama3.1:70b with 80Gi and 16 CPUs: no Fatal, no Warning, a node that holds it."""
    raw = spec_of(cloud, [ISSUE], profile)
    rsp = run(raw)
    assert results(rsp, fnv1.SEVERITY_FATAL) == []
    assert results(rsp, fnv1.SEVERITY_WARNING) == []
    assert len(rsp.desired.resources) > 0
    pool = pool_of(raw)
    shape = KNOWN[pool.instance_type]
    assert oracle.holds(shape, [ISSUE], pool.accelerator_count)
    assert pool.instance_type not in NAMED_DEFAULTS.values()


def test_the_issue_picks_these_types() -> None:
    """The outcome of the documented order for the issue's claim (see README)."""
    chosen = {c.value: pool_of(spec_of(c, [ISSUE])).instance_type for c in CLOUDS}
    assert chosen == {
        "aws": "g6e.8xlarge",
        "gcp": "g2-standard-24",
        "azure": "Standard_NC64as_T4_v3",
    }


def test_the_node_pool_and_the_fleets_follow_the_chosen_instance() -> None:
    """GKE's guestAccelerator, EKS's instance types, AKS's VM size and the fleet's target."""
    ctx = context(spec_of("gcp", [ISSUE]))
    node_config = gcp.gke_node_pool(ctx, {}).body["spec"]["forProvider"]["nodeConfig"]
    assert node_config["machineType"] == "g2-standard-24"
    [accelerator] = node_config["guestAccelerator"]
    assert (accelerator["type"], accelerator["count"]) == ("nvidia-l4", 2)
    model = PlatformSpec.model_validate(spec_of("gcp", [ISSUE])).models[0]
    target = plan.fleet_spec(ctx, model)["target"]
    assert (target["instanceType"], target["acceleratorCount"]) == ("g2-standard-24", 2)

    ctx = context(spec_of("aws", [ISSUE]))
    assert aws.node_group(ctx).body["spec"]["forProvider"]["instanceTypes"] == ["g6e.8xlarge"]
    ctx = context(spec_of("azure", [ISSUE]))
    for_provider = azure.aks_node_pool(ctx).body["spec"]["forProvider"]
    assert for_provider["vmSize"] == "Standard_NC64as_T4_v3"
    assert plan.fleet_spec(ctx, model)["target"]["acceleratorCount"] == 4


def test_a_claimed_accelerator_is_kept_and_limits_the_choice() -> None:
    # GKE: the type names a GPU of the table, so only its machines are tried.
    a100 = {"accelerator": {"type": "nvidia-tesla-a100", "count": 1}}
    pool = pool_of(spec_of("gcp", SCENARIOS["the default model"], pool=a100))
    assert (pool.instance_type, pool.accelerator_type, pool.accelerator_count) == (
        "a2-highgpu-1g",
        "nvidia-tesla-a100",
        1,
    )
    # Four GPUs of the default's kind: the smallest node with four.
    four = {"accelerator": {"type": "nvidia-l4", "count": 4}}
    pool = pool_of(spec_of("aws", SCENARIOS["the default model"], pool=four))
    assert (pool.instance_type, pool.accelerator_count) == ("g6.12xlarge", 4)
    # A type the table does not know limits nothing; the default holds one GPU's worth.
    mine = {"accelerator": {"type": "my-gpu", "count": 1}}
    pool = pool_of(spec_of("aws", SCENARIOS["the default model"], pool=mine))
    assert (pool.instance_type, pool.accelerator_type) == ("g6.xlarge", "my-gpu")


def test_a_named_instance_type_is_never_replaced() -> None:
    pool = pool_of(spec_of("aws", [ISSUE], pool={"instanceType": "g6.xlarge"}))
    assert (pool.instance_type, pool.sized) == ("g6.xlarge", False)


# --- the checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_model_too_big_for_any_instance_names_the_largest_tried(cloud: Cloud) -> None:
    rsp = run(spec_of(cloud, SCENARIOS["too big anywhere"]))
    [fatal] = results(rsp, fnv1.SEVERITY_FATAL)
    largest = LARGEST[cloud.value]
    assert "spec.models[0].model: llama3.1:405b-instruct-fp16 needs about " in fatal
    assert f"one {largest} node of cluster {cloud.value}-1" in fatal
    assert f"{largest} is the largest {cloud.value} instance type the sizing knows" in fatal
    assert list(rsp.desired.resources) == []

    rsp = run(spec_of(cloud, SCENARIOS["too much memory"]))
    [fatal] = results(rsp, fnv1.SEVERITY_FATAL)
    assert "spec.models[0].resources.memory: 5000Gi does not fit one " in fatal
    assert f"{largest} is the largest" in fatal


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_named_instance_too_small_for_the_gpu_memory_is_fatal(cloud: Cloud) -> None:
    named = NAMED_DEFAULTS[cloud.value]
    small = Model("8Gi", "2", billions=Decimal(70))
    rsp = run(spec_of(cloud, [small], pool={"instanceType": named}))
    [fatal] = results(rsp, fnv1.SEVERITY_FATAL)
    assert "spec.models[0].model: llama3.1:70b needs about 42.4Gi of GPU memory" in fatal
    assert f"one {named} node of cluster {cloud.value}-1 gives it " in fatal
    assert "choose a larger gpuNodePool.instanceType" in fatal
    assert list(rsp.desired.resources) == []


def test_more_of_a_named_nodes_gpus_can_hold_the_model() -> None:
    small = Model("8Gi", "2", billions=Decimal(70))
    one = {"instanceType": "g6.12xlarge", "accelerator": {"type": "nvidia-l4", "count": 1}}
    [fatal] = results(run(spec_of("aws", [small], pool=one)), fnv1.SEVERITY_FATAL)
    assert "22.5Gi (1 x L4)" in fatal
    assert "or more of its GPUs (gpuNodePool.accelerator.count)" in fatal
    two = {"instanceType": "g6.12xlarge", "accelerator": {"type": "nvidia-l4", "count": 2}}
    assert results(run(spec_of("aws", [small], pool=two)), fnv1.SEVERITY_FATAL) == []


def test_a_model_without_a_gpu_is_not_checked_for_gpu_memory() -> None:
    cpu = Model("8Gi", "2", gpu=False, billions=Decimal(70))
    raw = spec_of("aws", [cpu], pool={"instanceType": "g6.xlarge"})
    raw["components"] = {"policies": "audit"}  # enforce requires GPU limits
    assert results(run(raw), fnv1.SEVERITY_FATAL) == []


@pytest.mark.parametrize("cloud", CLOUDS)
def test_an_unknown_tag_is_a_warning_not_an_error(cloud: Cloud) -> None:
    rsp = run(spec_of(cloud, SCENARIOS["no estimate"]))
    assert results(rsp, fnv1.SEVERITY_FATAL) == []
    [warning] = results(rsp, fnv1.SEVERITY_WARNING)
    assert warning.startswith("spec.models[0] (m0): cannot estimate the GPU memory phi3:medium")
    [advisory] = [c for c in rsp.conditions if c.type == "Advisories"]
    assert advisory.message == warning
    # on a named type too: nothing to compare, so nothing refused
    rsp = run(
        spec_of(cloud, SCENARIOS["no estimate"], pool={"instanceType": NAMED_DEFAULTS[cloud]})
    )
    assert results(rsp, fnv1.SEVERITY_FATAL) == []
    assert len(results(rsp, fnv1.SEVERITY_WARNING)) == 1


def run_fleet(target: dict[str, Any], model: str) -> fnv1.RunFunctionResponse:
    spec = {
        "model": model,
        "target": {"providerConfigName": "pc", "cloud": "aws", **target},
        "resources": {"memory": "8Gi", "cpu": "2"},
    }
    return run(spec, kind="XOllamaFleet", name="big")


def test_a_fleet_is_checked_for_gpu_memory_too() -> None:
    [fatal] = results(run_fleet({"instanceType": "g6.xlarge"}, "llama3.1:70b"), fnv1.SEVERITY_FATAL)
    assert "spec.model: llama3.1:70b needs about 42.4Gi of GPU memory" in fatal
    assert "one g6.xlarge node (spec.target.instanceType) gives it 22.5Gi" in fatal
    fits = run_fleet({"instanceType": "g6e.xlarge"}, "llama3.1:70b")
    assert results(fits, fnv1.SEVERITY_FATAL) == []
    assert results(fits, fnv1.SEVERITY_WARNING) == []
    [warning] = results(
        run_fleet({"instanceType": "g6.xlarge"}, "phi3:medium"), fnv1.SEVERITY_WARNING
    )
    assert warning.startswith("spec.model: cannot estimate the GPU memory phi3:medium")
    untyped = run_fleet({}, "phi3:medium")  # no type, nothing checked, nothing said
    assert results(untyped, fnv1.SEVERITY_WARNING) == []
