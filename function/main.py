"""The function's command line: the SDK's standard options, the cache and the grace period."""

from __future__ import annotations

from typing import Any

import click
from crossplane.function import cli as sdkcli

from function import fn, logs, server, workers


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
@click.option(
    "--processes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    envvar="PROCESSES",
    help=(
        "Worker processes that parse and plan requests (0: this process's threads "
        "only). One per core the pod may use; each holds its own memos."
    ),
)
def cli(
    *,
    cache_size: int,
    cache_bytes: int,
    shutdown_grace: float,
    processes: int,
    debug: bool,
    **kwargs: Any,
) -> None:
    """Serve the function-ollama-platform composition function over gRPC."""
    logs.configure(debug=debug)
    if processes:
        cache_size, cache_bytes = workers.split_cache(cache_size, cache_bytes, processes)
    runner = fn.FunctionRunner(cache_size=cache_size, cache_bytes=cache_bytes)
    server.run(runner, grace=shutdown_grace, processes=processes, debug=debug, **kwargs)


def _message_limits(command: click.Command) -> None:
    """The SDK's message-size options with this server's defaults (see ``function.server``).

    Requests up to 32 MiB; answers up to Crossplane's 4 MiB, whatever the receive limit.
    """
    for param in command.params:
        if param.name == "max_recv_message_size":
            param.default = server.DEFAULT_MAX_RECV_MIB
        elif param.name == "max_send_message_size" and isinstance(param, click.Option):
            param.default = server.CROSSPLANE_MAX_RECV_MIB
            param.show_default = True
            param.help = (
                "Maximum size of sent gRPC messages in MiB; Crossplane receives at most 4. "
                "A larger answer is a Fatal result."
            )


_message_limits(cli)


if __name__ == "__main__":
    cli()
