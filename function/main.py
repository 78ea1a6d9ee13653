"""The function's command line: the SDK's standard options, the cache and the grace period."""

from __future__ import annotations

from typing import Any

import click
from crossplane.function import cli as sdkcli

from function import fn, logs, server


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
@click.option(
    "--cache-bytes",
    type=click.IntRange(min=0),
    default=fn.DEFAULT_CACHE_BYTES,
    show_default=True,
    envvar="CACHE_BYTES",
    help="Bytes the response cache may hold in all.",
)
@click.option(
    "--shutdown-grace",
    type=click.FloatRange(min=0),
    default=server.DEFAULT_GRACE_SECONDS,
    show_default=True,
    envvar="SHUTDOWN_GRACE",
    help="Seconds calls in flight get to finish after SIGTERM or SIGINT.",
)
def cli(
    *, cache_size: int, cache_bytes: int, shutdown_grace: float, debug: bool, **kwargs: Any
) -> None:
    """Serve the function-ollama-platform composition function over gRPC."""
    logs.configure(debug=debug)
    runner = fn.FunctionRunner(cache_size=cache_size, cache_bytes=cache_bytes)
    server.run(runner, grace=shutdown_grace, **kwargs)


if __name__ == "__main__":
    cli()
