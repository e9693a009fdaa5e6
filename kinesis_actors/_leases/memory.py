"""An in-process lease table with the same conditional semantics as the DynamoDB one.

For tests of code built on leases (the coordinator, the consumer) without DynamoDB: single or
multi-threaded, deterministic, instant. Conditions are checked and writes applied under one lock,
as DynamoDB applies each conditional write atomically.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kinesis_actors._leases.lease import Checkpoint, Lease
from kinesis_actors._leases.table import LeaseTable, Rates
from kinesis_actors._leases.tables import InMemoryTable
from kinesis_actors._models import Sentinel

__all__ = ["InMemoryLeaseTable"]


class InMemoryLeaseTable(InMemoryTable[Lease], LeaseTable):
    """A lease table in a dict; it exists from the start (`delete_table` removes it)."""

    def __init__(self, name: str = "leases") -> None:
        super().__init__(name)

    def list_leases(self) -> list[Lease]:
        with self._lock:
            return list(self._items().values())

    def get_lease(self, shard_id: str) -> Lease | None:
        with self._lock:
            return self._items().get(shard_id)

    def put(self, lease: Lease) -> None:
        """Write ``lease`` unconditionally (test setup, or another worker's write)."""
        with self._lock:
            self._items()[lease.shard_id] = lease

    def _update_if(
        self,
        shard_id: str,
        check: Callable[[Lease], bool],
        *,
        bump: bool = False,
        **fields: object,
    ) -> Lease | None:
        """If ``check`` holds for the stored lease, set ``fields`` (a callable value is applied
        to the stored lease) and, with ``bump``, raise the counter; atomically."""
        with self._lock:
            current = self._items().get(shard_id)
            if current is None or not check(current):
                return None
            values = {name: v(current) if callable(v) else v for name, v in fields.items()}
            if bump:
                values["counter"] = current.counter + 1
            new = dataclasses.replace(current, **values)  # type: ignore[arg-type]
            self._items()[shard_id] = new
            return new

    def create_lease(self, lease: Lease) -> bool:
        with self._lock:
            if lease.shard_id in self._items():
                return False
            self._items()[lease.shard_id] = lease
            return True

    def _renew_once(self, lease: Lease, rates: Rates | None) -> Lease | None:
        measured = {} if rates is None else {"bytes_per_second": rates[0]}
        if rates is not None:
            measured["records_per_second"] = rates[1]
        return self._update_if(
            lease.shard_id, lambda current: current.counter == lease.counter, bump=True, **measured
        )

    def request_handoff(self, lease: Lease, next_owner: str) -> Lease | None:
        if lease.owner is None:
            return None
        return self._update_if(
            lease.shard_id,
            lambda current: current.owner == lease.owner and current.checkpoint_owner is None,
            owner=next_owner,
            checkpoint_owner=lease.owner,
        )

    def _take_once(self, lease: Lease, owner: str) -> Lease | None:
        return self._update_if(
            lease.shard_id,
            lambda current: current.counter == lease.counter,
            bump=True,
            owner=owner,
            owner_switches_since_checkpoint=lambda current: (
                current.owner_switches_since_checkpoint + (current.owner != owner)
            ),
            checkpoint_owner=None,
        )

    def cancel_handoff(self, lease: Lease) -> bool:
        if lease.checkpoint_owner is None:
            return False
        cancelled = self._update_if(
            lease.shard_id,
            lambda current: (
                (current.owner, current.checkpoint_owner) == (lease.owner, lease.checkpoint_owner)
            ),
            owner=lease.checkpoint_owner,
            checkpoint_owner=None,
        )
        return cancelled is not None

    def _checkpoint_once(self, lease: Lease, checkpoint: Checkpoint) -> Lease | None:
        if lease.actual_owner is None:
            return None
        finishing = checkpoint == Sentinel.SHARD_END
        return self._update_if(
            lease.shard_id,
            lambda current: (
                (current.counter, current.actual_owner) == (lease.counter, lease.actual_owner)
                and (finishing or not current.finished)
            ),
            bump=True,
            checkpoint=checkpoint,
            owner_switches_since_checkpoint=0,
            pending_checkpoint=None,
        )

    def release(self, lease: Lease) -> bool:
        if lease.checkpoint_owner is not None:  # a hand-off: the next owner holds it now
            released = self._update_if(
                lease.shard_id,
                lambda current: current.checkpoint_owner == lease.checkpoint_owner,
                bump=True,
                checkpoint_owner=None,
                owner_switches_since_checkpoint=lambda c: c.owner_switches_since_checkpoint + 1,
            )
        elif lease.owner is None:
            return False
        else:
            released = self._update_if(
                lease.shard_id, lambda current: current.owner == lease.owner, bump=True, owner=None
            )
        return released is not None

    def add_child_shard_ids(self, shard_id: str, child_shard_ids: tuple[str, ...]) -> None:
        if child_shard_ids:
            self._update_if(
                shard_id,
                lambda current: True,
                child_shard_ids=lambda c: tuple(sorted({*c.child_shard_ids, *child_shard_ids})),
            )

    def delete_finished(self, shard_id: str) -> bool:
        with self._lock:
            current = self._items().get(shard_id)
            if current is None or not current.finished:
                return False
            del self._items()[shard_id]
            return True
