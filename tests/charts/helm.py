"""Real Helm charts for tests: find helm and the charts, render a Release as provider-helm would.

    from tests.charts import helm
    docs = helm.template(release)        # the objects helm would apply for a Release body

Charts come from one setting, OLLAMA_PLATFORM_CHARTS (default ``../shared/charts``:
every chart the function installs, unpacked at its pinned version). helm comes
from HELM_BIN, else from ``install-helm.sh`` beside the charts (``../tools``),
which builds the pinned helm into a cache and prints its path. Under CI=true a
missing chart directory or helm fails the test; elsewhere it skips.

Rendering is what provider-helm does for a Release: release name = the Release's
external name, its namespace, ``valuesFrom`` first and the inline values over
them. Renders are cached on disk by (helm, chart, arguments, values) so the
render and wiring tests, in different pytest workers, render each one once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests import toolchain

CHARTS = Path(os.environ.get("OLLAMA_PLATFORM_CHARTS", toolchain.ROOT.parent / "shared" / "charts"))
HELM_INSTALLER = Path(
    os.environ.get("OLLAMA_PLATFORM_HELM_INSTALLER", CHARTS.parent / "tools" / "install-helm.sh")
)
# The Kubernetes version charts are rendered for and manifests validated against.
KUBE_VERSION = "1.33"
EXTERNAL_NAME = "crossplane.io/external-name"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader that reads a bare ``=`` as the string it is (not YAML 1.1's value tag)."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:value"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_LOADER = _Loader
_HAS = re.compile(r'\.Capabilities\.APIVersions\.Has\s+"([^"]+)"')


def charts_dir() -> Path:
    """The chart directory (OLLAMA_PLATFORM_CHARTS, default ../shared/charts)."""
    if not CHARTS.is_dir():
        toolchain.missing(f"chart directory {CHARTS} not found; set OLLAMA_PLATFORM_CHARTS")
    return CHARTS


@cache
def helm_binary() -> str:
    """Path of the pinned helm: HELM_BIN, else built by install-helm.sh (idempotent)."""
    if os.environ.get("HELM_BIN"):
        return os.environ["HELM_BIN"]
    if not HELM_INSTALLER.is_file():
        toolchain.missing(f"{HELM_INSTALLER} not found; set HELM_BIN or OLLAMA_PLATFORM_HELM_INSTALLER")
    done = subprocess.run(["bash", str(HELM_INSTALLER)], capture_output=True, text=True)
    if done.returncode != 0:
        toolchain.missing(f"cannot build helm: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Chart:
    """One unpacked chart: its directory, name, version and what it asks the cluster for."""

    path: Path
    name: str
    version: str

    @property
    def capability_checks(self) -> frozenset[str]:
        """API versions its templates test for with ``.Capabilities.APIVersions.Has``."""
        return _capability_checks(self.path)


@cache
def _capability_checks(path: Path) -> frozenset[str]:
    found: set[str] = set()
    for tpl in path.rglob("*"):
        if tpl.is_file() and tpl.suffix in {".yaml", ".tpl", ".yml", ".txt"}:
            found.update(_HAS.findall(tpl.read_text(errors="replace")))
    return frozenset(found)


def _norm(version: str) -> str:
    return version.removeprefix("v")


@cache
def chart_index() -> dict[tuple[str, str], Chart]:
    """Every top-level chart under the chart directory, by (name, version without 'v')."""
    out: dict[tuple[str, str], Chart] = {}
    for meta in sorted(charts_dir().glob("*/Chart.yaml")):
        doc = yaml.load(meta.read_text(), Loader=_LOADER)  # noqa: S506  # a SafeLoader subclass
        chart = Chart(meta.parent, str(doc["name"]), str(doc["version"]))
        out[(chart.name, _norm(chart.version))] = chart
    return out


def find_chart(name: str, version: str) -> Chart:
    """The unpacked chart ``name`` at ``version`` (a leading 'v' is ignored, as helm does)."""
    found = chart_index().get((name, _norm(version)))
    if found is None:
        known = sorted(f"{n}-{v}" for n, v in chart_index())
        msg = f"chart {name} {version} is not under {CHARTS} (have {known})"
        raise AssertionError(msg)
    return found


# --- valuesFrom ----------------------------------------------------------------

# What the platform team keeps in the ConfigMaps and Secrets Releases read with
# ``valuesFrom`` (the README documents each). Keyed by the reference's name suffix.
VALUES_FROM_FIXTURES: dict[str, dict[str, Any]] = {
    # GKE native routing needs the cluster's pod CIDR (its clusterIpv4Cidr).
    ".cilium-values": {"ipv4NativeRoutingCIDR": "10.64.0.0/14"},
    # Linkerd's identity: the trust anchor and issuer (placeholders; helm only templates them).
    "linkerd-identity-issuer-values": {
        "identityTrustAnchorsPEM": "fake-trust",
        "identity": {"issuer": {"tls": {"crtPEM": "fake-cert", "keyPEM": "fake-key"}}},
    },
}


def values_from(release: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The values each ``valuesFrom`` source holds; an optional source is taken as absent."""
    out = []
    for source in release["spec"]["forProvider"].get("valuesFrom") or []:
        ref = source.get("configMapKeyRef") or source.get("secretKeyRef") or {}
        if ref.get("optional"):
            continue  # the common case: the platform team did not create it
        fixture = next(
            (v for suffix, v in VALUES_FROM_FIXTURES.items() if ref.get("name", "").endswith(suffix)),
            None,
        )
        if fixture is None:
            msg = f"no test fixture for required valuesFrom source {ref}"
            raise AssertionError(msg)
        out.append(fixture)
    return out


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of two values files: maps merge, everything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def effective_values(release: Mapping[str, Any]) -> dict[str, Any]:
    """valuesFrom sources in order, then the inline values over them (provider-helm's order)."""
    merged: dict[str, Any] = {}
    for source in values_from(release):
        merged = deep_merge(merged, source)
    return deep_merge(merged, release["spec"]["forProvider"].get("values") or {})


