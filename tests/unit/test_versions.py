"""The Crossplane versions the package claims: 2.0 or newer (ClusterUsage), tested on 2.1.4."""

from __future__ import annotations

import re

import yaml

from tests.toolchain import ROOT


def test_package_requires_crossplane_2() -> None:
    meta = yaml.safe_load((ROOT / "package" / "crossplane.yaml").read_text())
    assert meta["spec"]["crossplane"]["version"] == ">=v2.0.0"


def test_readme_states_the_tested_version() -> None:
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| Crossplane |"))
    assert "`>= v2.0`" in row and "v2.1.4" in row
    assert not re.search(r"v1\.\d+", row)
