"""The KPL pipeline as single-threaded state: aggregate, limit, collect, then judge the replies.

``put -> Aggregator -> Limiter -> Collector -> PutRecords -> Retrier -> (finish | Aggregator)``
(the retrier, which judges each PutRecords outcome, is ``retrier.py``).

Nothing here blocks or starts threads: the producer's engine thread feeds records and PutRecords
outcomes in, takes requests out and sleeps until ``next_wakeup``. Every time is a float of the
caller's clock, so tests drive deadlines, TTLs and token buckets with a fake one.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinesis_actors._aggregation import AggregateBuilder
from kinesis_actors._producer.limiter import ShardLimiter
from kinesis_actors._producer.records import KinesisRecord, UserRecord
from kinesis_actors._producer.retrier import EXPIRED, Retrier

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_kinesis.type_defs import (
        PutRecordsOutputTypeDef,
        PutRecordsRequestEntryTypeDef,
    )
    from structlog.stdlib import BoundLogger

    from kinesis_actors._config import KplConf
    from kinesis_actors._producer.shard_map import ShardMap

__all__ = ["SHARD_FLUSH_BYTES", "Pipeline", "PipelineStats", "PutRequest"]

#: A shard holding this many bytes in the collector makes it send at once (avoids bursts).
SHARD_FLUSH_BYTES = 256 * 1024
#: Upper bound of what one member adds to an aggregate beyond its data and key bytes (table
#: entries, field tags, varints, an explicit hash key): below it, no exact size check is needed.
_MEMBER_OVERHEAD = 80
_AGGREGATE_KEY = "a"
#: Never filled: asked what a record would weigh as an aggregate's only member.
_NO_MEMBERS = AggregateBuilder()
_EMPTY_SIZE = _NO_MEMBERS.size


@dataclass
class PipelineStats:
    """Counters the pipeline updates as it goes; plain ints, read as a snapshot."""

    user_records_received: int = 0
    user_records_put: int = 0
    user_records_failed: int = 0
    user_records_expired: int = 0
    user_record_retries: int = 0
    kinesis_records_put: int = 0
    kinesis_bytes_put: int = 0
    put_records_calls: int = 0
    put_records_call_errors: int = 0
    throttled_records: int = 0
    wrong_shard_records: int = 0


class PutRequest:
    """One PutRecords call's worth of Kinesis records."""

    __slots__ = ("records",)

    def __init__(self, records: list[KinesisRecord]) -> None:
        self.records = records

    @property
    def entries(self) -> list[PutRecordsRequestEntryTypeDef]:
        return [record.entry for record in self.records]


class _Aggregate:
    """User records gathered for one predicted shard."""

    __slots__ = ("builder", "deadline", "expiration", "records", "shard_id")

    def __init__(self, shard_id: str) -> None:
        self.shard_id = shard_id
        self.builder = AggregateBuilder()
        self.records: list[UserRecord] = []
        self.deadline = math.inf
        self.expiration = math.inf


