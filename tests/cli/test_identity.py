"""Cluster access by cloud identity, with the real `crossplane beta validate`.

The ProviderConfigs of every identity type against the real provider-helm and
provider-kubernetes CRDs; the README's identity setup (runtime configs,
Providers, the claim) against Crossplane's CRDs and the XRD, CEL included; and
the identity rules of the XRD refusing each wrong claim of tests/invalid_claims.py
with its field path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from function import access
from function.models.platform import IdentityType
from tests import toolchain
from tests.invalid_claims import REFUSED_BY_API
from tests.unit.test_access import IDENTITY, _readme_docs, identity_context

ROOT = toolchain.ROOT
IDENTITY_CASES = [c for c in REFUSED_BY_API if c.id.startswith("identity-")]


@pytest.mark.cli
def test_every_identity_type_validates_against_the_real_provider_crds(tmp_path: Path) -> None:
    docs = []
    for cloud in sorted(IDENTITY):
        for composed in access.provider_configs(identity_context(cloud, IDENTITY[cloud][0])):
            body = composed.body
            docs.append({**body, "metadata": {**body["metadata"], "name": f"{cloud}-{composed.key}"}})
    assert {d["spec"]["identity"]["type"] for d in docs} == {m.value for m in IdentityType}
    out = tmp_path / "providerconfigs.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    code, log = toolchain.validate([toolchain.crds_dir() / "helm", toolchain.crds_dir() / "kubernetes"], out)
    n = len(docs)
    assert code == 0, log[-4000:]
    assert f"Total {n} resources: 0 missing schemas, {n} success cases, 0 failure cases" in log


@pytest.mark.cli
def test_the_readme_identity_setup_validates(tmp_path: Path) -> None:
    docs = _readme_docs()
    out = tmp_path / "readme.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    code, log = toolchain.validate([toolchain.crds_dir() / "crossplane", ROOT / "xrds"], out)
    n = len(docs)
    assert code == 0, log[-4000:]
    assert f"Total {n} resources: 0 missing schemas, {n} success cases, 0 failure cases" in log


@pytest.mark.cli
def test_the_xrd_refuses_each_wrong_identity_naming_the_field(tmp_path: Path) -> None:
    assert len(IDENTITY_CASES) >= 4
    for case in IDENTITY_CASES:
        out = tmp_path / f"{case.id}.yaml"
        out.write_text(yaml.safe_dump(case.claim()))
        code, log = toolchain.validate([ROOT / "xrds"], out)
        assert code != 0, f"{case.id} was accepted"
        path, message = case.api
        assert message in log, (case.id, log[-3000:])
        assert path in log, (case.id, log[-3000:])
