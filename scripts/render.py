"""Render an example in-process: no cluster, no crossplane CLI, only Python.

    python scripts/render.py examples/multicloud            # summary of what it composes
    python scripts/render.py examples/multicloud --yaml     # the desired resources as YAML
    python scripts/render.py examples/aws --observed examples/aws/observed-3.yaml

It builds the RunFunctionRequest Crossplane would send (the XR, the
Composition's input, observed resources), runs the FunctionRunner, and prints
the response.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crossplane.function import resource  # noqa: E402
from crossplane.function.proto.v1 import run_function_pb2 as fnv1  # noqa: E402

from function import logs  # noqa: E402
from function.fn import FunctionRunner, to_struct  # noqa: E402
from function.validation import plain  # noqa: E402

logs.configure()  # as the server logs by default

COMPOSITIONS = {
    "XOllamaPlatform": ROOT / "compositions" / "ollama-platform.yaml",
    "XOllamaFleet": ROOT / "compositions" / "ollama-fleet.yaml",
}


def load_docs(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in a file, or in every *.yaml file of a directory."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]


def composition_input(kind: str) -> dict[str, Any]:
    """The input the Composition of ``kind`` passes to the function."""
    comp = load_docs(COMPOSITIONS[kind])[0]
    return dict(comp["spec"]["pipeline"][0]["input"])


def observed_map(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Observed composed resources keyed by their composition-resource-name annotation."""
    out = {}
    for doc in docs:
        key = (doc.get("metadata", {}).get("annotations") or {}).get(
            "crossplane.io/composition-resource-name"
        )
        if key:
            out[key] = doc
    return out


def request(
    xr: dict[str, Any], observed: dict[str, dict[str, Any]] | None = None, tag: str = "local"
) -> fnv1.RunFunctionRequest:
    """The RunFunctionRequest Crossplane would send for ``xr``."""
    req = fnv1.RunFunctionRequest(meta=fnv1.RequestMeta(tag=tag))
    req.observed.composite.resource.CopyFrom(to_struct(xr))
    req.input.CopyFrom(to_struct(composition_input(xr["kind"])))
    for key, obj in sorted((observed or {}).items()):
        req.observed.resources[key].resource.CopyFrom(to_struct(obj))
    return req


def run(req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    """Run the function in-process (logging at INFO, as the server does by default)."""
    return asyncio.run(FunctionRunner().RunFunction(req, None))


def desired(rsp: fnv1.RunFunctionResponse) -> dict[str, dict[str, Any]]:
    """Desired composed resources as dicts, keyed by composition resource name."""
    return {
        k: plain(resource.struct_to_dict(v.resource))
        for k, v in sorted(rsp.desired.resources.items())
    }


def main(argv: list[str]) -> int:
    """Render one example and print a summary (or YAML)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("example", type=Path, help="an examples/<case> directory or an XR file")
    parser.add_argument("--observed", type=Path, help="observed resources (file or directory)")
    parser.add_argument("--yaml", action="store_true", help="print the desired resources as YAML")
    parser.add_argument(
        "--walk",
        action="store_true",
        help="play the providers round by round until everything is ready, then summarise",
    )
    args = parser.parse_args(argv)
    xr_path = args.example / "xr.yaml" if args.example.is_dir() else args.example
    xr = load_docs(xr_path)[0]
    observed = observed_map(load_docs(args.observed)) if args.observed else {}
    if args.walk:
        from scripts.stage import walk  # noqa: PLC0415  # stage imports this module

        stages = walk(xr)
        for i, stage in enumerate(stages, start=1):
            print(f"round {i}: {len(stage)} composed resources observed")
        observed = stages[-1] if stages else {}
    rsp = run(request(xr, observed))
    for result in rsp.results:
        print(f"{fnv1.Severity.Name(result.severity)}: {result.message}")
    if any(r.severity == fnv1.SEVERITY_FATAL for r in rsp.results):
        return 1
    resources = desired(rsp)
    if args.yaml:
        print(
            yaml.safe_dump_all(
                [
                    {
                        **body,
                        "metadata": {
                            **body.get("metadata", {}),
                            "annotations": {
                                **(body.get("metadata", {}).get("annotations") or {}),
                                "crossplane.io/composition-resource-name": key,
                            },
                        },
                    }
                    for key, body in resources.items()
                ],
                sort_keys=False,
            )
        )
        return 0
    kinds = Counter(f"{b['kind']} ({b['apiVersion'].split('/')[0]})" for b in resources.values())
    print(f"{xr['kind']} {xr['metadata']['name']}: {len(resources)} composed resources")
    for kind, count in sorted(kinds.items()):
        print(f"  {count:3d}  {kind}")
    for cond in rsp.conditions:
        status = "True" if cond.status == fnv1.STATUS_CONDITION_TRUE else "False"
        print(f"  condition {cond.type}={status}: {cond.message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
