"""Every Release of every example, profile and stage, rendered by helm with its real chart.

For each chart, every distinct set of values the function emits is rendered
with ``helm template`` (release name = external name, its namespace, valuesFrom
then values), and must render without error, use only values keys the chart
reads, fit the chart's published values schema where one exists, and produce
manifests valid against the Kubernetes schemas and the CRDs.
"""

from __future__ import annotations

import time

import pytest

from function.models.input import DEFAULT_CHARTS
from tests.charts import helm, rendered, schemas, valuekeys

CHART_NAMES = sorted({chart for _, chart, _ in DEFAULT_CHARTS.values()})
# Charts in the catalogue no example composes cannot be checked; there are none today.
STARTED = time.monotonic()


@pytest.fixture(scope="module")
def by_chart() -> dict[str, list[rendered.Distinct]]:
    helm.charts_dir()
    helm.helm_binary()
    found = rendered.by_chart()
    for distinct in found.values():
        for d in distinct:
            try:
                schemas.rendered_crds().add(helm.template(d.render))
            except helm.RenderError:
                continue
    return found


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_chart_renders_with_the_values_the_function_emits(
    chart: str, by_chart: dict[str, list[rendered.Distinct]]
) -> None:
    distinct = by_chart.get(chart)
    assert distinct, f"no example composes a Release of chart {chart}"
    problems: list[str] = []
    for d in distinct:
        where = f"{d.render.label} (e.g. {d.where[0]}, {len(d.where)} releases)"
        unknown = valuekeys.unknown_keys(d.render.chart.path, d.render.values)
        problems += [f"{where}: values key {k} is not read by the chart" for k in unknown]
        problems += [
            f"{where}: values schema: {e}" for e in schemas.values_schema_errors(d.render.chart, d.render.values)
        ]
        try:
            docs = helm.template(d.render)
        except helm.RenderError as exc:
            problems.append(f"{where}: helm template failed: {str(exc)[-1500:]}")
            continue
        assert docs, f"{where}: rendered nothing"
        _, errors = schemas.validate_all(docs)
        problems += [f"{where}: {e}" for e in errors]
    assert not problems, "\n".join(problems[:40]) + (
        f"\n... and {len(problems) - 40} more" if len(problems) > 40 else ""
    )


def test_totals(by_chart: dict[str, list[rendered.Distinct]]) -> None:
    """Print what was rendered and checked (and assert the corpus is not trivially small)."""
    distinct = [d for ds in by_chart.values() for d in ds]
    objects = 0
    for d in distinct:
        try:
            objects += len(helm.template(d.render))
        except helm.RenderError:
            continue
    releases = rendered.release_count()
    line = (
        f"charts: {len(by_chart)} charts, {releases} Releases rendered "
        f"({len(distinct)} distinct renders), {objects} objects checked, "
        f"{time.monotonic() - STARTED:.1f}s"
    )
    print(line)
    helm.record_total("render", line)
    assert len(by_chart) == len(CHART_NAMES)
    assert releases > len(distinct) > len(CHART_NAMES)
