"""Find values keys a chart does not read.

A key the function sets is read when one of these holds:

- it is in the chart's ``values.yaml`` at that path (values of subcharts are
  checked against the subchart, under its name or alias; ``global`` against
  every chart);
- it sits under a free-form map: the default there is ``{}`` or null, or the
  templates hand the whole map to ``toYaml``/``toJson``/``tpl``/``range``
  (``toYaml .Values.cephClusterSpec``, ``with .Values.x }} {{ toYaml .``), also
  through a variable (``$x := .Values.x`` then ``merge $x ...``);
- the templates reference it: ``.Values.<path>`` literally, or, inside list
  items and ``with`` blocks where paths are relative, ``.<key>`` or ``"<key>"``.

The last rule is lenient on purpose (a key named ``type`` is always found);
what it catches is a key the chart no longer knows at all, such as a removed
or misspelt option.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_WHOLE = r"(?:toYaml|toJson|toPrettyJson|toRawJson|tpl|range|merge|mergeOverwrite|deepCopy|include)"


@dataclass
class ChartText:
    """A chart's defaults, template text and subcharts."""

    name: str
    defaults: dict[str, Any]
    text: str
    subcharts: dict[str, ChartText] = field(default_factory=dict)

    def all_text(self) -> str:
        """Templates of this chart and every subchart (library helpers included)."""
        return self.text + "".join(s.all_text() for s in self.subcharts.values())


@cache
def load(path: Path) -> ChartText:
    """Read a chart directory: values.yaml, templates, and subcharts under charts/."""
    meta = yaml.safe_load((path / "Chart.yaml").read_text()) or {}
    values_file = path / "values.yaml"
    text = values_file.read_text() if values_file.exists() else "{}"
    defaults = yaml.load(text, Loader=_LOADER) or {}  # noqa: S506  # CSafeLoader
    # Istio's charts keep their defaults under this key and merge it into .Values
    # in a helper; users set the fields at the top level (the values file says so).
    internal = defaults.get("_internal_defaults_do_not_set")
    if isinstance(internal, dict):
        defaults = {
            **internal,
            **{k: v for k, v in defaults.items() if k != "_internal_defaults_do_not_set"},
        }
    parts = []
    for sub in ("templates", "files"):
        base = path / sub
        if base.is_dir():
            # Templates, and files the templates render with tpl (Cilium's node-init script).
            parts += [p.read_text(errors="replace") for p in sorted(base.rglob("*")) if p.is_file()]
    aliases = {
        d.get("name"): d.get("alias") or d.get("name") for d in meta.get("dependencies") or []
    }
    subcharts = {}
    charts = path / "charts"
    if charts.is_dir():
        for sub in sorted(charts.iterdir()):
            if (sub / "Chart.yaml").exists():
                child = load(sub)
                subcharts[aliases.get(child.name, child.name)] = child
    return ChartText(str(meta.get("name")), defaults, "\n".join(parts), subcharts)


def _dotted(path: list[str]) -> str:
    return r"\.".join(re.escape(p) for p in path)


def _referenced(text: str, path: list[str]) -> bool:
    """``.Values.<path>`` appears (as itself or as the start of a longer path)."""
    return re.search(r"\.Values\." + _dotted(path) + r"(?![\w-])", text) is not None


def _whole_map_used(text: str, path: list[str]) -> bool:
    """The map at ``path`` is handed on whole, so any key under it is passed through."""
    ref = r"\$?\.Values\." + _dotted(path) + r"(?![\w.-])"
    patterns = (
        _WHOLE + r"\b[^}\n]*?\(?\s*" + ref,  # toYaml .Values.x / range $k, $v := .Values.x
        ref + r"\s*\|\s*" + _WHOLE,  # .Values.x | toYaml
        r"with\s+" + ref + r"\s*-?}}\s*(?:\n\s*)?[^\n{]*{{-?\s*" + _WHOLE + r"\s+\.\s",
    )
    if any(re.search(p, text) for p in patterns):
        return True
    # $x := .Values.x, then $x handed on whole (gateway-helm: merge $x $defaults | toYaml).
    for var in re.findall(r"\$(\w+)\s*:=\s*" + ref, text):
        if re.search(_WHOLE + r"\b[^}\n]*?\$" + var + r"\b", text):
            return True
    return False


