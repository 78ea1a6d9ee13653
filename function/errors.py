"""The one error the planning layers raise: what is wrong, and where in the XR."""

from __future__ import annotations

from collections.abc import Sequence

# Map keys come from the request: a path echoes at most this much of each.
MAX_KEY_CHARS = 63


def bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def format_path(loc: Sequence[str | int], root: str = "spec") -> str:
    """Render a location tuple as a Kubernetes-style field path.

    Example: ``("clusters", 1, "aws", "subnetIds")`` -> ``spec.clusters[1].aws.subnetIds``.
    """
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = bounded(str(part), MAX_KEY_CHARS)
            out += f".{name}" if out else name
    return out


class ClaimError(Exception):
    """A claim (XR) that cannot be composed, with the field path that says why."""

    def __init__(self, path: str, message: str) -> None:
        """Keep the path and the message apart so callers can format either."""
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class InvalidClaimError(Exception):
    """Several InvalidClaimError found in one pass; the message lists each on its own line."""

    def __init__(self, errors: Sequence[ClaimError]) -> None:
        """Sort the errors by path so the message is deterministic."""
        self.errors = sorted(errors, key=lambda e: (e.path, e.message))
        super().__init__("; ".join(str(e) for e in self.errors))
