"""The function's command line: the SDK's standard options, nothing else."""

from __future__ import annotations

from typing import Any

import click
from crossplane.function import cli as sdkcli

from function import fn, server


@click.command()
@sdkcli.standard_options
@click.option(
    "--cache-size",
    type=click.IntRange(min=0),
    default=fn.DEFAULT_CACHE_SIZE,
    show_default=True,
    envvar="CACHE_SIZE",
    help="Responses kept for byte-identical repeated requests (0 disables).",
)
def cli(cache_size: int, **kwargs: Any) -> None:
    """Serve the function-ollama-platform composition function over gRPC."""
    server.run(fn.FunctionRunner(cache_size=cache_size), **kwargs)


if __name__ == "__main__":
    cli()
