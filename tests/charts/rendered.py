"""Render every Release of the corpus with its real chart, once per distinct input.

``renders()`` maps each distinct (chart, version, values, API versions) to the
Releases that asked for it; ``cluster_objects(state)`` is what helm would apply
on one cluster. Clusters get the CRD API versions their own charts install, so
a chart that tests ``.Capabilities.APIVersions`` (Cilium's ServiceMonitor
check) sees the cluster it will really run on.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from function import naming
from tests.charts import corpus, helm

PARALLEL = int(os.environ.get("OLLAMA_PLATFORM_HELM_JOBS", "2"))


def crd_api_versions(docs: list[dict[str, Any]]) -> set[str]:
    """``group/version`` and ``group/version/Kind`` of every served CRD in ``docs``."""
    out: set[str] = set()
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc.get("spec") or {}
        for version in spec.get("versions") or []:
            if version.get("served", True):
                gv = f"{spec.get('group')}/{version.get('name')}"
                out |= {gv, f"{gv}/{(spec.get('names') or {}).get('kind')}"}
    return out


def _prefetch(renders: list[helm.Render]) -> None:
    """Render in parallel (results land in the on-disk cache); errors are read later."""
    # pytest-xdist workers walk the list from opposite ends and meet in the middle.
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") not in ("gw0", "master"):
        renders = list(reversed(renders))

    with ThreadPoolExecutor(max_workers=max(1, PARALLEL)) as pool:
        list(pool.map(helm.ensure, renders))


@cache
def _states() -> dict[tuple[str, str], corpus.ClusterState]:
    return {(s.source, s.cluster): s for s in corpus.cluster_states()}


@cache
def cluster_api_versions(source: str, cluster: str) -> frozenset[str]:
    """CRD API versions the charts of ``cluster`` (in ``source``'s ready state) install."""
    state = _states().get((source, cluster))
    if state is None:
        return frozenset()
    out: set[str] = set()
    for release in state.releases:
        out |= _provided(helm.render_of(release))
    return frozenset(out)


_PROVIDED: dict[str, frozenset[str]] = {}


def _provided(render: helm.Render) -> frozenset[str]:
    if render.key not in _PROVIDED:
        try:
            _PROVIDED[render.key] = frozenset(crd_api_versions(helm.template(render)))
        except helm.RenderError:
            _PROVIDED[render.key] = frozenset()
    return _PROVIDED[render.key]


@dataclass
class Distinct:
    """One distinct render and every Release (with where it came from) that asks for it."""

    render: helm.Render
    where: list[str] = field(default_factory=list)


@cache
def renders() -> dict[str, Distinct]:
    """Every distinct render of the corpus, by render key."""
    releases = list(corpus.releases())
    _prefetch(sorted({helm.render_of(r).key: helm.render_of(r) for _, r in releases}.values(), key=lambda r: r.key))
    out: dict[str, Distinct] = {}
    for where, release in releases:
        source = where.split(" stage ", 1)[0]
        cluster = (release["metadata"].get("labels") or {}).get(naming.LABEL_CLUSTER, "")
        render = helm.render_of(release, cluster_api_versions(source, cluster))
        out.setdefault(render.key, Distinct(render)).where.append(where)
    missing = [d.render for d in out.values()]
    _prefetch(missing)
    return out


def release_count() -> int:
    """Releases (across every source and stage) behind the distinct renders."""
    return sum(len(d.where) for d in renders().values())


def by_chart() -> dict[str, list[Distinct]]:
    """Distinct renders grouped by chart name."""
    out: dict[str, list[Distinct]] = defaultdict(list)
    for d in renders().values():
        out[d.render.chart.name].append(d)
    return dict(out)


def cluster_objects(state: corpus.ClusterState) -> list[tuple[str, dict[str, Any]]]:
    """(release external name, object) for everything helm applies on one cluster."""
    apis = cluster_api_versions(state.source, state.cluster)
    out = []
    for release in state.releases:
        render = helm.render_of(release, apis)
        out += [(render.name, in_namespace(doc, render.namespace)) for doc in helm.template(render)]
    return out


def in_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``doc`` as Helm applies it: templates that name no namespace go to the release's."""
    meta = doc.get("metadata") or {}
    if meta.get("namespace"):
        return doc
    return {**doc, "metadata": {**meta, "namespace": namespace}}
