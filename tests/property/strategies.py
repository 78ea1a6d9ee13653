"""Hypothesis strategies for XOllamaPlatform specs, derived from the published XRD schema.

``schema_specs()`` walks ``spec`` of the XRD's openAPIV3Schema: enums are sampled,
patterned strings come from ``st.from_regex(pattern, fullmatch=True)`` within
min/maxLength, integers within minimum/maximum, arrays within minItems/maxItems
(list-maps keyed by ``name`` get unique names), optional properties may be absent.
Arrays are capped (``ARRAY_CAPS``, default 3) so examples stay small and fast.

``valid_specs()`` repairs a schema-derived spec until every cross-field rule the
XRD publishes as CEL (and the function checks) holds; ``invalid_specs()`` takes a
valid spec and breaks it with exactly one mutation, returning the field path the
function's error must name.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from function.quantity import (
    POSITIVE_QUANTITY_PATTERN,
    QUANTITY_PATTERN,
    is_quantity,
    parse_quantity,
)

ROOT = Path(__file__).resolve().parents[2]
XRD = ROOT / "xrds" / "xollamaplatforms.openhands.ai.yaml"

# Per-path caps on array sizes (schema paths: "[]" stands for "every item").
ARRAY_CAPS = {"clusters": 3, "models": 3}
DEFAULT_ARRAY_CAP = 3
TEXT_CAP = 24

# The profile table of DESIGN.md: what an unset component means.
PROFILE_DEFAULTS: dict[str, dict[str, str]] = {
    "development": {
        "mesh": "linkerd",
        "ingress": "contour",
        "blockStorage": "longhorn",
        "objectStorage": "cloud",
        "serving": "deployment",
        "policies": "audit",
    },
    "production": {
        "mesh": "istio",
        "ingress": "contour",
        "blockStorage": "rook-ceph",
        "objectStorage": "cloud",
        "serving": "deployment",
        "policies": "enforce",
    },
}
SCALING_DEFAULTS = {"minReplicas": 1, "maxReplicas": 10}
CLOUDS = ("aws", "gcp", "azure")

# Schema-valid quantities worth trying more often than a regex walk would.
QUANTITY_EDGES = tuple(
    q
    for q in (
        "0",
        "1",
        "500m",
        "16Gi",
        ".5",
        "+1E+3",
        "-1",
        "1e999999",
        "1e5000",
        "99999999999999999999999999999Ei",
        "9999999999999999999999999999.999",
    )
    if is_quantity(q)  # the claim grammar has no sign and no exponent
)
# How often (out of 4) valid_specs() fills a top-level field the schema left out.
STEER = {"models": 3, "components": 2, "profile": 2, "policy": 1}

# RE2 (the API server's regex engine) treats \w and friends as ASCII; draw patterned
# strings from printable ASCII so a "valid" value is valid for Kubernetes too.
PATTERN_ALPHABET = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
# Free-form strings may be anything printable, including non-ASCII.
TEXT_ALPHABET = st.characters(
    blacklist_categories=("Cs", "Cc"), min_codepoint=0x20, max_codepoint=0x2FFF
)


@cache
def spec_schema() -> dict[str, Any]:
    """The openAPIV3Schema of ``spec`` in the XOllamaPlatform XRD."""
    xrd = yaml.safe_load(XRD.read_text())
    version = xrd["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def schema_at(path: str) -> dict[str, Any]:
    """The schema node at a schema path such as ``clusters[].aws.subnetIds``."""
    node = spec_schema()
    for part in path.split("."):
        if not part:
            continue
        name, items = (part[:-2], True) if part.endswith("[]") else (part, False)
        node = node["properties"][name] if name else node
        if items:
            node = node["items"]
    return node


# --------------------------------------------------------------------------------------
# Schema -> strategy
# --------------------------------------------------------------------------------------


def _string(node: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low = int(node.get("minLength", 0))
    high = int(node.get("maxLength", 253))
    if "enum" in node:
        return st.sampled_from(list(node["enum"]))
    if "pattern" in node:
        drawn = st.from_regex(node["pattern"], fullmatch=True, alphabet=PATTERN_ALPHABET)
        if node["pattern"] in (QUANTITY_PATTERN, POSITIVE_QUANTITY_PATTERN):
            edges = [q for q in QUANTITY_EDGES if re.fullmatch(node["pattern"], q)]
            drawn = st.one_of(st.sampled_from(edges), drawn)
        return drawn.filter(lambda s: low <= len(s) <= high)
    return st.text(TEXT_ALPHABET, min_size=low, max_size=min(high, max(low, TEXT_CAP)))


def _key(item: Any) -> Any:
    return item.get("name") if isinstance(item, Mapping) else item


def from_schema(node: Mapping[str, Any], path: str = "") -> st.SearchStrategy[Any]:
    """A strategy for values that satisfy the structural schema ``node`` (no CEL)."""
    if "enum" in node:
        return st.sampled_from(list(node["enum"]))
    kind = node.get("type")
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return st.integers(int(node.get("minimum", -(2**31))), int(node.get("maximum", 2**31)))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        cap = ARRAY_CAPS.get(path, DEFAULT_ARRAY_CAP)
        low = int(node.get("minItems", 0))
        high = min(int(node.get("maxItems", cap)), max(cap, low))
        list_type = node.get("x-kubernetes-list-type")
        return st.lists(
            from_schema(node["items"], f"{path}[]"),
            min_size=low,
            max_size=high,
            unique_by=_key if list_type == "map" else None,
            unique=list_type == "set",
        )
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        required = set(node.get("required", []))
        sub = {k: from_schema(v, f"{path}.{k}" if path else k) for k, v in props.items()}
        return st.fixed_dictionaries(
            {k: s for k, s in sub.items() if k in required},
            optional={k: s for k, s in sub.items() if k not in required},
        )
    msg = f"no strategy for schema at {path or 'spec'}: {node}"
    raise ValueError(msg)


@cache
def at(path: str) -> st.SearchStrategy[Any]:
    """The schema-derived strategy for the schema path ``path`` (cached)."""
    return from_schema(schema_at(path), path)


def schema_specs() -> st.SearchStrategy[dict[str, Any]]:
    """Specs that satisfy the XRD's structural schema; CEL rules may be broken."""
    return at("")


