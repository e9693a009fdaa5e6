"""The producer under AWS's limits: offered twice a stream's capacity, it loses nothing.

Through the limits mode (a proxy enforcing 1000 records/s and 1 MiB/s per shard), the per-shard
limiter (``RateLimit``, on by default) keeps throttled entries few; the ones that are throttled
are retried, and every record is stored exactly once (read back upstream and deaggregated with
AWS's aws-kinesis-agg).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from integration.test_producer_engine import read_stream
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer import KinesisProducer

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors.testing import LimitsProxyProcess

SHARDS = 2
SECONDS_OFFERED = 2.0


@pytest.mark.parametrize(
    ("aggregated", "size", "capacity_per_shard"),
    [
        (False, 100, 1000.0),  # records/s binds
        (True, 1000, 1024 * 1024 / 1000),  # bytes/s binds: ~1048 records of 1 KB a second
    ],
    ids=["plain", "aggregated"],
)
def test_producer_offered_twice_the_capacity_stores_every_record_once(
    aggregated: bool,
    size: int,
    capacity_per_shard: float,
    make_stream: Callable[..., str],
    kinesis: KinesisClient,
    aws_limits: LimitsProxyProcess,
) -> None:
    stream = make_stream(SHARDS)
    offered_rate = 2 * SHARDS * capacity_per_shard
    count = int(offered_rate * SECONDS_OFFERED)
    before = aws_limits.stats()
    with KinesisProducer({"AggregationEnabled": aggregated}, stream) as producer:
        started = time.monotonic()
        futures = []
        for n in range(count):
            time.sleep(max(0.0, started + n / offered_rate - time.monotonic()))
            data = f"{n}:".encode().ljust(size, b".")
            futures.append(producer.add_user_record(ProducerEvent(f"key-{n}", data)))
        results = [future.result(120) for future in futures]
        stats = producer.stats()
    seen = aws_limits.stats() - before

    assert all(result.successful for result in results)
    stored = Counter(
        int(data.split(b":", 1)[0])
        for records in read_stream(kinesis, stream).values()
        for _, _, _, data in records
    )
    assert sorted(stored) == list(range(count))
    assert set(stored.values()) == {1}  # exactly once

    puts = seen.api("kinesis.PutRecords")
    # every throttled entry the proxy answered is in the producer's stats, and was retried
    assert stats.throttled_records == puts.throttled_entries
    assert puts.entries == stats.kinesis_records_put + puts.throttled_entries
    # the limiter keeps throttles few: under a tenth of the entries sent
    assert puts.throttled_entries <= 0.1 * puts.entries, puts
