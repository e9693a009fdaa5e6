"""ShardReader: the blocking GetShardIterator / GetRecords calls for one shard.

Starts at the lease's checkpoint with AT_SEQUENCE_NUMBER (a sentinel checkpoint: TRIM_HORIZON,
LATEST or AT_TIMESTAMP), or after ``resume_after`` (a fan-out reader's fallback to polling).

The RecordDecoder drops what was processed before and unpacks KPL aggregates (see
``records.py`` for which members of a misrouted aggregate are delivered).

An expired iterator is replaced by one AFTER the last record fetched, so nothing is skipped or
read twice. A missing ``NextShardIterator`` (AWS and kinesalite at a closed shard's end) or
``ResourceNotFoundException`` means the shard has ended. Not thread-safe: its ShardConsumer runs
one call at a time on the consumer's BlockingExecutor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kinesis_actors._aws import error_code
from kinesis_actors._consumer.pacing import FULL_READ_BYTES
from kinesis_actors._consumer.records import RecordDecoder
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import KclConf
    from kinesis_actors._leases.lease import HeldLease

__all__ = ["ReadResult", "ShardReader"]


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
        self,
        kinesis: KinesisClient,
        stream: str | StreamRef,
        lease: HeldLease,
        kcl: KclConf,
        *,
        resume_after: str | None = None,
    ) -> None:
        """``resume_after``: start AFTER this record (a fan-out reader that fell back to polling
        had handed out every record up to it) instead of at the lease's checkpoint."""
        self._kinesis = kinesis
        self._stream = StreamRef.of(stream)
        self._shard_id = lease.shard_id
        self._checkpoint = lease.checkpoint
        self._kcl = kcl
        self._log = get_logger(__name__).bind(shard_id=lease.shard_id)
        self._decoder = RecordDecoder(lease)
        self._iterator: str | None = None
        self._last_fetched: str | None = resume_after
        self._ended = lease.checkpoint == Sentinel.SHARD_END
        self._started = False

    @property
    def ended(self) -> bool:
        return self._ended

    def start(self) -> None:
        """Get the first iterator (no-op for a shard already at SHARD_END); ``read`` calls it
        if it did not succeed before."""
        if not self._ended:
            self._iterator = self._get_iterator()
        self._started = True

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
        if not self._started:
            self.start()
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
        events = self._decoder.events(records)
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
