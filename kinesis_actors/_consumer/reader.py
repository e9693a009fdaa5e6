"""ShardReader: the blocking GetShardIterator / GetRecords calls for one shard.

Starts at the lease's checkpoint with AT_SEQUENCE_NUMBER and drops every user record at or
below the checkpoint's (sequence, sub-sequence), which is how a restart resumes inside a KPL
aggregate; a sentinel checkpoint starts at TRIM_HORIZON, LATEST or AT_TIMESTAMP.

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

An expired iterator is replaced by one AFTER the last record fetched, so nothing is skipped or
read twice. A missing ``NextShardIterator`` (AWS and kinesalite at a closed shard's end) or
``ResourceNotFoundException`` means the shard has ended. Not thread-safe: its ShardConsumer runs
one call at a time on the consumer's BlockingExecutor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kinesis_actors import metrics
from kinesis_actors._aggregation import MAGIC, MAX_HASH_KEY, _all_within, _rows, hash_key
from kinesis_actors._aws import error_code
from kinesis_actors._consumer.pacing import FULL_READ_BYTES
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._aggregation import _Row
    from kinesis_actors._config import KclConf
    from kinesis_actors._leases.lease import HeldLease

__all__ = ["ReadResult", "ShardReader"]

#: The outer partition key of the KPL's aggregates (the KPL and this library's producer, which
#: aggregate per predicted shard and re-send every member of a misrouted aggregate).
KPL_AGGREGATE_KEY = "a"


@dataclass(frozen=True)
class ReadResult:
    """One GetRecords call's user records, in shard order, and whether the shard ended."""

    events: tuple[ConsumerEvent, ...]
    shard_end: bool
    millis_behind_latest: int | None = None
    #: ``ChildShards`` of the last response at shard end (AWS sends them; emulators don't).
    child_shards: tuple[Mapping[str, Any], ...] | None = None
    #: Kinesis records the call returned (aggregates count once).
    records_read: int = 0
    #: The call returned as much as one call may (``maxRecords`` or the size cap): more waits.
    full: bool = False


class ShardReader:
    def __init__(
        self, kinesis: KinesisClient, stream: str | StreamRef, lease: HeldLease, kcl: KclConf
    ) -> None:
        self._kinesis = kinesis
        self._stream = StreamRef.of(stream)
        self._shard_id = lease.shard_id
        self._checkpoint = lease.checkpoint
        self._kcl = kcl
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
        self._iterator: str | None = None
        self._last_fetched: str | None = None
        self._ended = lease.checkpoint == Sentinel.SHARD_END

    @property
    def ended(self) -> bool:
        return self._ended

    def start(self) -> None:
        """Get the first iterator (no-op for a shard already at SHARD_END)."""
        if not self._ended:
            self._iterator = self._get_iterator()

    def _iterator_request(self) -> dict[str, Any]:
        request: dict[str, Any] = {**self._stream.request_args(), "ShardId": self._shard_id}
        checkpoint = self._checkpoint
        if self._last_fetched is not None:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["StartingSequenceNumber"] = self._last_fetched
        elif isinstance(checkpoint, CompoundSequenceNumber):
            request["ShardIteratorType"] = "AT_SEQUENCE_NUMBER"
            request["StartingSequenceNumber"] = checkpoint.sequence_number
        elif checkpoint == Sentinel.AT_TIMESTAMP:
            request["ShardIteratorType"] = "AT_TIMESTAMP"
            request["Timestamp"] = self._kcl.initial_timestamp
        else:
            request["ShardIteratorType"] = str(checkpoint)
        return request

    def _get_iterator(self) -> str | None:
        request = self._iterator_request()
        try:
            response = self._kinesis.get_shard_iterator(**request)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                self._log.info("shard not found: treated as shard end")
                self._ended = True
                return None
            raise
        iterator = response.get("ShardIterator")
        if iterator is None:
            self._ended = True
        self._log.debug("shard iterator", type=request["ShardIteratorType"])
        return iterator

    def read(self) -> ReadResult:
        """One GetRecords call (two if the iterator had expired)."""
        if self._ended or self._iterator is None:
            self._ended = True
            return ReadResult((), shard_end=True)
        try:
            response = self._get_records()
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                self._log.info("shard not found: treated as shard end")
                self._ended = True
                return ReadResult((), shard_end=True)
            if code != "ExpiredIteratorException":
                raise
            self._log.info("iterator expired; restarting after the last record fetched")
            self._iterator = self._get_iterator()
            if self._iterator is None:
                return ReadResult((), shard_end=True)
            response = self._get_records()
        records = response.get("Records", [])
        events = self._events(records)
        if records:
            self._last_fetched = records[-1]["SequenceNumber"]
        self._iterator = response.get("NextShardIterator")
        child_shards = None
        if self._iterator is None:
            self._ended = True
            children = response.get("ChildShards")
            child_shards = tuple(children) if children else None
        full = len(records) >= self._kcl.max_records or (
            sum(len(record["Data"]) for record in records) >= FULL_READ_BYTES
        )
        return ReadResult(
            events,
            self._ended,
            response.get("MillisBehindLatest"),
            child_shards=child_shards,
            records_read=len(records),
            full=full,
        )

    def _get_records(self) -> Any:
        assert self._iterator is not None
        return self._kinesis.get_records(
            ShardIterator=self._iterator, Limit=self._kcl.max_records, **self._stream.arn_args()
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

    def _events(self, records: Sequence[Mapping[str, Any]]) -> tuple[ConsumerEvent, ...]:
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