# --------------------------------------------------------------------------------------
# Valid specs: schema-derived, then repaired against the cross-field rules
# --------------------------------------------------------------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]


def _repair_cluster(draw: Draw, cluster: dict[str, Any]) -> None:
    cloud = cluster["cloud"]
    for other in CLOUDS:
        if other != cloud:
            cluster.pop(other, None)
    if cloud in CLOUDS and cloud not in cluster:
        cluster[cloud] = draw(at(f"clusters[].{cloud}"))
    if cloud == "existing":
        cluster.pop("gpuNodePool", None)
    else:
        cluster.pop("distribution", None)
        if "region" not in cluster:
            cluster["region"] = draw(at("clusters[].region"))
    if cluster.get("distribution") == "k3s":
        # Cilium (any profile may choose it) needs flannel off on K3s.
        cluster["k3s"] = {"flannelDisabled": True}
    else:
        cluster.pop("k3s", None)
    kube = cluster["kubeconfig"]
    if ("secretRef" in kube) == ("providerConfigName" in kube):
        keep = draw(st.sampled_from(["secretRef", "providerConfigName"]))
        kube.clear()
        kube[keep] = draw(at(f"clusters[].kubeconfig.{keep}"))
    _repair_identity(draw, cloud, kube)
    pool = cluster.get("gpuNodePool")
    if pool and "minNodes" in pool and "maxNodes" in pool and pool["minNodes"] > pool["maxNodes"]:
        pool["minNodes"], pool["maxNodes"] = pool["maxNodes"], pool["minNodes"]


# The identity type of each cloud (kubeconfig.identity.type; existing clusters take none).
CLOUD_IDENTITY = {
    "aws": "AWSWebIdentityCredentials",
    "gcp": "GoogleApplicationCredentials",
    "azure": "AzureWorkloadIdentityCredentials",
}


