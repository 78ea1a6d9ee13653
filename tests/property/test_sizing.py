"""Property: the sized node pool is the smallest known instance type that holds the models.

Generated clusters (cloud, profile) with up to four models of generated size,
quantisation and requests; the pool ``resolve_node_pool`` sizes is compared with
``tests.sizing_oracle``, a brute force over the catalogue written from the
documented rules. ``derandomize=True``: the same examples on every run.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from function.context import resolve_node_pool
from function.instances import KNOWN
from function.models.common import Cloud, Profile
from function.models.input import FunctionInput
from function.models.platform import PlatformSpec
from tests import sizing_oracle as oracle
from tests.factories import cluster_dict
from tests.sizing_oracle import Model

SIZES = [Decimal(s) for s in ("0.5", "1.5", "3", "7", "8", "13", "27", "34", "56", "70", "72")]
SIZES += [Decimal(s) for s in ("110", "176", "405")]

models = st.builds(
    Model,
    memory=st.one_of(st.integers(1, 64), st.integers(1, 2100)).map(lambda g: f"{g}Gi"),
    cpu=st.one_of(st.integers(1, 16), st.integers(1, 220)).map(str),
    gpu=st.booleans(),
    billions=st.one_of(st.none(), st.sampled_from(SIZES)),
    quant=st.sampled_from(sorted(oracle.BITS)),
)


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(
    cloud=st.sampled_from([Cloud.AWS, Cloud.GCP, Cloud.AZURE]),
    profile=st.sampled_from([Profile.DEVELOPMENT, Profile.PRODUCTION]),
    placed=st.lists(models, max_size=4),
)
def test_the_sized_pool_is_the_smallest_that_holds_every_model(
    cloud: Cloud, profile: Profile, placed: list[Model]
) -> None:
    raw = {
        "profile": profile.value,
        "clusters": [cluster_dict("c1", cloud.value)],
        "models": [m.claim(f"m{i}") for i, m in enumerate(placed)],
    }
    spec = PlatformSpec.model_validate(raw)
    pool = resolve_node_pool(spec, spec.clusters[0], FunctionInput())
    assert pool is not None
    name, gpus, fits = oracle.expected(cloud, profile, placed)
    assert (pool.instance_type, pool.accelerator_count, pool.fits) == (name, gpus, fits)
    shape = KNOWN[pool.instance_type]
    assert pool.accelerator_type == shape.gpu.accelerator  # the defaults name theirs alike
    assert oracle.holds(shape, placed, gpus) is fits