def _leaf_mentioned(text: str, key: str) -> bool:
    """``.key`` or ``"key"`` appears: read relative to a ``with``/``range`` context or by index."""
    return re.search(r"\." + re.escape(key) + r"(?![\w-])", text) is not None or f'"{key}"' in text


def _item_defaults(default: Any) -> dict[str, Any]:
    """The union of the dict items of a default list (what one list item may carry)."""
    out: dict[str, Any] = {}
    if isinstance(default, list):
        for item in default:
            if isinstance(item, Mapping):
                for k, v in item.items():
                    out.setdefault(k, v)
    return out


def unknown_keys(chart_path: Path, values: Mapping[str, Any]) -> list[str]:
    """Paths of keys in ``values`` the chart at ``chart_path`` does not read."""
    chart = load(chart_path)
    out: list[str] = []
    _check_chart(chart, values, [], out, root=chart)
    return sorted(out)


def _check_chart(
    chart: ChartText, values: Mapping[str, Any], prefix: list[str], out: list[str], root: ChartText
) -> None:
    for key, value in values.items():
        where = [*prefix, key]
        if key == "global" and isinstance(value, Mapping):
            # Globals reach every chart; a global key must be read by one of them.
            text = root.all_text()
            for gkey in value:
                if not (
                    _referenced(text, ["global", gkey])
                    or gkey in (chart.defaults.get("global") or {})
                    or _leaf_mentioned(text, gkey)
                ):
                    out.append(".".join([*where, gkey]))
            continue
        if key in chart.subcharts and isinstance(value, Mapping):
            sub = chart.subcharts[key]
            own = chart.defaults.get(key) if isinstance(chart.defaults.get(key), Mapping) else {}
            merged = ChartText(sub.name, {**sub.defaults, **own}, sub.text, sub.subcharts)
            _check_chart(merged, value, where, out, root=sub)
            continue
        _check(chart, key, value, chart.defaults, [key], where, out, relative=False)


def _check(  # noqa: PLR0917  # a recursive walk's state
    chart: ChartText,
    key: str,
    value: Any,
    defaults: Mapping[str, Any] | None,
    path: list[str],
    shown: list[str],
    out: list[str],
    *,
    relative: bool,
) -> None:
    """Check ``key`` (at values path ``path``) against ``defaults`` (its parent's defaults)."""
    text = chart.all_text()
    known = defaults is not None and key in defaults
    if not known:
        read = (
            _leaf_mentioned(text, key)
            if relative
            else (_referenced(text, path) or _leaf_mentioned(text, key))
        )
        if not read:
            out.append(".".join(shown))
            return
    default = defaults.get(key) if defaults is not None and known else None
    if isinstance(value, Mapping):
        if known and (default is None or default == {}):
            return  # a free-form map
        if not relative and _whole_map_used(text, path):
            return
        if not known and not isinstance(default, Mapping):
            # Read by the templates but not declared: its children are read
            # relative to it (with/range), so check them by name only.
            for k, v in value.items():
                _check(chart, k, v, None, [*path, k], [*shown, k], out, relative=True)
            return
        sub_defaults = default if isinstance(default, Mapping) else {}
        for k, v in value.items():
            _check(chart, k, v, sub_defaults, [*path, k], [*shown, k], out, relative=relative)
    elif isinstance(value, list) and isinstance(default, list):
        items = _item_defaults(default)
        if not items:
            return  # a list of scalars, or an empty default: whatever the items are
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                for k, v in item.items():
                    _check(
                        chart,
                        k,
                        v,
                        items,
                        [*path, k],
                        [*shown[:-1], f"{shown[-1]}[{i}]", k],
                        out,
                        relative=True,
                    )
