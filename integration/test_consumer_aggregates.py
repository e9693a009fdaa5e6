"""No aggregate member is lost (issue 13, item 2), on kinesalite + dynalite.

1. aws-kinesis-agg packs records for any shard into one aggregate (routed by its first member):
   on a stream that never split, every member is delivered, once.
2. This library's producer across a split: its stale shard map sends aggregates meant for the
   parent to a child shard; it re-sends their members, and the consumer drops only the members
   outside the child's range. Nothing is lost; duplicates are at most what the producer
   reported re-sending.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from aws_kinesis_agg.aggregator import RecordAggregator

from integration.conftest import split_in_two
from integration.test_consumer import Seen, consumer, wait_for
from kinesis_actors import KinesisProducer, ProducerEvent, metrics


def test_an_aws_kinesis_agg_aggregate_across_shards_of_an_unsplit_stream_is_delivered_whole(
    kinesis: Any, make_stream: Callable[..., str]
) -> None:
    stream = make_stream(4)
    aggregator = RecordAggregator()
    sent = [f"member-{n}" for n in range(20)]
    for payload in sent:
        aggregator.add_user_record(payload, payload.encode())  # partition keys on every shard
    partition_key, _, data = aggregator.clear_and_get().get_contents()
    kinesis.put_record(StreamName=stream, Data=data, PartitionKey=partition_key)
    seen = Seen()
    running = consumer(stream, f"app-{uuid.uuid4().hex[:6]}", seen)
    running.start()
    try:
        wait_for(lambda: len(seen.payloads()) >= len(sent), 30, "every member delivered")
        assert sorted(seen.payloads()) == sorted(sent)  # all 20, each once
        assert [e.sequence_number.sub_sequence_number for e in seen.events] == list(range(20))
    finally:
        running.stop()


def test_the_library_producer_across_a_split_loses_nothing_and_duplicates_are_bounded(
    kinesis: Any, make_stream: Callable[..., str]
) -> None:
    stream = make_stream(1)
    dropped_before = metrics.in_memory().total("AggregateMembersDropped")
    sent: list[str] = []
    producer = KinesisProducer({"RateLimit": 10_000}, stream, client=kinesis)
    try:

        def send(prefix: str, count: int) -> None:
            payloads = [f"{prefix}-{n}" for n in range(count)]
            futures = [producer.add_user_record(ProducerEvent(p, p.encode())) for p in payloads]
            for future in futures:
                assert future.result(timeout=60).successful
            sent.extend(payloads)

        send("before", 200)
        split_in_two(kinesis, stream)
        send("after", 400)  # the first aggregates go by the stale map: misrouted, re-sent
        resent = producer.stats().wrong_shard_records
    finally:
        producer.stop()
    assert resent > 0, "the split did not misroute any aggregate: the test saw nothing"

    seen = Seen()
    running = consumer(stream, f"app-{uuid.uuid4().hex[:6]}", seen)
    running.start()
    try:
        wait_for(lambda: set(seen.payloads()) >= set(sent), 60, "every record delivered")
    finally:
        running.stop()
    delivered = Counter(seen.payloads())
    assert set(delivered) == set(sent)  # nothing lost, nothing foreign
    duplicates = sum(n - 1 for n in delivered.values())
    assert duplicates <= resent  # at most the members the producer re-sent
    dropped = metrics.in_memory().total("AggregateMembersDropped") - dropped_before
    assert dropped > 0  # the misrouted copies' outside members were dropped, and counted
    assert duplicates + dropped <= resent