def _repair_identity(draw: Draw, cloud: str, kube: dict[str, Any]) -> None:
    """An identity only with a kubeconfig Secret, of the cluster's cloud, a Secret for Azure's."""
    identity = kube.get("identity")
    if identity is None:
        return
    if cloud not in CLOUD_IDENTITY or "secretRef" not in kube:
        del kube["identity"]
        return
    identity["type"] = CLOUD_IDENTITY[cloud]
    if cloud == "azure":
        if "secretRef" not in identity:
            identity["secretRef"] = draw(at("clusters[].kubeconfig.identity.secretRef"))
    else:
        identity.pop("secretRef", None)


def _repair_model(draw: Draw, model: dict[str, Any], clusters: list[str]) -> None:
    if "clusters" in model:
        model["clusters"] = [draw(st.sampled_from(clusters)) for _ in model["clusters"]]
    scaling = model.get("scaling")
    if scaling is not None:
        low = scaling.get("minReplicas", SCALING_DEFAULTS["minReplicas"])
        high = scaling.get("maxReplicas", SCALING_DEFAULTS["maxReplicas"])
        if low > high:
            scaling["minReplicas"], scaling["maxReplicas"] = min(high, low), max(high, low, 1)


def _effective(spec: Mapping[str, Any], component: str) -> str:
    chosen = (spec.get("components") or {}).get(component)
    return chosen or PROFILE_DEFAULTS[spec.get("profile", "production")][component]


def _repair_components(spec: dict[str, Any]) -> None:
    components = spec.setdefault("components", {})
    if _effective(spec, "objectStorage") == "rook-ceph":
        components["blockStorage"] = "rook-ceph"
    if _effective(spec, "objectStorage") == "minio" and _effective(spec, "blockStorage") == "none":
        components["blockStorage"] = "longhorn"
    if (
        _effective(spec, "serving") == "knative"
        and _effective(spec, "ingress") == "none"
        and _effective(spec, "mesh") != "istio"
    ):
        components["ingress"] = "contour"
    if not components:
        del spec["components"]


def _repair_policies(draw: Draw, spec: dict[str, Any]) -> None:
    """Enforced policies refuse models without GPU limits or with too much storage."""
    if _effective(spec, "policies") != "enforce":
        return
    limit = (spec.get("policy") or {}).get("maxStorageRequest", "100Gi")
    if parse_quantity(limit) == 0:  # no model's storage (always above zero) fits
        limit = spec["policy"]["maxStorageRequest"] = "1Gi"

    def refused(model: Mapping[str, Any]) -> bool:
        size = (model.get("storage") or {}).get("size", "50Gi")
        gpu = (model.get("resources") or {}).get("gpu", True)
        return not gpu or parse_quantity(size) > parse_quantity(limit)

    offending = [m for m in spec.get("models", []) if refused(m)]
    if not offending:
        return
    if draw(st.booleans()):
        spec.setdefault("components", {})["policies"] = draw(st.sampled_from(["audit", "none"]))
        return
    for model in offending:
        model.setdefault("resources", {})["gpu"] = True
        if parse_quantity(model.get("storage", {}).get("size", "50Gi")) > parse_quantity(limit):
            model.setdefault("storage", {})["size"] = limit


def _repair_same_cluster(spec: dict[str, Any]) -> None:
    """No two entries may reach one cluster: rename what a later entry shares."""
    from function.exclusive import identities  # the identities the function compares

    seen: set[str] = set()
    for j, cluster in enumerate(spec["clusters"]):
        if identities(cluster) & seen:
            own = f"{cluster['name']}-{j}"  # names are unique, and so is this
            kube = cluster["kubeconfig"]
            if "secretRef" in kube:
                kube["secretRef"] = {**kube["secretRef"], "name": f"{own}-kubeconfig"}
            else:
                kube["providerConfigName"] = f"{own}-pc"
            if cluster["cloud"] in ("aws", "gcp"):
                cluster[cluster["cloud"]]["clusterName"] = f"k-{own}"
            if cluster["cloud"] == "azure":
                head = cluster["azure"]["clusterId"].rsplit("/", 1)[0]
                cluster["azure"]["clusterId"] = f"{head}/aks-{own}"
        seen |= identities(cluster)


