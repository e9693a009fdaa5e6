"""The lease table: the KCL's DynamoDB schema, and every state change as a conditional write.

Correctness rests on the conditions, never on read consistency: a renewal, take or checkpoint
succeeds only if ``leaseCounter`` still has the value this worker last saw, and raises it by one;
a release only if this worker is still the owner; a lease is created only if absent and deleted
only once finished. Item layout (attribute names and types) is exactly the KCL 2.x one, so Java
KCL workers and this library can read each other's tables:

=============================== ==== ====================================================
``leaseKey``                    S    shard id (hash key)
``leaseOwner``                  S    worker id, absent when the lease is free
``leaseCounter``                N    optimistic lock and heartbeat
``checkpoint``                  S    sequence number digits, or TRIM_HORIZON / LATEST /
                                     AT_TIMESTAMP / SHARD_END (S: numbers have 56 digits,
                                     DynamoDB's N holds 38)
``checkpointSubSequenceNumber`` N    index inside a KPL aggregate
``ownerSwitchesSinceCheckpoint`` N   takes by another worker since the last checkpoint
``parentShardId``               SS   parent and adjacent parent (only when non-empty)
``childShardIds``               SS   children, written at shard end
``pendingCheckpoint*``          S/N  two-phase checkpoints of Java apps; cleared by checkpoints
``startingHashKey``,            S    the shard's hash key range (decimal)
``endingHashKey``
``checkpointOwner``             S    KCL 3.x graceful hand-off: the current owner while
                                     ``leaseOwner`` names the next one
``throughputKBps``              N    KCL 3.x: the shard's read rate, KiB/s
``throughputRecordsPerSec``     N    extra (kinesis-actors): the shard's read rate, records/s
=============================== ==== ====================================================

Items whose ``entityType`` is present and not ``LEASE`` (KCL 3.5's single-table format keeps
worker metrics and coordinator state in the lease table) are not leases: every read skips them.

`LeaseTable` is the interface the coordinator uses; `DynamoDBLeaseTable` is the real one and
`kinesis_actors._leases.memory.InMemoryLeaseTable` a fake with the same conditional semantics for
tests. Writes return the lease as written, or None (False) when the condition failed; errors are
`ThrottlingError` (back off), `LeaseTableMissingError` (an `InvalidStateError`: the table is
gone) or `DependencyError` (anything else, including timeouts).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kinesis_actors._errors import (
    InvalidStateError,
)
from kinesis_actors._leases.dynamodb import DynamoDBTable
from kinesis_actors._leases.lease import Checkpoint, Lease
from kinesis_actors._leases.tables import Table
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "DynamoDBLeaseTable",
    "LeaseTable",
    "Rates",
    "is_lease_item",
    "item_to_lease",
    "lease_to_item",
]

log = get_logger(__name__)

_SHARD_END = {"S": Sentinel.SHARD_END.value}
_PENDING_ATTRIBUTES = (
    "pendingCheckpoint, pendingCheckpointSubSequenceNumber, pendingCheckpointState"
)


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


# -- DynamoDB -------------------------------------------------------------------------------------


#: A shard's measured read rates: (bytes per second, records per second).
Rates = tuple[float, float]

_LEASE_ENTITY = "LEASE"


def is_lease_item(item: Mapping[str, Any]) -> bool:
    """False for KCL 3.5 single-table items that are not leases (worker metrics, leader...)."""
    entity = item.get("entityType")
    return entity is None or entity.get("S") == _LEASE_ENTITY


def _checkpoint_attributes(checkpoint: Checkpoint) -> tuple[str, int]:
    if isinstance(checkpoint, CompoundSequenceNumber):
        return checkpoint.sequence_number, checkpoint.sub_sequence_number
    return checkpoint.value, 0


def _parse_checkpoint(shard_id: str, value: str, sub: int) -> Checkpoint:
    if value.isdigit():
        return CompoundSequenceNumber(value, sub)
    try:
        return Sentinel(value)
    except ValueError:
        raise InvalidStateError(
            f"lease {shard_id}: checkpoint {value!r} is neither digits nor a sentinel"
        ) from None


def lease_to_item(lease: Lease) -> dict[str, Any]:
    """The DynamoDB item of ``lease`` (KCL attribute names and types)."""
    checkpoint, sub = _checkpoint_attributes(lease.checkpoint)
    item: dict[str, Any] = {
        "leaseKey": {"S": lease.shard_id},
        "leaseCounter": {"N": str(lease.counter)},
        "checkpoint": {"S": checkpoint},
        "checkpointSubSequenceNumber": {"N": str(sub)},
        "ownerSwitchesSinceCheckpoint": {"N": str(lease.owner_switches_since_checkpoint)},
    }
    if lease.owner is not None:
        item["leaseOwner"] = {"S": lease.owner}
    if lease.parent_shard_ids:
        item["parentShardId"] = {"SS": list(lease.parent_shard_ids)}
    if lease.child_shard_ids:
        item["childShardIds"] = {"SS": list(lease.child_shard_ids)}
    if lease.pending_checkpoint is not None:
        item["pendingCheckpoint"] = {"S": lease.pending_checkpoint.sequence_number}
        item["pendingCheckpointSubSequenceNumber"] = {
            "N": str(lease.pending_checkpoint.sub_sequence_number)
        }
    if lease.starting_hash_key is not None and lease.ending_hash_key is not None:
        item["startingHashKey"] = {"S": str(lease.starting_hash_key)}
        item["endingHashKey"] = {"S": str(lease.ending_hash_key)}
    if lease.checkpoint_owner is not None:
        item["checkpointOwner"] = {"S": lease.checkpoint_owner}
    if lease.bytes_per_second is not None and lease.records_per_second is not None:
        item.update(_rate_attributes((lease.bytes_per_second, lease.records_per_second)))
    return item


def _rate_attributes(rates: Rates) -> dict[str, Any]:
    return {
        "throughputKBps": {"N": f"{rates[0] / 1024:.3f}"},
        "throughputRecordsPerSec": {"N": f"{rates[1]:.3f}"},
    }


def item_to_lease(item: Mapping[str, Any]) -> Lease:
    """The lease stored in a DynamoDB item (see `is_lease_item`); unknown attributes are ignored."""

    def number(name: str) -> int:
        return int(item[name]["N"]) if name in item else 0

    def rate(name: str, scale: float = 1.0) -> float | None:
        return float(item[name]["N"]) * scale if name in item else None

    def text(name: str) -> str | None:
        return str(item[name]["S"]) if name in item else None

    def strings(name: str) -> tuple[str, ...]:
        return tuple(sorted(item[name]["SS"])) if name in item else ()

    shard_id = str(item["leaseKey"]["S"])
    checkpoint_text = text("checkpoint")
    if checkpoint_text is None:
        raise InvalidStateError(f"lease {shard_id} has no checkpoint attribute")
    pending_text = text("pendingCheckpoint")
    pending = None
    if pending_text is not None and pending_text.isdigit():
        pending = CompoundSequenceNumber(pending_text, number("pendingCheckpointSubSequenceNumber"))
    start, end = text("startingHashKey"), text("endingHashKey")
    return Lease(
        shard_id=shard_id,
        owner=text("leaseOwner"),
        counter=number("leaseCounter"),
        checkpoint=_parse_checkpoint(
            shard_id, checkpoint_text, number("checkpointSubSequenceNumber")
        ),
        owner_switches_since_checkpoint=number("ownerSwitchesSinceCheckpoint"),
        parent_shard_ids=strings("parentShardId"),
        child_shard_ids=strings("childShardIds"),
        pending_checkpoint=pending,
        starting_hash_key=int(start) if start is not None else None,
        ending_hash_key=int(end) if end is not None else None,
        checkpoint_owner=text("checkpointOwner"),
        bytes_per_second=rate("throughputKBps", 1024.0),
        records_per_second=rate("throughputRecordsPerSec"),
    )


class DynamoDBLeaseTable(DynamoDBTable, LeaseTable):
    """A lease table in DynamoDB (or dynalite), through a shared, thread-safe boto3 client."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        super().__init__(dynamodb, table_name, hash_key="leaseKey", kind="lease table")

    def list_leases(self) -> list[Lease]:
        leases: list[Lease] = []
        with self._errors("Scan"):
            for page in self._dynamodb.get_paginator("scan").paginate(TableName=self._name):
                items = page.get("Items", [])
                leases.extend(item_to_lease(item) for item in items if is_lease_item(item))
        return leases

    def get_lease(self, shard_id: str) -> Lease | None:
        with self._errors("GetItem"):
            response = self._dynamodb.get_item(
                TableName=self._name, Key={"leaseKey": {"S": shard_id}}, ConsistentRead=True
            )
        item = response.get("Item")
        return item_to_lease(item) if item and is_lease_item(item) else None

    def create_lease(self, lease: Lease) -> bool:
        done = self._conditional(
            "PutItem",
            lambda: self._dynamodb.put_item(
                TableName=self._name,
                Item=lease_to_item(lease),
                ConditionExpression="attribute_not_exists(leaseKey)",
            ),
        )
        return done is not None

    def _update(self, operation: str, shard_id: str, **kwargs: Any) -> Lease | None:
        response = self._conditional(
            operation,
            lambda: self._dynamodb.update_item(
                TableName=self._name,
                Key={"leaseKey": {"S": shard_id}},
                ReturnValues="ALL_NEW",
                **kwargs,
            ),
        )
        if response is None:
            return None
        return item_to_lease(response["Attributes"])

    def _renew_once(self, lease: Lease, rates: Rates | None) -> Lease | None:
        update = "SET leaseCounter = :next"
        values: dict[str, Any] = {
            ":expected": {"N": str(lease.counter)},
            ":next": {"N": str(lease.counter + 1)},
        }
        if rates is not None:
            update += ", throughputKBps = :kbps, throughputRecordsPerSec = :rps"
            attributes = _rate_attributes(rates)
            values[":kbps"] = attributes["throughputKBps"]
            values[":rps"] = attributes["throughputRecordsPerSec"]
        return self._update(
            "UpdateItem(renew)",
            lease.shard_id,
            UpdateExpression=update,
            ConditionExpression="leaseCounter = :expected",
            ExpressionAttributeValues=values,
        )

    def request_handoff(self, lease: Lease, next_owner: str) -> Lease | None:
        if lease.owner is None:
            return None
        return self._update(
            "UpdateItem(handoff)",
            lease.shard_id,
            UpdateExpression="SET leaseOwner = :next, checkpointOwner = :current",
            ConditionExpression=(
                "leaseOwner = :current AND attribute_not_exists(checkpointOwner)"
                " AND attribute_exists(leaseKey)"
            ),
            ExpressionAttributeValues={
                ":next": {"S": next_owner},
                ":current": {"S": lease.owner},
            },
        )

    def _take_once(self, lease: Lease, owner: str) -> Lease | None:
        update = "SET leaseCounter = :next, leaseOwner = :owner"
        values: dict[str, Any] = {
            ":expected": {"N": str(lease.counter)},
            ":next": {"N": str(lease.counter + 1)},
            ":owner": {"S": owner},
        }
        if lease.owner != owner:
            update += " ADD ownerSwitchesSinceCheckpoint :one"
            values[":one"] = {"N": "1"}
        return self._update(
            "UpdateItem(take)",
            lease.shard_id,
            # checkpointOwner: a KCL 3.x hand-off in progress is void once the lease is taken.
            UpdateExpression=update + " REMOVE checkpointOwner",
            ConditionExpression="leaseCounter = :expected",
            ExpressionAttributeValues=values,
        )

    def cancel_handoff(self, lease: Lease) -> bool:
        if lease.owner is None or lease.checkpoint_owner is None:
            return False
        done = self._update(
            "UpdateItem(handoff cancel)",
            lease.shard_id,
            UpdateExpression="SET leaseOwner = :current REMOVE checkpointOwner",
            ConditionExpression="leaseOwner = :next AND checkpointOwner = :current",
            ExpressionAttributeValues={
                ":next": {"S": lease.owner},
                ":current": {"S": lease.checkpoint_owner},
            },
        )
        return done is not None

    def _checkpoint_once(self, lease: Lease, checkpoint: Checkpoint) -> Lease | None:
        if lease.actual_owner is None:
            return None
        sequence, sub = _checkpoint_attributes(checkpoint)
        # During a hand-off the current owner is checkpointOwner, and it alone checkpoints.
        condition = (
            "leaseCounter = :expected AND (checkpointOwner = :owner"
            " OR (leaseOwner = :owner AND attribute_not_exists(checkpointOwner)))"
        )
        values: dict[str, Any] = {
            ":expected": {"N": str(lease.counter)},
            ":next": {"N": str(lease.counter + 1)},
            ":owner": {"S": lease.actual_owner},
            ":checkpoint": {"S": sequence},
            ":sub": {"N": str(sub)},
            ":zero": {"N": "0"},
        }
        if checkpoint != Sentinel.SHARD_END:
            condition += " AND checkpoint <> :shard_end"
            values[":shard_end"] = _SHARD_END
        return self._update(
            "UpdateItem(checkpoint)",
            lease.shard_id,
            UpdateExpression=(
                "SET leaseCounter = :next, checkpoint = :checkpoint,"
                " checkpointSubSequenceNumber = :sub, ownerSwitchesSinceCheckpoint = :zero"
                f" REMOVE {_PENDING_ATTRIBUTES}"
            ),
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )

    def release(self, lease: Lease) -> bool:
        if lease.checkpoint_owner is not None:
            done = self._update(
                "UpdateItem(handoff complete)",
                lease.shard_id,
                UpdateExpression=(
                    "SET leaseCounter = leaseCounter + :one REMOVE checkpointOwner"
                    " ADD ownerSwitchesSinceCheckpoint :one"
                ),
                ConditionExpression="checkpointOwner = :owner",
                ExpressionAttributeValues={
                    ":owner": {"S": lease.checkpoint_owner},
                    ":one": {"N": "1"},
                },
            )
            return done is not None
        if lease.owner is None:
            return False
        done = self._update(
            "UpdateItem(release)",
            lease.shard_id,
            UpdateExpression="SET leaseCounter = leaseCounter + :one REMOVE leaseOwner",
            ConditionExpression="leaseOwner = :owner",
            ExpressionAttributeValues={":owner": {"S": lease.owner}, ":one": {"N": "1"}},
        )
        return done is not None

    def add_child_shard_ids(self, shard_id: str, child_shard_ids: tuple[str, ...]) -> None:
        if not child_shard_ids:
            return
        done = self._conditional(
            "UpdateItem(children)",
            lambda: self._dynamodb.update_item(
                TableName=self._name,
                Key={"leaseKey": {"S": shard_id}},
                UpdateExpression="ADD childShardIds :children",
                ConditionExpression="attribute_exists(leaseKey)",
                ExpressionAttributeValues={":children": {"SS": list(child_shard_ids)}},
            ),
        )
        if done is None:
            log.warning("lease gone before its children were recorded", shard_id=shard_id)

    def delete_finished(self, shard_id: str) -> bool:
        done = self._conditional(
            "DeleteItem",
            lambda: self._dynamodb.delete_item(
                TableName=self._name,
                Key={"leaseKey": {"S": shard_id}},
                ConditionExpression="checkpoint = :shard_end",
                ExpressionAttributeValues={":shard_end": _SHARD_END},
            ),
        )
        return done is not None
