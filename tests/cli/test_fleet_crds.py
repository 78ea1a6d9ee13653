"""Every fleet variant's wrappers and custom resources against the real CRDs (crossplane CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests import toolchain
from tests.unit.test_fleet import variant_objects


@pytest.mark.cli
def test_every_variant_validates_against_the_real_crds(tmp_path: Path) -> None:
    crds = toolchain.crds_dir()
    wrappers, _, custom = variant_objects()
    assert {m["kind"] for m in custom} == {"ScaledObject", "Service", "HTTPProxy", "PodMonitor"}
    for name, docs in (("wrappers.yaml", wrappers), ("custom.yaml", custom)):
        path = tmp_path / name
        path.write_text(yaml.safe_dump_all(docs, sort_keys=True))
        code, out = toolchain.validate([crds], path)
        assert code == 0, out[-4000:]
        n = len(docs)
        assert f"Total {n} resources: 0 missing schemas, {n} success cases, 0 failure cases" in out
