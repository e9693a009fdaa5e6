"""What the consumer needs from the lease coordinator, as Protocols.

The consumer's actors depend on these few calls only, so they are tested with an in-memory fake,
and `kinesis_actors._leases.LeaseCoordinator` satisfies them as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kinesis_actors._leases.lease import Checkpoint, ChildShards, HeldLease

__all__ = ["Coordinator", "LeaseCheckpointer"]


class LeaseCheckpointer(Protocol):
    """Checkpoints and shard-lifecycle gates of held leases.

    Every call may block on DynamoDB, so the consumer makes them on its BlockingExecutor, never
    in a message loop that must stay responsive. Checkpoints raise the
    KCL's errors: ``ShutdownError`` (lease no longer held, or stale token), ``ThrottlingError``
    and ``DependencyError`` (back off), ``InvalidStateError`` (don't retry).
    """

    def checkpoint(self, shard_id: str, checkpoint: Checkpoint, concurrency_token: str) -> None:
        """Record that everything up to and including ``checkpoint`` is processed."""

    def shard_ended(
        self, shard_id: str, concurrency_token: str, child_shards: ChildShards | None = None
    ) -> tuple[str, ...]:
        """Checkpoint SHARD_END and create the children's leases (idempotent)."""

    def parents_finished(self, shard_id: str) -> bool:
        """Whether every parent lease of this (child) shard still in the table is finished."""

    def release(self, shard_id: str, concurrency_token: str) -> bool:
        """Hand the lease over now (after its final checkpoint); True if it was freed."""

    def record_read(self, shard_id: str, records: int, size: int) -> None:
        """Count what one read returned (the shard's measured load, for fleet balancing)."""


class Coordinator(LeaseCheckpointer, Protocol):
    """The whole coordinator as the KinesisConsumer drives it."""

    def start(self) -> None:
        """Create the table if needed, sync shards, start renewing and taking leases."""

    def held_leases(self) -> tuple[HeldLease, ...]:
        """The leases held now, with their latest checkpoints (restarts resume there)."""

    def hand_over(self) -> None:
        """A graceful stop's first step, shards still processing: take no new leases; let the
        other workers ask for the held ones (bounded wait; requests arrive as
        LeaseHandoffRequested)."""

    def stop_taking(self) -> None:
        """Take no new leases; held ones stay renewed so final checkpoints still work."""

    def stop(self, release: bool | None = None) -> None:
        """Release (or drop) every held lease and stop; after the final checkpoints."""
