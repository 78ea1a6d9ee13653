"""Kubernetes resource quantities: parse and compare without floating point."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

# The part of the Kubernetes quantity grammar a claim may use: no sign and no
# exponent, so every value is non-negative and bounded by the field's length.
QUANTITY_PATTERN = r"^(([0-9]+(\.[0-9]+)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE])?$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
# The same grammar with a non-zero digit somewhere: a quantity greater than zero.
POSITIVE_QUANTITY_PATTERN = (
    r"^(([0-9]*[1-9][0-9]*(\.[0-9]+)?)|([0-9]+\.[0-9]*[1-9][0-9]*)|(\.[0-9]*[1-9][0-9]*))"
    r"(([KMGTPE]i)|[numkMGTPE])?$"
)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
}


def is_quantity(value: str) -> bool:
    """Tell whether ``value`` is a well-formed Kubernetes quantity."""
    return bool(_QUANTITY_RE.match(value))


@lru_cache(maxsize=1024)  # claims repeat a few quantities (memory, cpu, storage)
def parse_quantity(value: str) -> Decimal:
    """Return the quantity as an exact Decimal in base units.

    Raises:
        ValueError: ``value`` is not a Kubernetes quantity.
    """
    if not is_quantity(value):
        msg = f"{value!r} is not a Kubernetes quantity (for example 50Gi, 500m, 4)"
        raise ValueError(msg)
    for suffix, factor in _BINARY.items():
        if value.endswith(suffix):
            return Decimal(value[: -len(suffix)]) * factor
    if value[-1] in "numkMGTPE":
        return Decimal(value[:-1]) * _DECIMAL[value[-1]]
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the regex excludes this
        msg = f"{value!r} is not a Kubernetes quantity"
        raise ValueError(msg) from exc
