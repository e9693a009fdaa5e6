"""The lease table's items: exactly the KCL's attribute names and types, so that Java KCL
workers and this library read each other's tables.

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

"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kinesis_actors._errors import InvalidStateError
from kinesis_actors._leases.lease import Checkpoint, Lease
from kinesis_actors._leases.table import Rates
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

__all__ = [
    "checkpoint_attributes",
    "is_lease_item",
    "item_to_lease",
    "lease_to_item",
    "rate_attributes",
]

_LEASE_ENTITY = "LEASE"


def is_lease_item(item: Mapping[str, Any]) -> bool:
    """False for KCL 3.5 single-table items that are not leases (worker metrics, leader...)."""
    entity = item.get("entityType")
    return entity is None or entity.get("S") == _LEASE_ENTITY


def checkpoint_attributes(checkpoint: Checkpoint) -> tuple[str, int]:
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
    checkpoint, sub = checkpoint_attributes(lease.checkpoint)
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
        item.update(rate_attributes((lease.bytes_per_second, lease.records_per_second)))
    return item


def rate_attributes(rates: Rates) -> dict[str, Any]:
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