def repair(draw: Draw, spec: dict[str, Any]) -> dict[str, Any]:
    """Make a schema-valid spec satisfy every cross-field rule (mutates and returns it)."""
    for cluster in spec["clusters"]:
        _repair_cluster(draw, cluster)
    _repair_same_cluster(spec)
    names = [c["name"] for c in spec["clusters"]]
    for model in spec.get("models", []):
        _repair_model(draw, model, names)
    _repair_components(spec)
    _repair_scale_to_zero(spec)
    _repair_exposure(spec)
    _repair_gateway(spec)
    _repair_policies(draw, spec)
    _repair_fit(spec)
    return spec


def _repair_fit(spec: dict[str, Any]) -> None:
    """Models must fit one node of their pools (the render-time fit check)."""
    from function import fit  # the same check the function runs
    from function.models.input import FunctionInput
    from function.models.platform import PlatformSpec

    errors = fit.errors(PlatformSpec.model_validate(spec), FunctionInput())
    for error in errors:
        index = int(error.path.split("[", 1)[1].split("]", 1)[0])
        model = spec["models"][index]
        if error.path.endswith(".gpu"):
            for cluster in spec["clusters"]:
                accelerator = (cluster.get("gpuNodePool") or {}).get("accelerator")
                if accelerator:
                    accelerator["count"] = 1
        elif error.path.endswith(".model"):  # GPU memory: a 7B model fits one GPU of any type
            model["model"] = "llama2"
        else:
            resources = model.setdefault("resources", {})
            resources["memory"], resources["cpu"] = "1Gi", "500m"


DOCUMENTATION_RANGE = ipaddress.ip_network("192.0.2.0/24")


def _repair_exposure(spec: dict[str, Any]) -> None:
    """Public exposure needs Contour and deployment serving; drop it elsewhere.

    Where it stays, its callers are distinct networks without host bits and its
    TLS Secret name at most 253 characters (the XRD's CEL rules).
    """
    if _effective(spec, "ingress") == "contour" and _effective(spec, "serving") == "deployment":
        for model in spec.get("models", []):
            if "exposure" in model:
                _repair_exposure_values(model["exposure"])
        return
    for model in spec.get("models", []):
        model.pop("exposure", None)


def _repair_gateway(spec: dict[str, Any]) -> None:
    """Teams and JWT need the gateway on; a team authenticates one way (its key without
    jwt, none with it), one client ID each (its key, else its name), served models."""
    gateway = spec.get("gateway")
    if isinstance(gateway, dict) and "exposure" in gateway:
        _repair_exposure_values(gateway["exposure"])
    if not isinstance(gateway, dict):
        return
    if gateway.get("enabled") is False:
        gateway.pop("teams", None)
        gateway.pop("jwt", None)
        return
    if "teams" not in gateway:
        return
    served = {m["name"] for m in spec.get("models", [])}
    names: set[str] = set()
    clients: set[str] = set()
    teams = []
    for team in gateway["teams"]:
        if "jwt" in gateway:
            team.pop("apiKeySecretRef", None)
        elif "apiKeySecretRef" not in team:
            team["apiKeySecretRef"] = {"name": "team-keys"}
        client = team.get("apiKeySecretRef", {}).get("key") or team["name"]
        if team["name"] in names or client in clients:
            continue
        names.add(team["name"])
        clients.add(client)
        if "models" in team:
            team["models"] = [m for m in team["models"] if m in served]
        may = set(team.get("models") or served) & served
        if isinstance(team.get("quota"), dict) and "models" in team["quota"]:
            team["quota"]["models"] = [q for q in team["quota"]["models"] if q["name"] in may]
        teams.append(team)
    gateway["teams"] = teams