class Pipeline:
    """Aggregator, limiter, collector and retrier of one stream (KPL semantics).

    Differences from the KPL: records are predicted (and so rate-limited) also with aggregation
    off; records arriving before the first shard map wait for it up to their deadline instead
    of going out unaggregated; the map in use keeps serving while an update runs.
    """

    def __init__(self, kpl: KplConf, shard_map: ShardMap, log: BoundLogger) -> None:
        self.shard_map = shard_map
        self.stats = PipelineStats()
        self._retrier = Retrier(kpl, shard_map, self.stats, log)
        self._aggregation = kpl.aggregation_enabled
        self._aggregate_max_count = kpl.aggregation_max_count
        # An aggregate is one Kinesis record: it must also fit the record limit with its key "a".
        self._aggregate_max_size = min(kpl.aggregation_max_size, kpl.max_user_record_size - 1)
        self._collection_max_count = kpl.collection_max_count
        self._collection_max_size = kpl.collection_max_size
        self._rate_limit = kpl.rate_limit
        # The KPL gives aggregates a little longer in the collector so they share requests.
        self._collect_extension = min(0.05, 0.2 * kpl.record_max_buffered_time)
        self._held: list[UserRecord] = []
        self._held_deadline = math.inf
        self._aggregates: dict[str, _Aggregate] = {}
        self._limiters: dict[str, ShardLimiter] = {}
        self._limited: set[str] = set()
        self._batch: list[KinesisRecord] = []
        self._batch_size = 0
        self._batch_deadline = math.inf
        self._batch_shard_bytes: dict[str, int] = {}
        self._ready: deque[PutRequest] = deque()
        self._in_flight: set[PutRequest] = set()

    @property
    def pending(self) -> int:
        """User records accepted and not finished yet."""
        stats = self.stats
        return stats.user_records_received - stats.user_records_put - stats.user_records_failed

    # -- input -----------------------------------------------------------------------------------

    def accept(self, records: list[UserRecord], now: float) -> None:
        """Take new user records; until the first shard map settles they wait for it."""
        if not records:
            return
        self.stats.user_records_received += len(records)
        if self.shard_map.settled:
            if self._held:  # older records first, whatever the map decided for them
                self._release_held(now)
            self._route(records, now)
            return
        self._held.extend(records)
        self._held_deadline = min(self._held_deadline, *(r.deadline for r in records))

    def _release_held(self, now: float) -> None:
        held, self._held, self._held_deadline = self._held, [], math.inf
        self._route(held, now)

    def _route(self, records: Iterable[UserRecord], now: float) -> None:
        """Predict each record's shard and aggregate it, or send it alone."""
        ends, ids = self.shard_map.lookup_tables
        if not self._aggregation or not ends:
            shard_for = self.shard_map.shard_for
            for record in records:
                self._limit(KinesisRecord.single(record, shard_for(record.hash_key)), now)
            return
        shard_count = len(ends)
        aggregates = self._aggregates
        max_count = self._aggregate_max_count
        max_size = self._aggregate_max_size
        for record in records:
            index = bisect_left(ends, record.hash_key)
            if index >= shard_count:
                self._limit(KinesisRecord.single(record, None), now)
                continue
            shard_id = ids[index]
            if record.size + _EMPTY_SIZE + _MEMBER_OVERHEAD > max_size and (
                _NO_MEMBERS.size_if_added(
                    record.partition_key, record.explicit_hash_key, record.data
                )
                > max_size
            ):
                # Too big to aggregate even alone: it goes as a plain record.
                self._limit(KinesisRecord.single(record, shard_id), now)
                continue
            aggregate = aggregates.get(shard_id)
            if aggregate is None:
                aggregate = aggregates[shard_id] = _Aggregate(shard_id)
            builder = aggregate.builder
            if builder.size + record.size + _MEMBER_OVERHEAD > max_size and (
                builder.size_if_added(record.partition_key, record.explicit_hash_key, record.data)
                > max_size
            ):
                self._emit(aggregate, now)
                aggregate = aggregates[shard_id] = _Aggregate(shard_id)
                builder = aggregate.builder
            builder.add(record.partition_key, record.explicit_hash_key, record.data)
            aggregate.records.append(record)
            aggregate.deadline = min(aggregate.deadline, record.deadline)
            aggregate.expiration = min(aggregate.expiration, record.expiration)
            if len(aggregate.records) >= max_count:
                self._emit(aggregate, now)
                del aggregates[shard_id]

    def _emit(self, aggregate: _Aggregate, now: float) -> None:
        """Turn a full or due aggregate into a Kinesis record (a lone member goes unwrapped)."""
        records = aggregate.records
        if len(records) == 1:
            self._limit(KinesisRecord.single(records[0], aggregate.shard_id), now)
            return
        data = aggregate.builder.build()
        entry: PutRecordsRequestEntryTypeDef = {
            "Data": data,
            "PartitionKey": _AGGREGATE_KEY,
            "ExplicitHashKey": str(records[0].hash_key),
        }
        deadline = min(aggregate.deadline + self._collect_extension, aggregate.expiration)
        self._limit(
            KinesisRecord(
                entry,
                len(data) + len(_AGGREGATE_KEY),
                records,
                aggregate.shard_id,
                deadline,
                aggregate.expiration,
            ),
            now,
        )

    def _limit(self, record: KinesisRecord, now: float) -> None:
        """Pass the shard's token bucket, or queue behind it; unpredicted records bypass it."""
        shard_id = record.shard_id
        if shard_id is None:
            self._collect(record)
            return
        limiter = self._limiters.get(shard_id)
        if limiter is None:
            limiter = self._limiters[shard_id] = ShardLimiter(self._rate_limit, now)
        if limiter.offer(record, now):
            self._collect(record)
        else:
            self._limited.add(shard_id)

    def _collect(self, record: KinesisRecord) -> None:
        """Add to the PutRecords batch; seal it when full or when one shard holds 256 KiB."""
        if self._batch and self._batch_size + record.size > self._collection_max_size:
            self._seal()
        self._batch.append(record)
        self._batch_size += record.size
        self._batch_deadline = min(self._batch_deadline, record.deadline)
        shard_id = record.shard_id
        if shard_id is not None:
            shard_bytes = self._batch_shard_bytes.get(shard_id, 0) + record.size
            self._batch_shard_bytes[shard_id] = shard_bytes
            if shard_bytes >= SHARD_FLUSH_BYTES:
                self._seal()
                return
        if (
            len(self._batch) >= self._collection_max_count
            or self._batch_size >= self._collection_max_size
        ):
            self._seal()

    def _seal(self) -> None:
        self._ready.append(PutRequest(self._batch))
        self._batch = []
        self._batch_size = 0
        self._batch_deadline = math.inf
        self._batch_shard_bytes = {}

    # -- time ------------------------------------------------------------------------------------

    def poll(self, now: float, *, flush: bool = False) -> None:
        """Move everything whose deadline passed (everything, with ``flush``) one stage on."""
        if self._held and (self.shard_map.settled or flush or now >= self._held_deadline):
            self._release_held(now)
        if self._aggregates:
            for shard_id, aggregate in list(self._aggregates.items()):
                if flush or aggregate.deadline <= now:
                    del self._aggregates[shard_id]
                    self._emit(aggregate, now)
        if self._limited:
            for shard_id in list(self._limited):
                limiter = self._limiters[shard_id]
                released, expired = limiter.release(now)
                for record in released:
                    self._collect(record)
                for record in expired:
                    for user_record in record.records:
                        self._retrier.fail(
                            user_record,
                            EXPIRED,
                            "Expiration reached while waiting in limiter",
                            now,
                            now,
                        )
                if not limiter.queue:
                    self._limited.discard(shard_id)
        if self._batch and (flush or self._batch_deadline <= now):
            self._seal()

    def next_wakeup(self, now: float) -> float | None:
        """The earliest time ``poll`` has something to do; None if nothing is buffered."""
        times = [self._batch_deadline]
        if self._held:
            times.append(self._held_deadline)
        times.extend(aggregate.deadline for aggregate in self._aggregates.values())
        if self._limited:
            for shard_id in self._limited:
                release = self._limiters[shard_id].next_release(now)
                if release is not None:
                    times.append(release)
        earliest = min(times)
        return None if earliest == math.inf else earliest

    # -- requests --------------------------------------------------------------------------------

    @property
    def has_ready_requests(self) -> bool:
        return bool(self._ready)

    def take_requests(self, limit: int) -> list[PutRequest]:
        """Up to ``limit`` sealed requests, oldest first; they count as in flight."""
        taken: list[PutRequest] = []
        while self._ready and len(taken) < limit:
            request = self._ready.popleft()
            self._in_flight.add(request)
            taken.append(request)
        self.stats.put_records_calls += len(taken)
        return taken

    def on_response(
        self,
        request: PutRequest,
        response: PutRecordsOutputTypeDef | None,
        error: BaseException | None,
        start: float,
        end: float,
        now: float,
    ) -> None:
        """Judge a PutRecords outcome (the retrier); route again the records it retries."""
        if request not in self._in_flight:
            return  # already failed by fail_all
        self._in_flight.discard(request)
        retries = self._retrier.judge(request.records, response, error, start, end, now)
        if retries:
            self.stats.user_record_retries += len(retries)
            self._route(retries, now)

    # -- teardown --------------------------------------------------------------------------------

    def flush_logs(self) -> None:
        """Log the failure counts still held back by the per-interval summary."""
        self._retrier.flush_logs()

    def fail_all(self, code: str, message: str, now: float) -> int:
        """Fail every record still held anywhere, in flight included; returns how many."""
        records: list[UserRecord] = list(self._held)
        for aggregate in self._aggregates.values():
            records.extend(aggregate.records)
        carriers: list[KinesisRecord] = list(self._batch)
        for limiter in self._limiters.values():
            carriers.extend(limiter.queue)
        for request in (*self._ready, *self._in_flight):
            carriers.extend(request.records)
        for carrier in carriers:
            records.extend(carrier.records)
        self._held, self._aggregates, self._limited = [], {}, set()
        self._limiters = {}
        self._ready.clear()
        self._in_flight.clear()
        self._batch, self._batch_size, self._batch_deadline = [], 0, math.inf
        self._batch_shard_bytes = {}
        for record in records:
            self._retrier.fail(record, code, message, now, now)
        return len(records)
