"""What every model cache backend answers, and the shape of the answers.

A backend is where a cluster's models cache their blobs (a cloud bucket, the
MinIO tenant) and how the models reach it. ``modelcache.backend(ctx)`` picks
one per cluster; the planner asks it four questions and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeAlias

from function.composed import Composed, Gate, Unknown
from function.context import ClusterContext

Observed: TypeAlias = Mapping[str, Mapping[str, Any]]

# A fleet's ``cache`` block; UNKNOWN while what it names is not reported (an
# existing fleet then keeps the block it carries: ``spec.cache`` is latched);
# None when the models pull without a cache.
CacheBlock: TypeAlias = dict[str, Any] | Unknown | None


class Backend(Protocol):
    """One store of the model cache: the four answers the planner asks of it.

    Each backend module (``s3``, ``gcs``, ``azureblob``, ``minio``) is one, by
    its functions of these names.
    """

    def composes(self, ctx: ClusterContext, observed: Observed) -> list[Composed]:
        """What the cluster gets so that its models reach the store.

        The identity chain from each model's ServiceAccount to the store.
        """

    def fleet_cache(self, ctx: ClusterContext, observed: Observed) -> CacheBlock:
        """The ``cache`` block of the cluster's fleets."""

    def gates(self, ctx: ClusterContext, model: str, observed: Observed) -> tuple[Gate, ...]:
        """What the fleet of ``model`` waits for before it is first composed.

        So that its first pod already restores from (and saves to) the cache.
        """

    def warning(self, ctx: ClusterContext, observed: Observed) -> str | None:
        """Why the store cannot serve the cluster's models (a prerequisite is off), or None."""


class _NoCache:
    """No store: the cluster's models pull from the registry."""

    @staticmethod
    def composes(ctx: ClusterContext, observed: Observed) -> list[Composed]:  # noqa: ARG004  # the interface's signature
        """Nothing."""
        return []

    @staticmethod
    def fleet_cache(ctx: ClusterContext, observed: Observed) -> CacheBlock:  # noqa: ARG004  # the interface's signature
        """No ``cache`` block."""
        return None

    @staticmethod
    def gates(ctx: ClusterContext, model: str, observed: Observed) -> tuple[Gate, ...]:  # noqa: ARG004  # the interface's signature
        """Nothing to wait for."""
        return ()

    @staticmethod
    def warning(ctx: ClusterContext, observed: Observed) -> None:  # noqa: ARG004  # the interface's signature
        """Nothing to say."""
        return


NO_CACHE: Backend = _NoCache()
