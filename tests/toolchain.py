"""The real toolchain for tests: the crossplane CLI, a running function, validation.

Under CI=true a missing tool fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRDS = Path(os.environ.get("OLLAMA_PLATFORM_CRDS", ROOT.parent / "shared" / "crds"))
CHART_SCHEMAS = Path(
    os.environ.get("OLLAMA_PLATFORM_CHART_SCHEMAS", ROOT.parent / "shared" / "chart-schemas")
)
CHARTS = Path(os.environ.get("OLLAMA_PLATFORM_CHARTS", ROOT.parent / "shared" / "charts"))
# CRDs the pinned charts install that ../shared/crds does not hold: the MinIO
# operator's PolicyBinding (its STS grants the model cache, modelcache/minio.py).
CHART_CRDS = (CHARTS / "operator-7.1.1" / "templates" / "sts.min.io_policybindings.yaml",)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required tool missing under CI=true: {reason}")
    pytest.skip(reason)


def crossplane() -> str:
    """Path of the crossplane CLI, built into the cache on first use."""
    if not shutil.which("go") and not os.environ.get("CROSSPLANE_BIN"):
        missing("go is not installed, cannot build the crossplane CLI")
    if os.environ.get("CROSSPLANE_BIN"):
        return os.environ["CROSSPLANE_BIN"]
    done = subprocess.run(
        [str(ROOT / "scripts" / "install-crossplane.sh")], capture_output=True, text=True
    )
    if done.returncode != 0:
        missing(f"cannot build the crossplane CLI: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def crds_dir() -> Path:
    """The provider CRDs, from OLLAMA_PLATFORM_CRDS (default ../shared/crds)."""
    if not CRDS.is_dir():
        missing(f"CRD directory {CRDS} not found; set OLLAMA_PLATFORM_CRDS")
    return CRDS


def chart_crds() -> list[Path]:
    """The CRD files the pinned charts ship (see ``CHART_CRDS``), for validation."""
    for path in CHART_CRDS:
        if not path.is_file():
            missing(f"chart CRD {path} not found; set OLLAMA_PLATFORM_CHARTS")
    return list(CHART_CRDS)


def extensions() -> list[Path]:
    """Every CRD a composed or wrapped resource may need: the providers' and the charts'."""
    return [crds_dir(), *chart_crds()]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> float:
    """Block until 127.0.0.1:port accepts connections; return the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic() - start
        time.sleep(0.02)
    msg = f"nothing listens on port {port} after {timeout}s"
    raise TimeoutError(msg)


@contextmanager
def function_server(
    executable: list[str] | None = None, extra: list[str] | None = None
) -> Iterator[int]:
    """Start the function (`function --insecure`) on a free port; yield the port."""
    port = free_port()
    cmd = executable or [sys.executable, "-m", "function.main"]
    args = extra if extra is not None else ["--insecure"]
    proc = subprocess.Popen(
        [*cmd, *args, "--address", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def render(
    port: int, xr: Path, composition: Path, observed: Path | None = None, xrd: Path | None = None
) -> list[dict[str, Any]]:
    """Run the real `crossplane render`; return the output documents."""
    cmd = [
        crossplane(),
        "render",
        str(xr),
        str(composition),
        str(ROOT / "examples" / "functions.yaml"),
        "-a",
        f"render.crossplane.io/runtime-development-target=127.0.0.1:{port}",
        "--include-function-results",
    ]
    if observed is not None:
        cmd += ["--observed-resources", str(observed)]
    if xrd is not None:
        cmd += ["--xrd", str(xrd)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        msg = f"crossplane render failed ({done.returncode}):\n{done.stderr}"
        raise AssertionError(msg)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def validate(extensions: list[Path], resources: Path) -> tuple[int, str]:
    """Run the real `crossplane beta validate`; return (exit code, output).

    The CLI and the CRDs are looked up first, so a missing one fails under
    CI=true and skips elsewhere, like every other tool.
    """
    binary = crossplane()
    crds = crds_dir()
    done = subprocess.run(
        [
            str(ROOT / "scripts" / "xvalidate.sh"),
            ",".join(str(e) for e in extensions),
            str(resources),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OLLAMA_PLATFORM_CRDS": str(crds), "CROSSPLANE_BIN": binary},
    )
    return done.returncode, done.stdout + done.stderr


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its children (a server and its workers), in bytes."""
    import psutil  # the benchmarks' dependency, imported where used

    top = psutil.Process(pid)
    return sum(p.memory_info().rss for p in (top, *top.children(recursive=True)))
