"""The function's command line: the SDK's standard options, nothing else."""

from __future__ import annotations

from typing import Any

import click
from crossplane.function import cli as sdkcli

from function import fn, server


@click.command()
@sdkcli.standard_options
def cli(**kwargs: Any) -> None:
    """Serve the function-ollama-platform composition function over gRPC."""
    server.run(fn.FunctionRunner(), **kwargs)


if __name__ == "__main__":
    cli()