# --- rendering -----------------------------------------------------------------


@dataclass(frozen=True)
class Render:
    """One ``helm template`` of a Release."""

    chart: Chart
    name: str
    namespace: str
    values: dict[str, Any]
    api_versions: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Digest of everything that decides the output."""
        text = json.dumps(
            [str(self.chart.path), self.name, self.namespace, self.values, self.api_versions],
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def label(self) -> str:
        """``chart-version`` plus release name, for messages."""
        return f"{self.chart.name}-{self.chart.version} as {self.namespace}/{self.name}"


def render_of(release: Mapping[str, Any], cluster_api_versions: Iterable[str] = ()) -> Render:
    """The render a Release body asks for (chart, external name, namespace, values).

    ``cluster_api_versions`` are the CRD API versions the cluster will have; only
    those the chart tests for are passed, so unrelated clusters share a render.
    """
    fp = release["spec"]["forProvider"]
    spec = fp["chart"]
    chart = find_chart(spec["name"], spec["version"])
    name = (release.get("metadata", {}).get("annotations") or {}).get(EXTERNAL_NAME)
    assert name, f"Release without {EXTERNAL_NAME}: {release.get('metadata')}"
    wanted = tuple(sorted(set(cluster_api_versions) & chart.capability_checks))
    return Render(chart, name, fp["namespace"], effective_values(release), wanted)


def _cache_dir() -> Path:
    base = Path(os.environ.get("OLLAMA_PLATFORM_HELM_RENDERS", Path(tempfile.gettempdir())))
    path = base / f"ollama-platform-helm-renders-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


class RenderError(AssertionError):
    """helm template failed."""


def ensure(render: Render) -> Path:
    """Run ``helm template`` (CRDs included) unless its output is cached; return the file."""
    helm = helm_binary()
    key = hashlib.sha256(f"{helm}:{render.key}".encode()).hexdigest()[:32]
    out = _cache_dir() / f"{key}.yaml"
    with (_cache_dir() / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            _run_helm(helm, render, out)
    return out


_DOC_SPLIT = re.compile(r"^---[ \t]*$", re.MULTILINE)


@cache
def _parse_doc(text: str) -> dict[str, Any] | None:
    """One YAML document; identical documents (a chart's CRDs in every render) parse once."""
    doc = yaml.load(text, Loader=_LOADER)  # noqa: S506  # a SafeLoader subclass
    return doc if isinstance(doc, dict) else None


@cache
def _parsed(path: Path) -> tuple[dict[str, Any], ...]:
    docs = (_parse_doc(part) for part in _DOC_SPLIT.split(path.read_text()))
    return tuple(d for d in docs if d is not None)


def template(render: Render) -> list[dict[str, Any]]:
    """The documents ``helm template`` renders for ``render`` (shared: do not modify them).

    Raises RenderError.
    """
    out = ensure(render)
    text = out.read_text()
    if text.startswith("#error\n"):
        msg = f"{render.label}: {text[7:]}"
        raise RenderError(msg)
    return list(_parsed(out))


def _run_helm(helm: str, render: Render, out: Path) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as values:
        yaml.safe_dump(render.values, values)
    cmd = [
        helm,
        "template",
        render.name,
        str(render.chart.path),
        "--namespace",
        render.namespace,
        "--kube-version",
        KUBE_VERSION,
        "--include-crds",
        "--values",
        values.name,
    ]
    for api in render.api_versions:
        cmd += ["--api-versions", api]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HELM_CACHE_HOME": str(_cache_dir() / "home")}
        )
    finally:
        Path(values.name).unlink()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(done.stdout if done.returncode == 0 else f"#error\n{done.stderr.strip()}")
    tmp.replace(out)


# --- totals, shown in the run's warnings summary (xdist carries warnings back) -----


class ChartTotals(UserWarning):
    """Not a problem: the numbers a chart test measured, for the end of the run."""


def record_total(line: str) -> None:
    """Show ``line`` in the warnings summary at the end of the run (and print it)."""
    print(line)
    warnings.warn(ChartTotals(line), stacklevel=2)
