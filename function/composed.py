"""What the builders return: a composed resource with its key, body and gates."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any


class Unknown(Enum):
    """A value derived from observed state that is not known on this call."""

    UNKNOWN = "unknown"


# Not reported yet, or no longer: the resource that carries it keeps what it has.
UNKNOWN = Unknown.UNKNOWN


class Need(StrEnum):
    """What a gate needs of another composed resource before this one is emitted."""

    EXISTS = "exists"
    READY = "ready"
    # The resource reports ``status.atProvider.<field>``: the owner's body carries
    # that value, so the owner is not created before it is reported. Once the
    # owner exists, a report that goes missing only latches (see ``Composed.latch``).
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
        latch: Body paths whose value derives from observed state that is not
            known on this call (a report went missing, a source is not ready).
            Once the resource exists, each takes the value the resource already
            carries, so a flickering report never rewrites it.
        encoded: The body as a serialised Struct (``codec.struct_bytes``) when a
            memo already holds it, else empty; whoever replaces the body clears it.
    """

    key: str
    body: dict[str, Any]
    gates: tuple[Gate, ...] = ()
    latch: tuple[tuple[str, ...], ...] = ()
    encoded: bytes = field(default=b"", compare=False, repr=False)

    @property
    def api_version(self) -> str:
        """The body's apiVersion."""
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        """The body's kind."""
        return str(self.body["kind"])
