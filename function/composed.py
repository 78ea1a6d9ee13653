"""What the builders return: a composed resource with its key, body and gates."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Need(StrEnum):
    """What a gate needs of another composed resource before this one is emitted."""

    EXISTS = "exists"
    READY = "ready"
    # The resource reports ``status.atProvider.<field>``: the owner's body carries
    # that value, so without it the owner is held even once it exists.
    REPORTED = "reported"


@dataclass(frozen=True, slots=True)
class Gate:
    """Emit the owner only once the composed resource ``key`` exists, is ready, or reports a field.

    ``field`` names the ``status.atProvider`` field a ``Need.REPORTED`` gate waits for.
    """

    key: str
    need: Need = Need.READY
    field: str = ""


@dataclass(slots=True)
class Composed:
    """One desired composed resource.

    Attributes:
        key: The composition resource name (the key in desired resources).
        body: The resource as a plain dict, without ``metadata.name``.
        gates: What must exist or be ready before this resource is first emitted.
            Once emitted (observed), a resource is never withdrawn.
    """

    key: str
    body: dict[str, Any]
    gates: tuple[Gate, ...] = ()

    @property
    def api_version(self) -> str:
        """The body's apiVersion."""
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        """The body's kind."""
        return str(self.body["kind"])
