"""Per-shard token buckets: start full, refill at RateLimit %, both streams needed, no deadlock."""

from __future__ import annotations

import math

import pytest

from kinesis_actors._producer.limiter import (
    BYTES_PER_SECOND,
    DRAIN_INTERVAL,
    RECORDS_PER_SECOND,
    ShardLimiter,
    TokenBucket,
)
from kinesis_actors._producer.records import KinesisRecord


def bucket(now: float = 0.0) -> TokenBucket:
    return TokenBucket(10, 5, 1000, 100, now)


def test_a_bucket_starts_full() -> None:
    b = bucket()
    assert all(b.try_take(1, 100, 0.0) for _ in range(10))
    assert not b.try_take(1, 0, 0.0)


def test_a_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    b = bucket()
    assert b.try_take(10, 1000, 0.0)
    assert not b.try_take(1, 1, 0.1)
    assert b.try_take(1, 1, 0.2)  # 5 records/s: one token after 0.2 s
    assert b.wait_time(1, 1, 0.2) == pytest.approx(0.2)
    assert b.try_take(10, 1000, 100.0)  # capped at capacity
    assert not b.try_take(1, 1, 100.0)


def test_a_take_needs_both_streams_and_takes_nothing_otherwise() -> None:
    b = bucket()
    assert b.try_take(1, 1000, 0.0)
    assert not b.try_take(1, 50, 0.0)  # records left, bytes not
    assert b.wait_time(1, 50, 0.0) == pytest.approx(0.5)
    assert b.try_take(9, 50, 0.5)  # the failed take took no record tokens


def test_a_take_bigger_than_capacity_passes_when_the_stream_is_full() -> None:
    b = bucket()
    assert b.try_take(1, 5000, 0.0)  # 5x the byte capacity: granted, bucket in debt
    assert not b.try_take(1, 1, 10.0)  # -4000 + 10 s * 100 = -3000 bytes
    assert b.wait_time(1, 5000, 10.0) == pytest.approx(40.0)  # until full again
    assert b.try_take(1, 5000, 50.0)


def record(size: int, expiration: float = math.inf) -> KinesisRecord:
    return KinesisRecord({"Data": b"", "PartitionKey": "k"}, size, [], "shardId-1", 0.0, expiration)


def test_the_shard_limiter_uses_the_kinesis_limits_scaled_by_rate_limit() -> None:
    limiter = ShardLimiter(150, 0.0)
    passed = sum(limiter.offer(record(1), 0.0) for _ in range(RECORDS_PER_SECOND + 100))
    assert passed == RECORDS_PER_SECOND
    released, _ = limiter.release(0.01)
    assert len(released) == 15  # 1500 records/s
    assert ShardLimiter(100, 0.0).bucket.wait_time(1, 2 * BYTES_PER_SECOND, 0.0) == 0.0


def test_queued_records_leave_in_order_and_late_arrivals_queue_behind_them() -> None:
    limiter = ShardLimiter(100, 0.0)
    assert limiter.offer(record(BYTES_PER_SECOND), 0.0)
    first, second = record(10), record(20)
    assert not limiter.offer(first, 0.0)
    assert not limiter.offer(second, 0.0)
    # the tokens are there in 10 us, but a queue is drained at most every DRAIN_INTERVAL
    assert limiter.next_release(0.0) == pytest.approx(DRAIN_INTERVAL)
    released, expired = limiter.release(1.0)
    assert released == [first, second] and expired == []
    assert limiter.next_release(1.0) is None


def test_records_that_expire_while_queued_are_handed_back() -> None:
    limiter = ShardLimiter(1, 0.0)
    assert limiter.offer(record(BYTES_PER_SECOND), 0.0)
    soon, later = record(100_000, expiration=1.0), record(100_000, expiration=100.0)
    limiter.offer(soon, 0.0)
    limiter.offer(later, 0.0)
    assert limiter.next_release(0.0) == 1.0  # wake up for the expiry
    released, expired = limiter.release(1.5)
    assert expired == [soon] and released == []
    assert list(limiter.queue) == [later]
