"""Structured logs that can never carry request data.

The SDK's ``logging.configure`` renders exceptions with
``structlog.processors.dict_tracebacks`` (local variables included) and, at
debug level, with ``ConsoleRenderer`` (rich tracebacks, locals included where
``rich`` is installed): one unexpected exception could print a whole request.
Here every level renders JSON lines, exception and stack information is dropped
before rendering, and every string value is cut short. Callers log kind, name,
tag, counts and exception types only.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

MAX_VALUE_CHARS = 128
# Keys that would render tracebacks (with locals) or stacks: never rendered.
_DROPPED = ("exc_info", "exception", "stack_info", "stack")


def _bounded(value: Any) -> Any:  # a log value
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    if len(text) > MAX_VALUE_CHARS:
        return f"{text[:MAX_VALUE_CHARS]}...({len(text)} chars)"
    return text


def scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: drop tracebacks and stacks, bound every value."""
    for key in _DROPPED:
        event.pop(key, None)
    for key in list(event):
        event[key] = _bounded(event[key])
    return event


class _Bridge(logging.Handler):
    """Standard library records (asyncio, grpc, concurrent.futures) as our JSON lines.

    Only the logger's name, the message (bounded) and the exception's type go
    out: never a traceback, whose frames could hold request data.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        fields: dict[str, Any] = {"logger": record.name}
        if record.exc_info and record.exc_info[0] is not None:
            fields["error"] = record.exc_info[0].__name__
        structlog.get_logger().log(record.levelno, message, **fields)


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "unknown"
    structlog.get_logger().error(
        "uncaught exception in a thread", thread=name, error=args.exc_type.__name__
    )


def _unraisable(args: sys.UnraisableHookArgs) -> None:
    # Exceptions raised where nothing can catch them (a cancelled gRPC call's
    # coroutine in grpc's Cython server, a finaliser): Python prints a traceback.
    structlog.get_logger().warning(
        "exception raised where nothing catches it", error=args.exc_type.__name__
    )


def configure(*, debug: bool = False) -> None:
    """JSON lines at INFO (DEBUG with ``debug``), without tracebacks or long values.

    The standard library's loggers and uncaught exceptions in threads go through
    the same renderer, so nothing the process prints is a bare traceback.
    """
    root = logging.getLogger()
    root.handlers[:] = [_Bridge()]
    root.setLevel(logging.WARNING)
    threading.excepthook = _uncaught_in_thread
    sys.unraisablehook = _unraisable
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            scrub,
            structlog.processors.TimeStamper(key="ts"),
            structlog.processors.EventRenamer(to="msg"),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.INFO
        ),
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:  # a structlog bound logger
    """The function's logger (configure first)."""
    return structlog.get_logger()
