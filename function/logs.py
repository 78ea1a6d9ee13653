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


def configure(*, debug: bool = False) -> None:
    """JSON lines at INFO (DEBUG with ``debug``), without tracebacks or long values."""
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
