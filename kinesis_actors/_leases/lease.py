"""What a lease is, and the messages a `LeaseCoordinator` sends about the leases it holds.

A `Lease` is one row of the lease table as last read or written; it is immutable, so a new copy
stands for every write. A `HeldLease` is what the consumer gets: the shard it may process, where to
resume, and the concurrency token its checkpoints must carry. Each acquisition gets a fresh token,
so a shard worker bound to an earlier acquisition cannot checkpoint over a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kinesis_actors._models import CompoundSequenceNumber, Sentinel

__all__ = [
    "Checkpoint",
    "ChildShards",
    "CoordinatorFailed",
    "HeldLease",
    "Lease",
    "LeaseEvent",
    "LeaseHandoffRequested",
    "LeasesGained",
    "LeasesLost",
]

#: A lease's checkpoint: a record position, or a sentinel (initial position, SHARD_END).
Checkpoint = CompoundSequenceNumber | Sentinel

#: The ``ChildShards`` of a GetRecords (or SubscribeToShard) response, as boto3 returns them.
ChildShards = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Lease:
    """One lease-table item (the KCL 2.x schema), as last read or written.

    ``shard_id`` is the item's ``leaseKey``; ``owner`` is None when the lease is free.
    ``counter`` is the optimistic lock and heartbeat: every renewal, take, checkpoint and release
    raises it by one. Hash keys are the shard's range, None on items written without it.
    """

    shard_id: str
    owner: str | None
    counter: int
    checkpoint: Checkpoint
    owner_switches_since_checkpoint: int = 0
    parent_shard_ids: tuple[str, ...] = ()
    child_shard_ids: tuple[str, ...] = ()
    pending_checkpoint: CompoundSequenceNumber | None = None
    starting_hash_key: int | None = None
    ending_hash_key: int | None = None
    #: KCL 3.x graceful hand-off: while set, ``owner`` is the next owner and this the current one.
    checkpoint_owner: str | None = None
    #: Measured read rate of the shard, bytes/s (KCL 3.x ``throughputKBps`` x 1024) and records/s.
    bytes_per_second: float | None = None
    records_per_second: float | None = None

    @property
    def finished(self) -> bool:
        """The shard was processed to its end."""
        return self.checkpoint == Sentinel.SHARD_END

    @property
    def actual_owner(self) -> str | None:
        """The worker processing the shard now: the hand-off's current owner, else the owner."""
        return self.checkpoint_owner or self.owner


@dataclass(frozen=True)
class HeldLease:
    """A lease this worker holds, as the consumer sees it.

    ``checkpoint`` is where processing resumes: the table's value when the message or
    ``held_leases()`` result was made (in LeasesGained, the value at acquisition). Pass
    ``concurrency_token`` to every ``LeaseCoordinator.checkpoint`` call for this shard.
    """

    shard_id: str
    concurrency_token: str
    checkpoint: Checkpoint
    parent_shard_ids: tuple[str, ...] = ()
    starting_hash_key: int | None = None
    ending_hash_key: int | None = None

    @classmethod
    def of(cls, lease: Lease, concurrency_token: str) -> HeldLease:
        return cls(
            shard_id=lease.shard_id,
            concurrency_token=concurrency_token,
            checkpoint=lease.checkpoint,
            parent_shard_ids=lease.parent_shard_ids,
            starting_hash_key=lease.starting_hash_key,
            ending_hash_key=lease.ending_hash_key,
        )


@dataclass(frozen=True)
class LeasesGained:
    """These leases are now held: start (or resume) a shard worker for each."""

    leases: tuple[HeldLease, ...]


@dataclass(frozen=True)
class LeasesLost:
    """These leases are no longer held (taken, deleted, or not renewed in time): stop at once.

    Do not checkpoint them any more; another worker resumes from the last checkpoint. A lease is
    matched by ``concurrency_token`` as well as shard, because it may have been regained since.
    """

    leases: tuple[HeldLease, ...]


@dataclass(frozen=True)
class CoordinatorFailed:
    """The coordinator stopped for good on ``error`` (e.g. `LeaseTableMissingError`).

    Every lease was reported lost before; nothing more will be gained. The consumer stops and
    fails with ``error``.
    """

    error: BaseException


@dataclass(frozen=True)
class LeaseHandoffRequested:
    """Another worker asked for these leases (fleet rebalancing): hand each over gracefully.

    Finish or abort the batch in flight, checkpoint what was acknowledged, then call
    ``LeaseCoordinator.release`` (the same path as a graceful shutdown of that shard); the lease
    stays held and renewed until then. If it is not released within ``leaseHandoffTimeoutMillis``,
    the other worker takes it anyway and `LeasesLost` follows.
    """

    leases: tuple[HeldLease, ...]


#: Every message a coordinator sends to its subscriber.
LeaseEvent = LeasesGained | LeasesLost | LeaseHandoffRequested | CoordinatorFailed
