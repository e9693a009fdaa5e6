"""The lease table's interface: every state change of a lease as a conditional write.

Correctness rests on the conditions, never on read consistency: a renewal, take or checkpoint
succeeds only if ``leaseCounter`` still has the value this worker last saw, and raises it by one;
a release only if this worker is still the owner; a lease is created only if absent and deleted
only once finished. The items are the KCL's (`kinesis_actors._leases.items`).

`LeaseTable` is the interface the coordinator uses;
`kinesis_actors._leases.dynamodb_leases.DynamoDBLeaseTable` is the real one and
`kinesis_actors._leases.memory.InMemoryLeaseTable` a fake with the same conditional semantics for
tests. Writes return the lease as written, or None (False) when the condition failed; errors are
`ThrottlingError` (back off), `LeaseTableMissingError` (an `InvalidStateError`: the table is
gone) or `DependencyError` (anything else, including timeouts).
"""

from __future__ import annotations

import abc

from kinesis_actors._leases.lease import Checkpoint, Lease
from kinesis_actors._leases.tables import Table
from kinesis_actors._logging import get_logger

__all__ = ["LeaseTable", "Rates"]

log = get_logger(__name__)

#: A shard's measured read rates: (bytes per second, records per second).
Rates = tuple[float, float]


class LeaseTable(Table):
    """The operations the lease coordinator needs from a lease table.

    Subclasses implement one attempt of each conditional write; this base class adds the KCL's
    recognition of retried requests: when a write fails its condition, the lease is re-read, and
    if it shows exactly the state the write would have produced (same owner, counter one higher),
    an earlier attempt of the same request succeeded (an SDK retry after a lost response), so the
    write counts as successful.
    """

    @abc.abstractmethod
    def list_leases(self) -> list[Lease]:
        """Every lease (an eventually consistent scan)."""

    @abc.abstractmethod
    def get_lease(self, shard_id: str) -> Lease | None:
        """One lease, read consistently; None if there is none."""

    @abc.abstractmethod
    def create_lease(self, lease: Lease) -> bool:
        """Write a new lease unless one exists for the shard; True if written."""

    @abc.abstractmethod
    def release(self, lease: Lease) -> bool:
        """Let go of a lease; True if done.

        Normally: remove ``lease.owner`` as owner (if still owner) and bump the counter. During a
        hand-off (``lease.checkpoint_owner`` set): complete it, as KCL 3.x does: remove
        ``checkpointOwner`` (if still this worker), so the next owner holds it, and bump the
        counter and ``ownerSwitchesSinceCheckpoint``.
        """

    @abc.abstractmethod
    def add_child_shard_ids(self, shard_id: str, child_shard_ids: tuple[str, ...]) -> None:
        """Record children on an existing lease, leaving its counter alone."""

    @abc.abstractmethod
    def delete_finished(self, shard_id: str) -> bool:
        """Delete the lease if its checkpoint is SHARD_END; True if deleted."""

    @abc.abstractmethod
    def request_handoff(self, lease: Lease, next_owner: str) -> Lease | None:
        """Ask ``lease.owner`` to hand the lease to ``next_owner`` (the KCL 3.x protocol).

        Sets ``leaseOwner`` = next owner and ``checkpointOwner`` = current owner if the lease is
        still owned by ``lease.owner`` and no hand-off is under way; the counter is left alone,
        so the current owner keeps renewing and checkpointing. None if the condition failed.
        """

    @abc.abstractmethod
    def cancel_handoff(self, lease: Lease) -> bool:
        """Withdraw a hand-off ``lease.owner`` asked for: the current owner is owner again."""

    @abc.abstractmethod
    def _renew_once(self, lease: Lease, rates: Rates | None) -> Lease | None: ...

    @abc.abstractmethod
    def _take_once(self, lease: Lease, owner: str) -> Lease | None: ...

    @abc.abstractmethod
    def _checkpoint_once(self, lease: Lease, checkpoint: Checkpoint) -> Lease | None: ...

    def renew(self, lease: Lease, rates: Rates | None = None) -> Lease | None:
        """Bump the counter if it is still ``lease.counter``; None if the lease was lost.

        ``rates`` (bytes/s, records/s read from the shard) are written with it. The lease
        returned shows a hand-off request (``checkpoint_owner``) if another worker made one.
        """
        return self._renew_once(lease, rates) or self._retried(lease, lease.actual_owner)

    def take(self, lease: Lease, owner: str) -> Lease | None:
        """Make ``owner`` the owner if the counter is still ``lease.counter``; None if not."""
        return self._take_once(lease, owner) or self._retried(lease, owner)

    def checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> Lease | None:
        """Write ``checkpoint`` if ``lease.owner`` still holds the lease at ``lease.counter``.

        A finished lease (SHARD_END) is never rolled back to a sequence number. None if the
        lease is no longer held as read.
        """
        written = self._checkpoint_once(lease, checkpoint) or self._retried(
            lease, lease.actual_owner
        )
        if written is not None and written.checkpoint != checkpoint:
            return None
        return written

    def _retried(self, expected: Lease, owner: str | None) -> Lease | None:
        current = self.get_lease(expected.shard_id)
        if (
            current is not None
            and owner in (current.owner, current.checkpoint_owner)
            and current.counter == expected.counter + 1
        ):
            log.info(
                "conditional write failed but had succeeded before", shard_id=expected.shard_id
            )
            return current
        return None
