"""RecordDecoder: one shard's Kinesis records -> consumer events, as every reader needs them.

Drops every user record at or below the lease's checkpoint (sequence, sub-sequence), which is how
a restart resumes inside a KPL aggregate. Shared by the polling reader (GetRecords) and the
fan-out reader (SubscribeToShard events), so both keep the same guarantees.

KPL aggregates are unpacked, one event per member, and no member is lost: an aggregate with
members outside this shard's hash range ("misrouted") is delivered in full, except in the one
case where those members are certain to arrive on another shard. That case is a per-shard
aggregating producer (the KPL, this library's producer: outer partition key "a") that predicted
a shard which had split by the time Kinesis took the record, so it landed on a child: such a
producer checks where each record landed and re-sends every member of a misrouted aggregate.
So the outside members are dropped only when this shard was created by a reshard (its lease has
parents) and the aggregate has the KPL's outer key; the members inside the range are delivered
(their re-sent copies are the duplicates). An aggregate from a producer that packs records for
any shard (aws-kinesis-agg uses the first member's key) or on a shard that never split is
delivered whole. Both cases are counted (metrics ``AggregateMembersDropped``,
``MisroutedAggregatesDelivered``) and logged once per shard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from kinesis_actors import metrics
from kinesis_actors._aggregation import MAGIC, MAX_HASH_KEY, _all_within, _rows, hash_key
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent

if TYPE_CHECKING:
    from kinesis_actors._aggregation import _Row
    from kinesis_actors._leases.lease import HeldLease

__all__ = ["KPL_AGGREGATE_KEY", "RecordDecoder"]

#: The outer partition key of the KPL's aggregates (the KPL and this library's producer, which
#: aggregate per predicted shard and re-send every member of a misrouted aggregate).
KPL_AGGREGATE_KEY = "a"


class RecordDecoder:
    """One shard's decoder; keeps the resume filter until the first record past the checkpoint."""

    def __init__(self, lease: HeldLease) -> None:
        self._shard_id = lease.shard_id
        self._log = get_logger(__name__).bind(shard_id=lease.shard_id)
        self._hash_range: tuple[int, int] | None = None
        if lease.starting_hash_key is None or lease.ending_hash_key is None:
            self._log.info("shard hash range unknown: aggregates are not filtered by range")
        elif (lease.starting_hash_key, lease.ending_hash_key) != (0, MAX_HASH_KEY):
            # (A shard over the whole key space cannot get another shard's aggregate.)
            self._hash_range = (lease.starting_hash_key, lease.ending_hash_key)
        #: A child of a reshard: the only shard a per-shard producer's stale prediction reaches.
        self._resharded = bool(lease.parent_shard_ids)
        self._misroutes_logged = False
        #: Records at or below this position were processed before (resume filter).
        self._resume_after = (
            lease.checkpoint if isinstance(lease.checkpoint, CompoundSequenceNumber) else None
        )

    def _misrouted(
        self, rows: list[_Row], record: Mapping[str, Any], hash_range: tuple[int, int]
    ) -> list[tuple[int, _Row]]:
        """The members to deliver of an aggregate with members outside ``hash_range``."""
        members = list(enumerate(rows))
        if not (self._resharded and record["PartitionKey"] == KPL_AGGREGATE_KEY):
            metrics.count("MisroutedAggregatesDelivered", shard_id=self._shard_id)
            self._log_misroute(
                "aggregate with members outside this shard's hash range delivered in full "
                "(its producer does not aggregate per shard, or this shard never split)",
                record,
            )
            return members
        low, high = hash_range
        kept = [(i, row) for i, row in members if _within(row, low, high)]
        metrics.count("AggregateMembersDropped", len(members) - len(kept), shard_id=self._shard_id)
        self._log_misroute(
            "aggregate written before a reshard: its members outside this shard's hash range "
            "are dropped (the producer re-sends them to the right shard); the ones inside are "
            "delivered and may arrive twice",
            record,
        )
        return kept

    def _log_misroute(self, what: str, record: Mapping[str, Any]) -> None:
        log = self._log.info if self._misroutes_logged else self._log.warning
        self._misroutes_logged = True
        log(what, sequence_number=record["SequenceNumber"], partition_key=record["PartitionKey"])

    def events(self, records: Sequence[Mapping[str, Any]]) -> tuple[ConsumerEvent, ...]:
        """The user records of ``records`` (in shard order) that were not processed before."""
        # The per-record hot path: positions and events come from the private constructors
        # (no re-validation of what Kinesis sent), and aggregates are unpacked as plain rows
        # (``deaggregate`` without the named tuples); a record without the magic is no aggregate.
        events: list[ConsumerEvent] = []
        append = events.append
        position_of = CompoundSequenceNumber._trusted
        event_of = ConsumerEvent._trusted
        shard_id, hash_range = self._shard_id, self._hash_range
        resume = self._resume_after
        resume_key: tuple[int, int] | None = None
        if resume is not None:
            resume_key = (int(resume.sequence_number), resume.sub_sequence_number)
        for record in records:
            sequence_number = record["SequenceNumber"]
            number = int(sequence_number)
            data = record["Data"]
            timestamp = record["ApproximateArrivalTimestamp"]
            if timestamp.tzinfo is None:
                timestamp = timestamp.replace(tzinfo=UTC)
            rows = _rows(data) if data.startswith(MAGIC) else None
            if rows is None:  # not an aggregate: the record itself, sub-sequence 0
                if resume_key is not None:
                    if (number, 0) <= resume_key:
                        continue
                    resume_key = None
                append(
                    event_of(
                        position_of(sequence_number, 0, number),
                        data,
                        timestamp,
                        record["PartitionKey"],
                        shard_id,
                        None,
                    )
                )
                continue
            members: Iterable[tuple[int, _Row]] | None = None
            if hash_range is not None and not _all_within(rows, *hash_range):
                members = self._misrouted(rows, record, hash_range)
            sub_sequence = 0
            if resume_key is not None:
                # Resuming inside this aggregate: skip the members at or below the checkpoint.
                while sub_sequence < len(rows) and (number, sub_sequence) <= resume_key:
                    sub_sequence += 1
                if sub_sequence == len(rows):
                    continue
                resume_key = None
            if members is None:
                members = enumerate(rows[sub_sequence:], sub_sequence)
            elif sub_sequence:
                members = [(i, row) for i, row in members if i >= sub_sequence]
            for index, (partition_key, explicit_hash_key, payload) in members:
                append(
                    event_of(
                        position_of(sequence_number, index, number),
                        payload,
                        timestamp,
                        partition_key,
                        shard_id,
                        explicit_hash_key,
                    )
                )
        if resume_key is None:
            self._resume_after = None
        return tuple(events)


def _within(row: _Row, low: int, high: int) -> bool:
    partition_key, explicit_hash_key, _ = row
    try:
        key = hash_key(partition_key, explicit_hash_key)
    except ValueError:  # an explicit hash key that is no number: it belongs nowhere for sure
        return False
    return low <= key <= high
