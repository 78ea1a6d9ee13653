"""Validate rendered manifests: CRD kinds against their CRDs, the rest against Kubernetes.

A custom resource is checked against the CRD the charts themselves install
(what the cluster will really have), else against ``../shared/crds``; built-in
kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, strict) for
``helm.KUBE_VERSION``.
"""

from __future__ import annotations

import json
import re
import threading
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from tests import crdschema, toolchain
from tests.charts import helm, valuekeys

_LOCK = threading.Lock()


class RenderedCrds(crdschema.SchemaIndex):
    """Schemas of the CRDs the charts render, added as they are seen."""

    def __init__(self) -> None:
        """Start empty."""
        super().__init__([])

    def add(self, docs: list[dict[str, Any]]) -> None:
        """Register every CustomResourceDefinition in ``docs``."""
        with _LOCK:
            for doc in docs:
                if doc.get("kind") == "CustomResourceDefinition":
                    self._register(doc)
                    self._validators.clear()


@cache
def rendered_crds() -> RenderedCrds:
    """The process-wide index of chart-rendered CRDs."""
    return RenderedCrds()


@cache
def _seen() -> set[str]:
    return set()


def validate(doc: dict[str, Any]) -> list[str]:
    """Errors of one rendered object ([] when valid)."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["(root): apiVersion and kind must be strings"]
    for index in (rendered_crds(), crdschema.default_index()):
        if index.openapi(api_version, kind) is not None:
            return crdschema.validate(doc, index)
    validator = _kubernetes_validator(api_version, kind)
    if validator is None:
        return [f"no schema for {api_version} {kind}"]
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:240]}"
        for e in validator.iter_errors(doc)
    ]


@cache
def _kubernetes_definitions() -> Any:
    return kv_utils.schema_contents(f"kubernetes-json-schema/{_schema_dir()}/_definitions.json", helm.KUBE_VERSION)


def _schema_dir() -> str:
    version = [
        v
        for v in kv_utils.all_versions()
        if kv_utils.major_minor(v) <= kv_utils.major_minor(helm.KUBE_VERSION)
    ][-1]
    return f"v{version}-local-strict"


@cache
def _kubernetes_validator(api_version: str, kind: str) -> Any:
    """kubernetes-validate's strict schema for ``helm.KUBE_VERSION``, built once per kind.

    The same files and rules as ``kubernetes_validate.validate(..., strict=True)``,
    without reloading the definitions for every object.
    """
    # rbac.authorization.k8s.io/v1 -> rbac-v1, as kubernetes-validate names its files
    name = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(
            f"kubernetes-json-schema/{_schema_dir()}/{kind.lower()}-{name}.json", helm.KUBE_VERSION
        )
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(_kubernetes_definitions()) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate_all(docs: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """(objects checked, errors as ``Kind/name: error``) for a list of rendered objects.

    Identical objects seen before in this process are counted but not re-checked.
    """
    rendered_crds().add(docs)
    errors = []
    for doc in docs:
        ident = json.dumps(doc, sort_keys=True)
        if ident in _seen():
            continue
        problems = validate(doc)
        if problems:
            name = (doc.get("metadata") or {}).get("name")
            errors += [f"{doc.get('kind')}/{name}: {p}" for p in problems]
        else:
            _seen().add(ident)
    return len(docs), errors


def chart_schema(chart: helm.Chart) -> Path | None:
    """The chart's published values schema under ``../shared/chart-schemas``, if any."""
    path = toolchain.CHART_SCHEMAS / f"{chart.name}-{chart.version.removeprefix('v')}.values.schema.json"
    return path if path.exists() else None


def values_schema_errors(chart: helm.Chart, values: dict[str, Any]) -> list[str]:
    """Errors of ``values`` against the chart's published schema ([] without one)."""
    path = chart_schema(chart)
    if path is None:
        return []
    schema = json.loads(path.read_text())
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(
        schema
    )
    # Helm validates the coalesced values: the chart's defaults with ours over them.
    values = helm.deep_merge(valuekeys.load(chart.path).defaults, values)
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:240]}"
        for e in validator.iter_errors(values)
    ]
