"""Per-shard put-rate limiting: the KPL's token buckets, so one producer cannot flood a shard.

Kinesis takes 1000 records/s and 1 MiB/s per shard. Each predicted shard gets a bucket of
1000 record tokens and 1 MiB of byte tokens, refilled at ``RateLimit`` % of those rates and
starting full. Throttling errors do not adapt the rate (nor do they in the KPL). Queued records
are released at most every ``DRAIN_INTERVAL`` (the KPL drains its limiter every 25 ms), so a
backlog leaves in batches of a few dozen records per shard, not in PutRecords calls of one.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kinesis_actors._producer.records import KinesisRecord

__all__ = [
    "BYTES_PER_SECOND",
    "DRAIN_INTERVAL",
    "RECORDS_PER_SECOND",
    "ShardLimiter",
    "TokenBucket",
]

RECORDS_PER_SECOND = 1000
BYTES_PER_SECOND = 1024 * 1024
#: Seconds between two releases of a shard's queue (the KPL's limiter drain delay).
DRAIN_INTERVAL = 0.025


class TokenBucket:
    """Two token streams, records and bytes, refilled continuously; a take needs both.

    A take larger than a stream's capacity is granted when that stream is full (the bucket goes
    into debt), so a record bigger than one second's budget is delayed, never stuck.
    """

    __slots__ = (
        "_byte_rate",
        "_bytes",
        "_last",
        "_max_bytes",
        "_max_records",
        "_record_rate",
        "_records",
    )

    def __init__(
        self,
        max_records: float,
        record_rate: float,
        max_bytes: float,
        byte_rate: float,
        now: float,
    ) -> None:
        self._max_records = max_records
        self._record_rate = record_rate
        self._max_bytes = max_bytes
        self._byte_rate = byte_rate
        self._records = max_records
        self._bytes = max_bytes
        self._last = now

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._records = min(self._max_records, self._records + elapsed * self._record_rate)
            self._bytes = min(self._max_bytes, self._bytes + elapsed * self._byte_rate)
            self._last = now

    def try_take(self, records: float, nbytes: float, now: float) -> bool:
        """Take the tokens if both streams can give them; otherwise take nothing."""
        self._refill(now)
        if (self._records >= records or self._records >= self._max_records) and (
            self._bytes >= nbytes or self._bytes >= self._max_bytes
        ):
            self._records -= records
            self._bytes -= nbytes
            return True
        return False

    def wait_time(self, records: float, nbytes: float, now: float) -> float:
        """Seconds until ``try_take(records, nbytes)`` would succeed (0 if it would now)."""
        self._refill(now)
        need_records = min(records, self._max_records) - self._records
        need_bytes = min(nbytes, self._max_bytes) - self._bytes
        return max(0.0, need_records / self._record_rate, need_bytes / self._byte_rate)


class ShardLimiter:
    """One predicted shard's bucket and the Kinesis records waiting for its tokens, in order."""

    __slots__ = ("_earliest_expiration", "bucket", "queue")

    def __init__(self, rate_limit_percent: float, now: float) -> None:
        scale = rate_limit_percent / 100
        self.bucket = TokenBucket(
            RECORDS_PER_SECOND,
            RECORDS_PER_SECOND * scale,
            BYTES_PER_SECOND,
            BYTES_PER_SECOND * scale,
            now,
        )
        self.queue: deque[KinesisRecord] = deque()
        # A lower bound of the queue's expirations: the queue is only scanned once it has passed.
        self._earliest_expiration = math.inf

    def offer(self, record: KinesisRecord, now: float) -> bool:
        """True if ``record`` may go at once; else it joins the queue behind earlier ones."""
        if not self.queue and self.bucket.try_take(1, record.size, now):
            return True
        self.queue.append(record)
        self._earliest_expiration = min(self._earliest_expiration, record.expiration)
        return False

    def release(self, now: float) -> tuple[list[KinesisRecord], list[KinesisRecord]]:
        """The queued records the tokens now allow, and those that expired while waiting."""
        released: list[KinesisRecord] = []
        expired: list[KinesisRecord] = []
        if now > self._earliest_expiration:
            expired = [r for r in self.queue if r.expiration < now]
            self.queue = deque(r for r in self.queue if r.expiration >= now)
            self._earliest_expiration = min((r.expiration for r in self.queue), default=math.inf)
        queue = self.queue
        while queue and self.bucket.try_take(1, queue[0].size, now):
            released.append(queue.popleft())
        return released, expired

    def next_release(self, now: float) -> float | None:
        """When the head of the queue gets its tokens or a queued record expires; None if empty."""
        if not self.queue:
            return None
        wait = max(DRAIN_INTERVAL, self.bucket.wait_time(1, self.queue[0].size, now))
        return min(now + wait, self._earliest_expiration)
