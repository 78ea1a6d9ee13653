"""The real crossplane CLI: render every example, validate everything it composes.

These tests run `crossplane render` against the function started with
--insecure on a free port, and `crossplane beta validate` against the XRDs and
the provider CRDs (OLLAMA_PLATFORM_CRDS, default ../shared/crds). Under CI=true
a missing tool fails them.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests import toolchain
from tests.manifests import wrapped_manifests

ROOT = toolchain.ROOT
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if (p / "xr.yaml").exists())
COMPOSITIONS = {
    "XOllamaPlatform": ROOT / "compositions" / "ollama-platform.yaml",
    "XOllamaFleet": ROOT / "compositions" / "ollama-fleet.yaml",
}
XRDS = {
    "XOllamaPlatform": ROOT / "xrds" / "xollamaplatforms.openhands.ai.yaml",
    "XOllamaFleet": ROOT / "xrds" / "xollamafleets.openhands.ai.yaml",
}


def stages(example: Path) -> list[Path | None]:
    return [None, *sorted(example.glob("observed-*.yaml"))]


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    toolchain.crossplane()
    with toolchain.function_server() as p:
        yield p


def kind_of(example: Path) -> str:
    return str(yaml.safe_load((example / "xr.yaml").read_text())["kind"])


def render_example(port: int, example: Path, observed: Path | None) -> list[dict[str, Any]]:
    kind = kind_of(example)
    return toolchain.render(
        port, example / "xr.yaml", COMPOSITIONS[kind], observed=observed, xrd=XRDS[kind]
    )


@pytest.fixture(scope="module")
def rendered(port: int) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for example in EXAMPLES:
        for stage in stages(example):
            name = f"{example.name}/{stage.name if stage else 'initial'}"
            out[name] = render_example(port, example, stage)
    return out


def composed(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rendered documents without the XR and the function results."""
    return [d for d in docs[1:] if d.get("kind") != "Result"]


def test_every_example_renders_without_fatal(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert len(rendered) >= len(EXAMPLES)
    for name, docs in rendered.items():
        results = [d for d in docs if d.get("kind") == "Result"]
        assert not [r for r in results if r.get("severity") == "SEVERITY_FATAL"], name
        assert docs[0]["kind"] in COMPOSITIONS, name
        assert composed(docs), f"{name} composes nothing"


def test_render_output_is_deterministic(port: int) -> None:
    example = ROOT / "examples" / "multicloud"
    first = render_example(port, example, stages(example)[-1])
    second = render_example(port, example, stages(example)[-1])
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_rendered_resources_validate_against_real_crds(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = [d for name in sorted(rendered) for d in composed(rendered[name])]
    out = tmp_path / "rendered.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    code, log = toolchain.validate([*toolchain.extensions(), ROOT / "xrds"], out)
    summary = log.strip().splitlines()[-1] if code == 0 else log[-4000:]
    assert code == 0, summary
    print(f"\nrendered resources validated: {len(docs)} across {len(rendered)} renders")
    assert (
        f"Total {len(docs)} resources: 0 missing schemas, {len(docs)} success cases, 0 failure cases"
        in log
    )


def test_wrapped_crd_manifests_validate(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    crd_kinds, _core = wrapped_manifests(
        d for name in sorted(rendered) for d in composed(rendered[name])
    )
    assert crd_kinds, "no wrapped custom resources found"
    out = tmp_path / "manifests.yaml"
    out.write_text(yaml.safe_dump_all(crd_kinds))
    code, log = toolchain.validate(toolchain.extensions(), out)
    assert code == 0, log[-4000:]
    n = len(crd_kinds)
    print(f"\nwrapped custom resources validated: {n}")
    assert f"Total {n} resources: 0 missing schemas, {n} success cases, 0 failure cases" in log


def test_wrapped_core_manifests_validate_against_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    _crds, core = wrapped_manifests(
        d for name in sorted(rendered) for d in composed(rendered[name])
    )
    kinds = {m["kind"] for m in core}
    assert {"Namespace", "StatefulSet", "Service"} <= kinds
    for manifest in core:
        kubernetes_validate.validate(manifest, "1.33", strict=True)
    print(f"\nwrapped core objects validated: {len(core)}")


def test_example_claims_and_xrs_validate_against_xrds(tmp_path: Path) -> None:
    docs = []
    for example in EXAMPLES:
        docs += [yaml.safe_load((example / f).read_text()) for f in ("claim.yaml", "xr.yaml")]
    out = tmp_path / "claims.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    code, log = toolchain.validate([ROOT / "xrds"], out)
    assert code == 0, log[-4000:]
    assert f"0 missing schemas, {len(docs)} success cases, 0 failure cases" in log


def test_claim_and_xr_specs_agree() -> None:
    for example in EXAMPLES:
        claim = yaml.safe_load((example / "claim.yaml").read_text())
        xr = yaml.safe_load((example / "xr.yaml").read_text())
        assert claim["spec"] == xr["spec"], example.name
        assert xr["kind"] == "X" + claim["kind"]


def test_cel_rules_reject_invalid_claims() -> None:
    code, log = toolchain.validate([ROOT / "xrds"], ROOT / "tests" / "cli" / "invalid")
    assert code != 0
    for message in (
        "aws is required when cloud is aws",
        "set exactly one of kubeconfig.secretRef or kubeconfig.providerConfigName",
        "minNodes must not exceed maxNodes",
        "minReplicas must not exceed maxReplicas",
        "every models[].clusters entry must name a cluster in spec.clusters",
    ):
        assert message in log
    # fieldPath: the rule reports the field it judges, not the object holding it
    assert "spec.clusters[0].aws: Invalid value" in log, log[-3000:]
    assert "spec.clusters[0].gpuNodePool.minNodes: Invalid value" in log
    assert "spec.models: Invalid value" in log


def test_xrds_and_compositions_validate_against_crossplane_crds(tmp_path: Path) -> None:
    docs = [yaml.safe_load(p.read_text()) for p in [*XRDS.values(), *COMPOSITIONS.values()]]
    out = tmp_path / "defs.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    code, log = toolchain.validate([toolchain.crds_dir() / "crossplane", ROOT / "package" / "input"], out)
    assert code == 0, log[-3000:]
    # 2 XRDs, 2 Compositions and the 2 function inputs inside them
    assert "Total 6 resources: 0 missing schemas, 6 success cases, 0 failure cases" in log


def test_xpkg_build_includes_the_input_crd(tmp_path: Path) -> None:
    out = tmp_path / "function.xpkg"
    done = subprocess.run(
        [
            toolchain.crossplane(),
            "xpkg",
            "build",
            f"--package-root={ROOT / 'package'}",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    texts = []
    with tarfile.open(out) as image:
        for member in image.getmembers():
            data = image.extractfile(member)
            if data is None:
                continue
            blob = data.read()
            try:
                with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
                    for inner in layer.getmembers():
                        f = layer.extractfile(inner)
                        if f is not None:
                            texts.append(f.read().decode(errors="replace"))
            except tarfile.TarError:
                continue
    joined = "\n".join(texts)
    assert "kind: Function" in joined
    assert "inputs.ollama.fn.openhands.ai" in joined
