"""The KPL pipeline as single-threaded state: aggregate, limit, collect, then judge the replies.

``put -> Aggregator -> Limiter -> Collector -> PutRecords -> Retrier -> (finish | Aggregator)``

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
from kinesis_actors._aws import error_code as aws_error_code
from kinesis_actors._aws import error_message, is_fatal_put_error
from kinesis_actors._errors import UserRecordFailedError
from kinesis_actors._log_summary import LogSummary
from kinesis_actors._models import Attempt, UserRecordResult
from kinesis_actors._producer.futures import finish_all
from kinesis_actors._producer.limiter import ShardLimiter
from kinesis_actors._producer.records import KinesisRecord, UserRecord
from kinesis_actors._producer.shard_map import shard_number

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_kinesis.type_defs import (
        PutRecordsOutputTypeDef,
        PutRecordsRequestEntryTypeDef,
    )
    from structlog.stdlib import BoundLogger

    from kinesis_actors._config import KplConf
    from kinesis_actors._producer.shard_map import ShardMap

__all__ = [
    "COUNT_MISMATCH",
    "EXPIRED",
    "THROTTLED",
    "WRONG_SHARD",
    "Pipeline",
    "PipelineStats",
    "PutRequest",
    "error_code",
]

#: Error codes in attempts: Kinesis's throttle, and the KPL's own codes.
THROTTLED = "ProvisionedThroughputExceededException"
EXPIRED = "Expired"
WRONG_SHARD = "Wrong Shard"
COUNT_MISMATCH = "Record Count Mismatch"

#: A shard holding this many bytes in the collector makes it send at once (avoids bursts).
SHARD_FLUSH_BYTES = 256 * 1024
#: Upper bound of what one member adds to an aggregate beyond its data and key bytes (table
#: entries, field tags, varints, an explicit hash key): below it, no exact size check is needed.
_MEMBER_OVERHEAD = 80
_AGGREGATE_KEY = "a"
#: Never filled: asked what a record would weigh as an aggregate's only member.
_NO_MEMBERS = AggregateBuilder()
_EMPTY_SIZE = _NO_MEMBERS.size


def error_code(error: BaseException) -> tuple[str, str]:
    """(code, message) of a failed call: the service error code, else the exception's name."""
    return aws_error_code(error) or type(error).__name__, error_message(error)


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
        #: User records accepted and not finished yet.
        self.pending = 0
        self._log = log
        # Failing calls and entries: one line per error code per interval, not one per call.
        self._failures = LogSummary(log)
        self._aggregation = kpl.aggregation_enabled
        self._aggregate_max_count = kpl.aggregation_max_count
        # An aggregate is one Kinesis record: it must also fit the record limit with its key "a".
        self._aggregate_max_size = min(kpl.aggregation_max_size, kpl.max_user_record_size - 1)
        self._collection_max_count = kpl.collection_max_count
        self._collection_max_size = kpl.collection_max_size
        self._rate_limit = kpl.rate_limit
        self._fail_if_throttled = kpl.fail_if_throttled
        self._retry_delay = kpl.record_max_buffered_time / 2
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

    # -- input -----------------------------------------------------------------------------------

    def accept(self, records: list[UserRecord], now: float) -> None:
        """Take new user records; until the first shard map settles they wait for it."""
        if not records:
            return
        self.pending += len(records)
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
                        self._fail(
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
        """Judge a PutRecords outcome: finish, retry or fail each user record (KPL retrier)."""
        if request not in self._in_flight:
            return  # already failed by fail_all
        self._in_flight.discard(request)
        retries: list[UserRecord] = []
        if response is None:
            code, message = error_code(error) if error is not None else ("Unknown", "no response")
            self.stats.put_records_call_errors += 1
            self._failures.warning(
                ("call", code),
                "PutRecords call failed",
                now,
                error_code=code,
                error_message=message,
                kinesis_records=len(request.records),
                fatal=is_fatal_put_error(code),
            )
            for record in request.records:
                self._retry_or_fail(record, code, message, start, end, now, retries)
        else:
            results = response["Records"]
            if len(results) != len(request.records):
                message = (
                    f"PutRecords answered {len(results)} entries for "
                    f"{len(request.records)} records sent"
                )
                self._log.error("PutRecords response count mismatch", detail=message)
                for record in request.records:
                    for user_record in record.records:
                        self._fail(user_record, COUNT_MISMATCH, message, start, end)
            else:
                failed_codes: dict[str, int] = {}
                for record, result in zip(request.records, results, strict=True):
                    sequence_number = result.get("SequenceNumber")
                    if sequence_number:
                        shard_id = result["ShardId"]
                        self._succeed(record, shard_id, sequence_number, start, end, retries)
                    else:
                        code = result.get("ErrorCode") or "Unknown"
                        failed_codes[code] = failed_codes.get(code, 0) + 1
                        self._retry_or_fail(
                            record, code, result.get("ErrorMessage") or "", start, end, now, retries
                        )
                if failed_codes:
                    self._failures.info(
                        ("entries", *sorted(failed_codes)),
                        "PutRecords entries failed",
                        now,
                        error_codes=failed_codes,
                    )
        if retries:
            self.stats.user_record_retries += len(retries)
            self._route(retries, now)

    def _succeed(
        self,
        record: KinesisRecord,
        shard_id: str,
        sequence_number: str,
        start: float,
        end: float,
        retries: list[UserRecord],
    ) -> None:
        stats = self.stats
        stats.kinesis_records_put += 1
        stats.kinesis_bytes_put += record.size
        predicted = record.shard_id
        members = record.records
        if predicted is not None and predicted != shard_id:
            members = self._check_wrong_shard(record, predicted, shard_id, start, retries)
        duration = end - start
        results = []
        for user_record in members:
            success = Attempt(start - user_record.mark, duration, None, None, True)
            attempts = user_record.attempts
            results.append(
                UserRecordResult(
                    shard_id,
                    sequence_number,
                    (success,) if attempts is None else (*attempts, success),
                    True,
                )
            )
        finish_all([user_record.future for user_record in members], results)
        stats.user_records_put += len(members)
        self.pending -= len(members)

    def _check_wrong_shard(
        self,
        record: KinesisRecord,
        predicted: str,
        shard_id: str,
        start: float,
        retries: list[UserRecord],
    ) -> list[UserRecord]:
        """The members that count as put on ``shard_id``; the others are retried.

        Kinesis routes a record by its explicit hash key, the first member's. If any member of an
        aggregate falls outside the actual shard's range, consumers drop the WHOLE aggregate (the
        KCL's resharding filter), so every member is sent again as "Wrong Shard" — the first one
        too, or it would be lost. With the actual shard's range unknown, members whose hash key
        differs from the first one's are assumed outside: a duplicate at worst, never a loss.
        """
        hash_range = self.shard_map.hash_range(shard_id, start)
        routed_by = record.records[0].hash_key
        misrouted = sum(
            1
            for user_record in record.records
            if user_record.hash_key != routed_by
            and (hash_range is None or not hash_range[0] <= user_record.hash_key <= hash_range[1])
        )
        stale = hash_range is None or shard_number(shard_id) > shard_number(predicted)
        if (misrouted or stale) and self.shard_map.invalidate(start, predicted):
            self._log.warning(
                "record landed off its predicted shard; refreshing the shard map",
                predicted_shard=predicted,
                actual_shard=shard_id,
                misrouted_records=misrouted,
            )
        if not misrouted:
            return record.records
        for user_record in record.records:
            self._add_attempt(
                user_record,
                WRONG_SHARD,
                f"aggregate predicted for {predicted} landed on {shard_id} with "
                f"{misrouted} member(s) outside its hash range",
                start,
                start,
            )
            retries.append(user_record)
        self.stats.wrong_shard_records += len(record.records)
        return []

    def _retry_or_fail(
        self,
        record: KinesisRecord,
        code: str,
        message: str,
        start: float,
        end: float,
        now: float,
        retries: list[UserRecord],
    ) -> None:
        throttled = code == THROTTLED
        if throttled:
            self.stats.throttled_records += 1
        # A code no retry can fix (missing stream, no permission, KMS key unusable) fails the
        # records at once, naming it, instead of retrying until RecordTtl says "Expired".
        fail_now = is_fatal_put_error(code) or (throttled and self._fail_if_throttled)
        for user_record in record.records:
            if fail_now:
                self._fail(user_record, code, message, start, end)
                continue
            self._add_attempt(user_record, code, message, start, end)
            if now > user_record.expiration:
                self._fail(user_record, EXPIRED, "Record has reached expiration", now, now)
            else:
                user_record.deadline = min(now + self._retry_delay, user_record.expiration)
                retries.append(user_record)

    @staticmethod
    def _add_attempt(record: UserRecord, code: str, message: str, start: float, end: float) -> None:
        attempt = Attempt(start - record.mark, end - start, code, message, False)
        record.mark = end
        if record.attempts is None:
            record.attempts = [attempt]
        else:
            record.attempts.append(attempt)

    def _fail(self, record: UserRecord, code: str, message: str, start: float, end: float) -> None:
        """Finish a record as failed; its future raises ``UserRecordFailedError``."""
        self._add_attempt(record, code, message, start, end)
        result = UserRecordResult(None, None, tuple(record.attempts or ()), False)
        record.future.set_exception(UserRecordFailedError(result))
        self.stats.user_records_failed += 1
        if code == EXPIRED:
            self.stats.user_records_expired += 1
        self.pending -= 1

    # -- teardown --------------------------------------------------------------------------------

    def flush_logs(self) -> None:
        """Log the failure counts still held back by the per-interval summary."""
        self._failures.flush()

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
            self._fail(record, code, message, now, now)
        return len(records)
