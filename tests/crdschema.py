"""A fast in-process structural validator for Kubernetes objects, from CRD and XRD schemas.

    from tests.crdschema import validate
    errors = validate(obj)          # [] when ``obj`` fits its CRD's openAPIV3Schema

Schemas come from every CRD under ``tests.toolchain.CRDS`` (OLLAMA_PLATFORM_CRDS,
default ../shared/crds), the CRDs the pinned charts ship (``CHART_CRDS``) and
every XRD under the project's ``xrds/``. Files are
indexed by group without parsing (CRD file names are ``<group>_<plural>.yaml``;
other files are sniffed for their ``spec.group`` line) and parsed only when an
object of that group is validated, so importing this module costs nothing and a
typical run loads a handful of files.

The OpenAPI v3 schema is translated to JSON Schema (Draft 7) the way the API
server reads it: ``x-kubernetes-int-or-string``, ``nullable``,
``x-kubernetes-preserve-unknown-fields``, ``x-kubernetes-embedded-resource`` and
list-map keys are honoured; an object that declares ``properties`` and does not
preserve unknown fields rejects any other field (strict field validation).
``metadata`` at the top level accepts anything. CEL rules
(``x-kubernetes-validations``) and ``format`` are NOT checked here: the real
``crossplane beta validate`` does that in the CLI tests.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.toolchain import CHART_CRDS, CRDS, ROOT

XRDS = ROOT / "xrds"

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_GROUP_LINE = re.compile(r"^  group:\s*['\"]?([A-Za-z0-9.-]+)", re.MULTILINE)
_MAX_MESSAGE = 240
_ANYTHING: dict[str, Any] = {}

# Fields Crossplane adds to every composite resource (v1 and v2) and claim; the
# XRD's own schema does not list them. Accept them as they are.
_XR_SPEC_FIELDS = (
    "claimRef",
    "compositionRef",
    "compositionRevisionRef",
    "compositionRevisionSelector",
    "compositionSelector",
    "compositionUpdatePolicy",
    "compositeDeletePolicy",
    "crossplane",
    "environmentConfigRefs",
    "publishConnectionDetailsTo",
    "resourceRef",
    "resourceRefs",
    "writeConnectionSecretToRef",
)
_XR_STATUS_FIELDS = ("conditions", "connectionDetails", "claimConditionTypes", "crossplane")


def split_api_version(api_version: str) -> tuple[str, str]:
    """``(group, version)`` of an apiVersion; the core group is ``""``."""
    group, _, version = api_version.rpartition("/")
    return group, version


# --------------------------------------------------------------------------------------
# OpenAPI v3 (structural) -> JSON Schema
# --------------------------------------------------------------------------------------

_DROPPED = {"description", "default", "example", "externalDocs", "format", "nullable", "title"}


def _valid_pattern(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:  # an RE2-only construct: skip it rather than reject everything
        return False
    return True


def to_json_schema(node: Any, *, structural: bool = True) -> Any:
    """Translate one OpenAPI v3 schema node (and its children) to JSON Schema.

    ``structural`` is False inside ``allOf``/``anyOf``/``oneOf``/``not``: those
    branches only add value validations, so they never close an object.
    """
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key.startswith("x-kubernetes-"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: to_json_schema(v, structural=structural) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            if isinstance(value, list):
                out[key] = [to_json_schema(v, structural=structural) for v in value]
            else:
                out[key] = to_json_schema(value, structural=structural)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(v, structural=False) for v in value]
        elif key == "not":
            out[key] = to_json_schema(value, structural=False)
        elif key == "pattern":
            if _valid_pattern(value):
                out[key] = value
        else:
            out[key] = value
    for bound, exclusive in (("maximum", "exclusiveMaximum"), ("minimum", "exclusiveMinimum")):
        # OpenAPI v3.0 spells exclusive bounds as booleans; JSON Schema as numbers.
        if isinstance(out.get(exclusive), bool):
            if out.pop(exclusive) and bound in out:
                out[exclusive] = out.pop(bound)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if node.get("x-kubernetes-embedded-resource") and "properties" in out:
        out["properties"].setdefault("apiVersion", {"type": "string"})
        out["properties"].setdefault("kind", {"type": "string"})
        out["properties"].setdefault("metadata", {"type": "object"})
    if structural and "properties" in out and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("x-kubernetes-list-type") == "map" and node.get("x-kubernetes-list-map-keys"):
        out["listMapKeys"] = list(node["x-kubernetes-list-map-keys"])
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _list_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """``x-kubernetes-list-type: map``: no two items share the same key values."""
    if not isinstance(instance, list):
        return
    seen: dict[tuple[Any, ...], int] = {}
    for i, item in enumerate(instance):
        if not isinstance(item, Mapping):
            continue
        ident = tuple(repr(item.get(k)) for k in keys)
        if ident in seen:
            yield jsonschema.ValidationError(
                f"duplicate entry for list-map key(s) {keys} {ident} (also item {seen[ident]})",
                path=[i],
            )
        seen.setdefault(ident, i)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"listMapKeys": _list_map_keys}
)


def top_level_schema(openapi: Mapping[str, Any], *, composite: bool = False) -> dict[str, Any]:
    """JSON Schema for a whole object: apiVersion, kind and any metadata are accepted."""
    schema = to_json_schema(openapi)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    props["metadata"] = {"type": "object"}
    if composite:
        for part, fields in (("spec", _XR_SPEC_FIELDS), ("status", _XR_STATUS_FIELDS)):
            sub = props.setdefault(part, {"type": "object", "properties": {}})
            sub.setdefault("properties", {})
            for name in fields:
                sub["properties"].setdefault(name, _ANYTHING)
    return schema


# --------------------------------------------------------------------------------------
# Finding schemas: a lazy index of files by group
# --------------------------------------------------------------------------------------


def _group_of_file(path: Path) -> str | None:
    """The API group a definition file holds, read from its name or its first lines."""
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if "_" in stem:
        group = stem.split("_", 1)[0]
        if "." in group:
            return group
    with path.open(encoding="utf-8") as handle:
        head = handle.read(8192)
    match = _GROUP_LINE.search(head)
    return match.group(1) if match else None


class SchemaIndex:
    """Schemas by (apiVersion, kind), loaded group by group on first use."""

    def __init__(self, dirs: Iterable[Path]) -> None:
        """Index the definition files under ``dirs`` by group (no YAML is parsed yet)."""
        self._by_group: dict[str, list[Path]] = {}
        self._unknown: list[Path] = []
        for base in dirs:
            if base.is_file():
                files = [base]
            elif base.is_dir():
                files = sorted([*base.rglob("*.yaml"), *base.rglob("*.yml")])
            else:
                continue
            for path in files:
                group = _group_of_file(path)
                if group is None:
                    self._unknown.append(path)
                else:
                    self._by_group.setdefault(group, []).append(path)
        self._loaded: set[Path] = set()
        self._schemas: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {}
        self._validators: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def groups(self) -> list[str]:
        """Every group a file was indexed under."""
        return sorted(self._by_group)

    def _load(self, path: Path) -> None:
        if path in self._loaded:
            return
        self._loaded.add(path)
        with path.open(encoding="utf-8") as handle:
            docs = [d for d in yaml.load_all(handle, Loader=_LOADER) if isinstance(d, dict)]
        for doc in docs:
            self._register(doc)

    def _register(self, doc: Mapping[str, Any]) -> None:
        kind = doc.get("kind")
        if kind not in ("CustomResourceDefinition", "CompositeResourceDefinition"):
            return
        spec = doc.get("spec") or {}
        group = spec.get("group", "")
        composite = kind == "CompositeResourceDefinition"
        kinds = [spec.get("names", {}).get("kind")]
        if composite and spec.get("claimNames"):
            kinds.append(spec["claimNames"].get("kind"))
        legacy = (spec.get("validation") or {}).get("openAPIV3Schema")
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or legacy
            if schema is None:
                continue
            for k in kinds:
                if k:
                    self._schemas[(f"{group}/{version['name']}", k)] = (schema, composite)

    def openapi(self, api_version: str, kind: str) -> tuple[dict[str, Any], bool] | None:
        """The raw openAPIV3Schema for (apiVersion, kind) and whether it is an XR, or None."""
        key = (api_version, kind)
        if key in self._schemas:
            return self._schemas[key]
        group, _ = split_api_version(api_version)
        for path in self._by_group.get(group, []):
            self._load(path)
        if key not in self._schemas:
            for path in self._unknown:
                self._load(path)
        return self._schemas.get(key)

    def validator(self, api_version: str, kind: str) -> Any | None:
        """A cached Draft 7 validator for (apiVersion, kind), or None when unknown."""
        key = (api_version, kind)
        with self._lock:
            if key not in self._validators:
                found = self.openapi(api_version, kind)
                self._validators[key] = (
                    None
                    if found is None
                    else _Validator(top_level_schema(found[0], composite=found[1]))
                )
            return self._validators[key]


@cache
def default_index() -> SchemaIndex:
    """The index over the shared CRDs and this project's XRDs."""
    return SchemaIndex([CRDS, XRDS, *CHART_CRDS])


# --------------------------------------------------------------------------------------
# Validating
# --------------------------------------------------------------------------------------


def format_path(parts: Iterable[Any]) -> str:
    """``spec.forProvider.items[2].name`` from a jsonschema absolute path."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _shorten(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def validate(obj: Any, index: SchemaIndex | None = None) -> list[str]:
    """Structural errors of one Kubernetes object, each as ``<path>: <message>``; [] if valid."""
    if not isinstance(obj, Mapping):
        return [f"(root): expected an object, got {type(obj).__name__}"]
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["(root): apiVersion and kind must be strings"]
    validator = (index or default_index()).validator(api_version, kind)
    if validator is None:
        return [f"no schema for {api_version}/{kind}"]
    errors = sorted(
        validator.iter_errors(obj), key=lambda e: (format_path(e.absolute_path), e.message)
    )
    return [f"{format_path(e.absolute_path)}: {_shorten(e.message)}" for e in errors]


def has_schema(api_version: str, kind: str, index: SchemaIndex | None = None) -> bool:
    """Tell whether a schema for (apiVersion, kind) is known."""
    return (index or default_index()).openapi(api_version, kind) is not None
