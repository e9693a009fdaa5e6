"""Consumers under AWS's limits: three applications on one stream written at its limit.

Through the limits mode (5 GetRecords and 2 MiB per second per shard, shared by every reader),
the KCL's pacing (one read per shard per second, catch-up after full reads only) lets three
applications read the same two shards: each sees every record, and once they are reading the
proxy refuses only a small share of their GetRecords. Then the seed's reliability run at the
seed's pace (20 000 messages/s on 2 shards, aggregated) through the limits mode.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING

from integration.conftest import reliability_run
from kinesis_actors._config import load_config
from kinesis_actors._consumer import KinesisConsumer
from kinesis_actors._models import ConsumerEvent, ProducerEvent
from kinesis_actors._producer import KinesisProducer

if TYPE_CHECKING:
    from collections.abc import Callable

    from kinesis_actors.testing import LimitsProxyProcess

SHARDS = 2
#: The stream's write limit: 1000 records/s per shard.
RATE = 1000 * SHARDS
SECONDS_WRITTEN = 4

# Default pacing (idleTimeBetweenReadsInMillis = 1000, readsPerSecondPerShard = 2); lease timings
# short so that the applications hold their shards quickly.
CONFIG = """
kinesis {{
  application-name = "{application}"
  it {{
    stream-name = "{stream}"
    worker {{ gracefulShutdownHook = false, shutdownTimeoutSeconds = 5 }}
    checkpointer {{ intervalMillis = 500 }}
    kcl {{ initialPositionInStream = TRIM_HORIZON, failoverTimeMillis = 2000,
          shardSyncIntervalMillis = 1000 }}
  }}
}}
"""


class Seen:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, event: ConsumerEvent) -> None:
        with self.lock:
            self.payloads.append(event.payload)

    def distinct(self) -> set[bytes]:
        with self.lock:
            return set(self.payloads)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def test_three_applications_read_a_stream_written_at_its_limit(
    make_stream: Callable[..., str], aws_limits: LimitsProxyProcess
) -> None:
    stream = make_stream(SHARDS)
    seen = [Seen() for _ in range(3)]
    consumers = [
        KinesisConsumer(
            app_seen,
            load_config(CONFIG.format(application=f"app{n}-{uuid.uuid4().hex[:6]}", stream=stream)),
            "it",
        )
        for n, app_seen in enumerate(seen)
    ]
    before = aws_limits.stats()
    try:
        for running in consumers:
            running.start()
        # warm-up: every application has an iterator on every shard
        _wait(
            lambda: (
                (aws_limits.stats() - before).api("kinesis.GetShardIterator").calls >= 3 * SHARDS
            ),
            60,
            "every application reading every shard",
        )
        warm = aws_limits.stats()
        expected: set[bytes] = set()
        with KinesisProducer({"AggregationEnabled": False}, stream) as producer:
            started = time.monotonic()
            futures = []
            for n in range(RATE * SECONDS_WRITTEN):
                time.sleep(max(0.0, started + n / RATE - time.monotonic()))
                data = f"{n}:".encode().ljust(100, b".")
                expected.add(data)
                futures.append(producer.add_user_record(ProducerEvent(f"k{n}", data)))
            assert all(future.result(60).successful for future in futures)
        for app_seen in seen:
            _wait(lambda app_seen=app_seen: app_seen.distinct() >= expected, 60, "every record")
        reads = (aws_limits.stats() - warm).api("kinesis.GetRecords")
    finally:
        for running in consumers:
            running.stop()

    for app_seen in seen:
        assert app_seen.distinct() == expected  # each application sees every record
    # 3 applications x 1 read/s on each shard: well within 5 per second, so few refusals
    assert reads.calls > 0
    assert reads.refused <= 0.1 * reads.calls, reads


def test_reliability_run_at_the_seeds_pace_through_the_limits_mode(
    aws_limits: LimitsProxyProcess,
) -> None:
    messages = 60_000  # 3 s at the seed's 20 000 messages/s
    before = aws_limits.stats()
    report = reliability_run(messages, rate=20_000, timeout=240)  # through the proxy
    seen = aws_limits.stats() - before
    table = report.table()
    assert report.error is None, table
    assert report.verdict is not None, table
    assert (report.sent, report.confirmed, report.failed) == (messages, messages, 0), table
    assert report.verdict.lost == 0, table
    assert report.succeeded, table
    assert "SUCCEEDED" in table
    assert seen.api("kinesis.PutRecords").calls > 0  # it did go through the limits mode
