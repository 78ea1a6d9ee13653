"""The invalid-claims table (tests/invalid_claims.py): the function refuses each, and the table is complete.

The end-to-end suite applies the same claims to a real API server; here every
one is run through the function in process, and the table is checked to cover
every CEL rule the generated XRDs publish.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner, to_struct
from tests.invalid_claims import CASES, REFUSED_BY_API, REFUSED_BY_FUNCTION, Invalid

ROOT = Path(__file__).resolve().parents[2]


def fatals(case: Invalid) -> list[str]:
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(case.xr()))
    rsp = asyncio.run(FunctionRunner(cache_size=0).RunFunction(req, None))
    return [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_function_refuses_each_claim_naming_the_field(case: Invalid) -> None:
    [message] = fatals(case)
    assert message.startswith(f"cannot compose X{case.kind} {case.name}-x1y2z: "), message
    assert case.fatal in message, message


def test_the_table_is_unique_and_split_between_api_and_function() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    assert len(REFUSED_BY_API) >= 15
    assert len(REFUSED_BY_FUNCTION) >= 5
    # The function-only claims must be valid for the API server: nothing they
    # break is an x-kubernetes-validations rule or an enum the table knows of.
    assert {c.kind for c in REFUSED_BY_FUNCTION} == {"OllamaPlatform", "OllamaFleet"}


def _rules(node: Any) -> list[str]:
    out = []
    if isinstance(node, dict):
        out += [r["message"] for r in node.get("x-kubernetes-validations") or []]
        for value in node.values():
            out += _rules(value)
    elif isinstance(node, list):
        for value in node:
            out += _rules(value)
    return out


def test_every_cel_rule_of_the_xrds_has_a_claim_it_refuses() -> None:
    messages = set()
    for path in sorted((ROOT / "xrds").glob("*.yaml")):
        messages |= set(_rules(yaml.safe_load(path.read_text())))
    assert len(messages) >= 14, messages
    expected = {text for c in REFUSED_BY_API for text in c.api}
    missing = sorted(m for m in messages if m not in expected)
    assert not missing, f"no invalid claim in tests/invalid_claims.py exercises: {missing}"