def _repair_exposure_values(exposure: dict[str, Any]) -> None:
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for text in exposure["allowedSourceRanges"]:
        try:  # the network of what the pattern drew, in its canonical form
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            network = DOCUMENTATION_RANGE
        if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
            network = DOCUMENTATION_RANGE
        if network not in networks:
            networks.append(network)
    exposure["allowedSourceRanges"] = [str(n) for n in networks]
    namespace, slash, name = exposure["tlsSecretName"].rpartition("/")
    if len(name) > 253:
        exposure["tlsSecretName"] = f"{namespace}{slash}{name[-253:].lstrip('.-')}"


def _repair_scale_to_zero(spec: dict[str, Any]) -> None:
    """Only Knative can wake a model scaled to zero; elsewhere minReplicas is at least 1."""
    if _effective(spec, "serving") == "knative":
        return
    for model in spec.get("models", []):
        scaling = model.get("scaling")
        if scaling is not None and scaling.get("minReplicas") == 0:
            scaling["minReplicas"] = 1


def _filled(path: str) -> st.SearchStrategy[Any]:
    """Like ``at(path)``, but arrays have at least one item and objects one field."""
    node = dict(schema_at(path))
    if node.get("type") == "array":
        node["minItems"] = max(1, int(node.get("minItems", 0)))
        return from_schema(node, path)
    return at(path).filter(lambda v: v != {})


@st.composite
def valid_specs(draw: Draw) -> dict[str, Any]:
    """Specs the API server admits (schema and CEL) and the function must compose.

    Top-level fields the schema walk left out are filled more often than not
    (``STEER``), so most examples have models and component overrides.
    """
    spec = draw(schema_specs())
    for key, weight in STEER.items():
        if key not in spec and draw(st.integers(0, 3)) < weight:
            spec[key] = draw(_filled(key))
    return repair(draw, spec)


# --------------------------------------------------------------------------------------
# Invalid specs: one mutation of a valid spec, with the path the error must name
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invalid:
    """A broken spec, the mutation applied, and the field path the error must name."""

    spec: Any
    mutation: str
    path: str

    def __repr__(self) -> str:
        """Short enough to read in a falsifying example."""
        return f"Invalid(mutation={self.mutation!r}, path={self.path!r}, spec={self.spec!r})"


def _fmt(parts: tuple[Any, ...]) -> str:
    out = "spec"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _get(spec: Any, parts: tuple[Any, ...]) -> Any:
    node = spec
    for part in parts:
        node = node[part]
    return node


