"""Values overrides checked against the charts' published schemas, at render time.

The table (``function/chart_schemas.json``) is generated from ``../shared``'s
published schemas by ``scripts/chart_schemas.py``; the drift test needs them and
fails under CI=true without them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import valueschemas
from function.errors import InvalidClaimError
from function.fn import FunctionRunner, to_struct
from function.models.input import COMPONENT_CHARTS, DEFAULT_CHARTS
from function.validation import parse_input
from scripts import chart_schemas
from scripts.render import composition_input, load_docs
from tests import toolchain


def _errors(values: dict[str, Any]) -> list[str]:
    try:
        parse_input({"spec": {"values": values}})
    except InvalidClaimError as exc:
        return [str(e) for e in exc.errors]
    return []


def test_table_matches_the_published_schemas() -> None:
    if not chart_schemas.SCHEMAS.is_dir() or not chart_schemas.CHARTS.is_dir():
        toolchain.missing(f"{chart_schemas.SCHEMAS} or {chart_schemas.CHARTS} not found")
    assert chart_schemas.main(["--check"]) == 0, "run python scripts/chart_schemas.py"


def test_check_detects_drift(tmp_path) -> None:
    if not chart_schemas.SCHEMAS.is_dir():
        toolchain.missing(f"{chart_schemas.SCHEMAS} not found")
    (tmp_path / "function").mkdir()
    assert chart_schemas.main(["--check"], root=tmp_path) == 1
    assert chart_schemas.main([], root=tmp_path) == 0
    assert chart_schemas.main(["--check"], root=tmp_path) == 0
    path = tmp_path / chart_schemas.TABLE
    path.write_text(path.read_text().replace('"enum":["', '"enum":["x', 1))
    assert chart_schemas.main(["--check"], root=tmp_path) == 1


def test_every_published_schema_of_a_catalogue_chart_is_in_the_table() -> None:
    """cilium, istio's gateway, loki and the OpenTelemetry operator publish one."""
    have = {
        name
        for name, (_, chart, version) in DEFAULT_CHARTS.items()
        if valueschemas.published(chart, version)
    }
    assert have == {"cilium", "istio-gateway", "loki", "opentelemetry-operator"}


def test_compact_keeps_what_is_checked_and_resolves_refs() -> None:
    schema = {
        "$ref": "#/$defs/values",
        "$defs": {
            "values": {
                "type": "object",
                "additionalProperties": False,
                "description": "dropped",
                "properties": {"a": {"$ref": "#/$defs/a"}, "b": {"const": 1, "default": 1}},
            },
            "a": {"type": ["string", "null"], "minLength": 3},
        },
    }
    assert chart_schemas.compact(schema, schema) == {
        "type": "object",
        "additionalProperties": False,
        "properties": {"a": {"type": ["string", "null"]}, "b": {"enum": [1]}},
    }
    with pytest.raises(ValueError, match="'not' is not supported"):
        chart_schemas.compact({"not": {}}, {})


# --- the checks ------------------------------------------------------------------


def test_wrong_type_is_refused_with_the_field_path() -> None:
    [error] = _errors({"cilium": {"hubble": {"relay": {"enabled": "yes"}}}})
    assert error.startswith('input.spec.values.cilium.hubble.relay.enabled: is string "yes"; ')
    assert "the chart takes boolean (values schema of chart cilium 1.18.4)" in error


def test_unknown_key_is_refused_where_the_schema_closes_the_map() -> None:
    [error] = _errors({"istio-ingressgateway": {"servce": {"type": "LoadBalancer"}}})
    assert error.startswith("input.spec.values.istio-ingressgateway.servce: the chart takes no key")
    assert "did you mean 'service'?" in error
    [error] = _errors({"opentelemetry-operator": {"manager": {"replicas": 2}}})
    assert error.startswith("input.spec.values.opentelemetry-operator.manager.replicas: ")


def test_enum_list_items_and_alternatives() -> None:
    [error] = _errors({"istio-ingressgateway": {"service": {"ports": [{"port": "http"}]}}})
    assert error.startswith("input.spec.values.istio-ingressgateway.service.ports[0].port: ")
    assert _errors({"istio-egressgateway": {"kind": "Deployment"}}) == []
    [error] = _errors({"istio-egressgateway": {"kind": "StatefulSet"}})
    assert 'input.spec.values.istio-egressgateway.kind: "StatefulSet" is not one' in error
    # anyOf: cilium's MTU-like unions accept each alternative's type
    assert _errors({"loki": {"backend": {"affinity": None, "annotations": {"a": "b"}}}}) == []
    [error] = _errors({"loki": {"backend": {"annotations": {"a": 1}}}})
    assert error.startswith("input.spec.values.loki.backend.annotations.a: is integer 1")


def test_valid_overrides_and_nulls_pass() -> None:
    assert (
        _errors(
            {
                "cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.1.0.0/16"]}}},
                "istio-ingressgateway": {"service": {"type": "ClusterIP"}, "labels": None},
                "opentelemetry-operator": {"manager": {"env": {"A": "b"}}},
                "loki": {"loki": {"auth_enabled": False}},
                "contour": {"whatever": 1},  # no published schema: not checked here
            }
        )
        == []
    )


def test_a_component_no_release_has_is_refused() -> None:
    [error] = _errors({"contuor": {}})
    assert error.startswith("input.spec.values.contuor: no component is named 'contuor'")
    assert "contour" in error


def test_a_chart_version_without_a_published_schema_is_not_checked() -> None:
    pinned = {"repository": "https://helm.cilium.io/", "chart": "cilium", "version": "1.99.0"}
    parse_input({"spec": {"charts": {"cilium": pinned}, "values": {"cilium": {"hubble": 1}}}})


def test_errors_per_component_are_bounded() -> None:
    many = {f"key{i}": 1 for i in range(50)}
    found = _errors({"istio-ingressgateway": many})
    assert len(found) == valueschemas.MAX_ERRORS


def test_component_names_are_the_releases_external_names() -> None:
    """Every Release the goldens hold is a component of COMPONENT_CHARTS, with its chart."""
    seen = set()
    for path in sorted((toolchain.ROOT / "tests" / "golden").glob("*.yaml")):
        for doc in load_docs(path):
            if doc.get("kind") != "Release":
                continue
            name = doc["metadata"]["annotations"]["crossplane.io/external-name"]
            chart = doc["spec"]["forProvider"]["chart"]
            assert name in COMPONENT_CHARTS, name
            _, want, version = DEFAULT_CHARTS[COMPONENT_CHARTS[name]]
            assert (chart["name"], chart["version"]) == (want, version), name
            seen.add(name)
    assert seen == set(COMPONENT_CHARTS)


def test_the_fatal_reaches_the_response() -> None:
    """Through the runner: one Fatal naming the field, the computed resources not sent."""
    xr = load_docs(toolchain.ROOT / "examples" / "gcp" / "xr.yaml")[0]
    inputs = copy.deepcopy(composition_input(xr["kind"]))
    inputs.setdefault("spec", {})["values"] = {"cilium": {"nodeinit": {"enabled": "true"}}}
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(xr))
    req.input.CopyFrom(to_struct(inputs))
    rsp = asyncio.run(FunctionRunner(cache_size=0).RunFunction(req, None))
    fatal = [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert len(fatal) == 1, fatal
    assert re.search(r": input\.spec\.values\.cilium\.nodeinit\.enabled: is string \"true\"; ", fatal[0])
    assert not rsp.desired.resources
    assert json.dumps(inputs)  # the input itself is untouched
