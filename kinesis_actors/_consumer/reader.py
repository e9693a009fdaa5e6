"""ShardReader: the blocking GetShardIterator / GetRecords calls for one shard.

Starts at the lease's checkpoint with AT_SEQUENCE_NUMBER and drops every user record at or
below the checkpoint's (sequence, sub-sequence), which is how a restart resumes inside a KPL
aggregate; a sentinel checkpoint starts at TRIM_HORIZON, LATEST or AT_TIMESTAMP. KPL aggregates
are unpacked with the shard's hash-range filter: an aggregate with a member outside the range was
re-sent to a child shard after a split, so it is dropped whole.

An expired iterator is replaced by one AFTER the last record fetched, so nothing is skipped or
read twice. A missing ``NextShardIterator`` (AWS and kinesalite at a closed shard's end) or
``ResourceNotFoundException`` means the shard has ended. Not thread-safe: its ShardConsumer runs
one call at a time on the consumer's BlockingExecutor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kinesis_actors._aggregation import MAGIC, MAX_HASH_KEY, _unpack
from kinesis_actors._aws import error_code, is_throttling
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import KclConf
    from kinesis_actors._leases.lease import HeldLease

__all__ = ["ReadResult", "ShardReader", "is_throttling"]


@dataclass(frozen=True)
class ReadResult:
    """One GetRecords call's user records, in shard order, and whether the shard ended."""

    events: tuple[ConsumerEvent, ...]
    shard_end: bool
    millis_behind_latest: int | None = None
    #: ``ChildShards`` of the last response at shard end (AWS sends them; emulators don't).
    child_shards: tuple[Mapping[str, Any], ...] | None = None


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
        return ReadResult(
            events, self._ended, response.get("MillisBehindLatest"), child_shards=child_shards
        )

    def _get_records(self) -> Any:
        assert self._iterator is not None
        return self._kinesis.get_records(
            ShardIterator=self._iterator, Limit=self._kcl.max_records, **self._stream.arn_args()
        )

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
            rows = _unpack(data, hash_range) if data.startswith(MAGIC) else None
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
            if not rows:
                self._log.warning(
                    "aggregate dropped: a member is outside this shard's hash range "
                    "(written before a reshard; the producer re-sent it to a child shard)",
                    sequence_number=sequence_number,
                )
                continue
            sub_sequence = 0
            if resume_key is not None:
                # Resuming inside this aggregate: skip the members at or below the checkpoint.
                while sub_sequence < len(rows) and (number, sub_sequence) <= resume_key:
                    sub_sequence += 1
                if sub_sequence == len(rows):
                    continue
                resume_key = None
            for partition_key, explicit_hash_key, payload in rows[sub_sequence:]:
                append(
                    event_of(
                        position_of(sequence_number, sub_sequence, number),
                        payload,
                        timestamp,
                        partition_key,
                        shard_id,
                        explicit_hash_key,
                    )
                )
                sub_sequence += 1
        if resume_key is None:
            self._resume_after = None
        return tuple(events)