def _leaves(node: Any, parts: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path inside ``node`` (objects, lists and scalars), parents first."""
    out = [parts] if parts else []
    if isinstance(node, Mapping):
        for k in sorted(node):
            out += _leaves(node[k], (*parts, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*parts, i))
    return out


def _wrong_type(value: Any) -> st.SearchStrategy[Any]:
    """Values of a type no lax coercion turns into ``value``'s type."""
    if isinstance(value, Mapping):
        return st.sampled_from(["garbage", 7, [1, 2]])
    if isinstance(value, list):
        return st.sampled_from(["garbage", 7, {"a": 1}])
    return st.sampled_from([{"bad": 1}, [1, 2], ["x"]])


ENUM_FIELDS = (
    "profile",
    "components.cni",
    "components.mesh",
    "components.ingress",
    "components.blockStorage",
    "components.objectStorage",
    "components.serving",
    "components.observability",
    "components.policies",
)

BAD_DNS_NAMES = st.one_of(
    st.sampled_from(["Upper", "under_score", "-lead", "trail-", "dot.ted", "", "sp ace"]),
    st.from_regex(r"[a-z]{21,30}", fullmatch=True),
)

BAD_QUANTITIES = st.one_of(
    st.sampled_from(["50GB", "lots", "1.2.3", "", "Gi", "5 Gi", "0x10", "1e", "--1"]),
    st.text(string.ascii_letters + string.digits + ".+-", max_size=12).filter(
        lambda s: not is_quantity(s)
    ),
    st.just("1" * 33),
)

REQUIRED = (
    ("clusters",),
    ("clusters", "*", "name"),
    ("clusters", "*", "cloud"),
    ("clusters", "*", "kubeconfig"),
    ("clusters", "*", "aws", "clusterName"),
    ("clusters", "*", "aws", "subnetIds"),
    ("clusters", "*", "gcp", "project"),
    ("clusters", "*", "gcp", "clusterName"),
    ("clusters", "*", "azure", "clusterId"),
    ("clusters", "*", "azure", "resourceGroupName"),
    ("clusters", "*", "kubeconfig", "secretRef", "name"),
    ("clusters", "*", "kubeconfig", "secretRef", "namespace"),
    ("clusters", "*", "gpuNodePool", "accelerator", "type"),
    ("models", "*", "name"),
    ("models", "*", "model"),
)


def _expand(spec: Any, pattern: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Concrete paths in ``spec`` matching ``pattern`` ("*" matches every list index)."""
    paths: list[tuple[Any, ...]] = [()]
    for part in pattern:
        nxt = []
        for p in paths:
            node = _get(spec, p)
            if part == "*":
                nxt += [(*p, i) for i in range(len(node))] if isinstance(node, list) else []
            elif isinstance(node, Mapping) and part in node:
                nxt.append((*p, part))
        paths = nxt
    return paths


def _mutate_wrong_type(draw: Draw, spec: dict[str, Any]) -> Invalid:
    parts = draw(st.sampled_from(_leaves(spec)))
    parent = _get(spec, parts[:-1])
    parent[parts[-1]] = draw(_wrong_type(parent[parts[-1]]))
    return Invalid(spec, "wrong type", _fmt(parts))


def _mutate_enum(draw: Draw, spec: dict[str, Any]) -> Invalid:
    choice = draw(st.sampled_from([*ENUM_FIELDS, "clusters.cloud"]))
    bogus = draw(st.sampled_from(["bogus", "AWS", "Production", "", "none "]))
    if choice == "clusters.cloud":
        i = draw(st.integers(0, len(spec["clusters"]) - 1))
        spec["clusters"][i]["cloud"] = bogus
        return Invalid(spec, "out-of-enum value", f"spec.clusters[{i}].cloud")
    node = spec
    *head, leaf = choice.split(".")
    for part in head:
        node = node.setdefault(part, {})
    node[leaf] = bogus
    return Invalid(spec, "out-of-enum value", f"spec.{choice}")


def _mutate_duplicate(draw: Draw, spec: dict[str, Any]) -> Invalid:
    lists = ["clusters"] + (["models"] if spec.get("models") else [])
    field = draw(st.sampled_from(lists))
    items = spec[field]
    source = draw(st.integers(0, len(items) - 1))
    twin = copy.deepcopy(items[source])
    at_index = draw(st.integers(source + 1, len(items)))
    items.insert(at_index, twin)
    return Invalid(spec, "duplicate name", f"spec.{field}[{at_index}].name")


def _mutate_unknown_cluster(draw: Draw, spec: dict[str, Any]) -> Invalid:
    names = {c["name"] for c in spec["clusters"]}
    unknown = draw(
        st.from_regex(r"nowhere-[a-z0-9]{1,8}", fullmatch=True).filter(lambda n: n not in names)
    )
    models = spec.setdefault("models", [])
    if not models:
        models.append({"name": "m", "model": "llama2"})
    i = draw(st.integers(0, len(models) - 1))
    targets = models[i].setdefault("clusters", [])
    j = draw(st.integers(0, len(targets)))
    targets.insert(j, unknown)
    return Invalid(spec, "unknown cluster in a model", f"spec.models[{i}].clusters[{j}]")


def _mutate_min_over_max(draw: Draw, spec: dict[str, Any]) -> Invalid:
    clouds = [i for i, c in enumerate(spec["clusters"]) if c["cloud"] != "existing"]
    models = list(range(len(spec.get("models", []))))
    high = draw(st.integers(1, 50))
    low = draw(st.integers(high + 1, 100))
    if clouds and (not models or draw(st.booleans())):
        i = draw(st.sampled_from(clouds))
        pool = spec["clusters"][i].setdefault("gpuNodePool", {})
        pool["minNodes"], pool["maxNodes"] = low, high
        return Invalid(spec, "minNodes > maxNodes", f"spec.clusters[{i}].gpuNodePool.minNodes")
    if not models:
        spec["models"] = [{"name": "m", "model": "llama2"}]
        models = [0]
    i = draw(st.sampled_from(models))
    scaling = spec["models"][i].setdefault("scaling", {})
    scaling["minReplicas"], scaling["maxReplicas"] = low, high
    return Invalid(spec, "minReplicas > maxReplicas", f"spec.models[{i}].scaling.minReplicas")


def _mutate_quantity(draw: Draw, spec: dict[str, Any]) -> Invalid:
    bad = draw(BAD_QUANTITIES)
    targets = [("policy", "maxStorageRequest")]
    for i in range(len(spec.get("models", []))):
        targets += [
            ("models", i, "storage", "size"),
            ("models", i, "resources", "memory"),
            ("models", i, "resources", "cpu"),
        ]
    parts = draw(st.sampled_from(targets))
    node = spec
    for part in parts[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[parts[-1]] = bad
    return Invalid(spec, "malformed quantity", _fmt(parts))


def _mutate_name(draw: Draw, spec: dict[str, Any]) -> Invalid:
    field = draw(st.sampled_from(["clusters"] + (["models"] if spec.get("models") else [])))
    i = draw(st.integers(0, len(spec[field]) - 1))
    bad = draw(
        BAD_DNS_NAMES
        if field == "clusters"
        else st.one_of(
            BAD_DNS_NAMES.filter(lambda n: not re.fullmatch(r"[a-z]{21,40}", n)),
            st.from_regex(r"[a-z]{41,50}", fullmatch=True),
        )
    )
    spec[field][i]["name"] = bad
    return Invalid(spec, "name too long / not DNS", f"spec.{field}[{i}].name")


def _mutate_remove_required(draw: Draw, spec: dict[str, Any]) -> Invalid:
    candidates = [p for pattern in REQUIRED for p in _expand(spec, pattern)]
    parts = draw(st.sampled_from(candidates))
    del _get(spec, parts[:-1])[parts[-1]]
    return Invalid(spec, "remove required field", _fmt(parts))


def _mutate_both_kubeconfigs(draw: Draw, spec: dict[str, Any]) -> Invalid:
    i = draw(st.integers(0, len(spec["clusters"]) - 1))
    kube = spec["clusters"][i]["kubeconfig"]
    kube.setdefault("providerConfigName", draw(at("clusters[].kubeconfig.providerConfigName")))
    kube.setdefault("secretRef", draw(at("clusters[].kubeconfig.secretRef")))
    return Invalid(spec, "both kubeconfig options", f"spec.clusters[{i}].kubeconfig")


def _mutate_garbage(draw: Draw, spec: dict[str, Any]) -> Invalid:
    del spec
    garbage = draw(st.sampled_from(["garbage", 42, [1, 2], True, 3.5, ["clusters"]]))
    return Invalid(garbage, "garbage non-dict spec", "spec")


MUTATIONS: tuple[Callable[[Draw, dict[str, Any]], Invalid], ...] = (
    _mutate_wrong_type,
    _mutate_enum,
    _mutate_duplicate,
    _mutate_unknown_cluster,
    _mutate_min_over_max,
    _mutate_quantity,
    _mutate_name,
    _mutate_remove_required,
    _mutate_both_kubeconfigs,
    _mutate_garbage,
)


@st.composite
def invalid_specs(
    draw: Draw, mutations: tuple[Callable[[Draw, dict[str, Any]], Invalid], ...] = MUTATIONS
) -> Invalid:
    """A valid spec broken by exactly one of ``mutations``, with the path its error must name."""
    spec = draw(valid_specs())
    mutate = draw(st.sampled_from(mutations))
    return mutate(draw, spec)
