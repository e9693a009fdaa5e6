"""FanoutShardReader against a scripted SubscribeToShard: positions, renewal, retries, shard end,
protocol failures, back-pressure and close. The reader's own thread reads the fake stream; every
wait here is bounded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3.exceptions
from botocore.eventstream import ChecksumMismatch
from botocore.exceptions import EventStreamError
from test_consumer_support import SHARD, client_error, consumer_conf, lease, seq

from kinesis_actors import metrics
from kinesis_actors._aggregation import encode
from kinesis_actors._consumer.fanout import FanoutShardReader, SubscriptionFailed
from kinesis_actors._consumer.reader import ReadResult
from kinesis_actors._models import Sentinel

ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/app:1"
CONF = consumer_conf(
    "kcl { taskBackoffTimeMillis = 1, fanoutMaxBackoffMillis = 5, maxRecords = 3 }"
)
_WAIT = 5.0


def record(number: int, data: bytes | None = None) -> dict[str, Any]:
    return {
        "SequenceNumber": str(seq(number).sequence_number),
        "Data": data if data is not None else b"%d" % number,
        "ApproximateArrivalTimestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "PartitionKey": "k",
    }


def event(*numbers: int, continuation: int | None = None, **extra: Any) -> dict[str, Any]:
    last = continuation if continuation is not None else (numbers[-1] if numbers else 999)
    body: dict[str, Any] = {
        "Records": [record(n) for n in numbers],
        "ContinuationSequenceNumber": str(seq(last).sequence_number),
        "MillisBehindLatest": 7,
    }
    body.update(extra)
    return {"SubscribeToShardEvent": body}


class FakeStream:
    """Yields its script (events; exceptions are raised), then ends, or blocks until
    interrupted when ``block`` (as a live subscription does)."""

    def __init__(self, *script: Any, block: bool = False) -> None:
        self.script = list(script)
        self.block = block
        self.interrupted = threading.Event()
        self.closed = False
        self.raw = SimpleNamespace(shutdown=self.interrupted.set)
        self.read = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.script:
            if self.interrupted.is_set():
                raise urllib3.exceptions.ProtocolError("Response ended prematurely")
            self.read += 1
            if isinstance(item, BaseException):
                raise item
            yield item
        if self.block:
            self.interrupted.wait(_WAIT * 2)
            raise urllib3.exceptions.ProtocolError("Response ended prematurely")

    def close(self) -> None:
        self.closed = True


class FakeKinesis:
    """SubscribeToShard answers from a script (a FakeStream or an exception); once it is used up,
    every subscription blocks until interrupted."""

    def __init__(self, *script: Any, consumer_exists: bool = True) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.streams: list[FakeStream] = []
        self.consumer_exists = consumer_exists
        self._hooks: list[Any] = []
        self.meta = SimpleNamespace(
            events=SimpleNamespace(register=lambda name, hook, unique_id: self._hooks.append(hook))
        )

    def subscribe_to_shard(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        outcome = self.script.pop(0) if self.script else FakeStream(block=True)
        if isinstance(outcome, BaseException):
            raise outcome
        self.streams.append(outcome)
        for hook in self._hooks[:1]:
            hook(http_response=SimpleNamespace(raw=outcome.raw))
        return {"EventStream": outcome}

    def describe_stream_consumer(self, **key: Any) -> dict[str, Any]:
        if not self.consumer_exists:
            raise client_error("ResourceNotFoundException", "DescribeStreamConsumer")
        return {"ConsumerDescription": {"ConsumerARN": ARN, "ConsumerStatus": "ACTIVE"}}


class Reader:
    """A started reader plus a bounded wait for its next item."""

    def __init__(self, kinesis: FakeKinesis, conf: Any = CONF, **lease_args: Any) -> None:
        self.ready = threading.Event()
        self.reader = FanoutShardReader(
            kinesis,  # type: ignore[arg-type]
            ARN,
            lease(**lease_args),
            conf.kcl,
            self.ready.set,
        )
        self.reader.start()

    def next(self) -> ReadResult | SubscriptionFailed:
        for _ in range(100):
            item = self.reader.take()
            if item is not None:
                return item
            assert self.ready.wait(_WAIT), "no item from the reader"
            self.ready.clear()
        raise AssertionError("reader kept waking without an item")

    def batch(self) -> ReadResult:
        item = self.next()
        assert isinstance(item, ReadResult), item
        return item

    def collect(self, count: int) -> list[ReadResult]:
        """Batches until ``count`` records or the shard end (how the thread's buffering and the
        merging in ``take`` cut them is timing)."""
        batches = [self.batch()]
        while sum(len(b.events) for b in batches) < count and not batches[-1].shard_end:
            batches.append(self.batch())
        return batches

    def close(self) -> None:
        self.reader.close()
        thread = self.reader._thread
        if thread is not None:
            thread.join(_WAIT)
            assert not thread.is_alive()


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.in_memory().reset()
    yield
    metrics.in_memory().reset()


def payloads(*results: ReadResult) -> list[bytes]:
    return [e.payload for result in results for e in result.events]


def test_starts_at_the_checkpoint_and_drops_what_was_processed_inside_an_aggregate() -> None:
    aggregate = record(1001, encode([("a", None, b"a0"), ("b", None, b"a1"), ("c", None, b"a2")]))
    first = {
        "SubscribeToShardEvent": {**event(1001)["SubscribeToShardEvent"], "Records": [aggregate]}
    }
    kinesis = FakeKinesis(FakeStream(first, event(1002), block=True))
    reader = Reader(kinesis, checkpoint=seq(1001, 0))
    try:
        assert payloads(*reader.collect(3)) == [b"a1", b"a2", b"1002"]
        position = kinesis.requests[0]["StartingPosition"]
        assert position == {
            "Type": "AT_SEQUENCE_NUMBER",
            "SequenceNumber": str(seq(1001).sequence_number),
        }
        assert kinesis.requests[0]["ConsumerARN"] == ARN and kinesis.requests[0]["ShardId"] == SHARD
    finally:
        reader.close()


def test_a_sentinel_checkpoint_starts_at_the_initial_position() -> None:
    kinesis = FakeKinesis(FakeStream(event(1), block=True))
    reader = Reader(kinesis, checkpoint=Sentinel.LATEST)
    try:
        reader.batch()
        assert kinesis.requests[0]["StartingPosition"] == {"Type": "LATEST"}
    finally:
        reader.close()


def test_events_are_cut_into_batches_of_max_records() -> None:
    kinesis = FakeKinesis(FakeStream(event(1, 2, 3, 4, 5), block=True))
    reader = Reader(kinesis)
    try:
        batches = reader.collect(5)
        assert payloads(*batches) == [b"1", b"2", b"3", b"4", b"5"]
        assert [len(b.events) for b in batches] == [3, 2]
    finally:
        reader.close()


def test_an_ended_subscription_is_renewed_after_the_last_continuation() -> None:
    kinesis = FakeKinesis(
        FakeStream(event(1, 2)), FakeStream(event(continuation=5), event(6), block=True)
    )
    reader = Reader(kinesis)
    try:
        assert payloads(*reader.collect(3)) == [b"1", b"2", b"6"]
        assert kinesis.requests[1]["StartingPosition"] == {
            "Type": "AFTER_SEQUENCE_NUMBER",
            "SequenceNumber": str(seq(2).sequence_number),
        }
        assert reader.reader.continuation == str(seq(6).sequence_number)
        sink = metrics.in_memory()
        assert sink.total("FanoutSubscriptionsOpened", shard_id=SHARD) == 1
        assert sink.total("FanoutSubscriptionsRenewed", shard_id=SHARD) == 1
        assert sink.value("MillisBehindLatest", shard_id=SHARD) == 7
    finally:
        reader.close()


def test_resource_in_use_and_a_broken_stream_are_retried_from_where_it_stopped() -> None:
    in_use = EventStreamError(
        {"Error": {"Code": "ResourceInUseException", "Message": "taken over"}}, "SubscribeToShard"
    )
    kinesis = FakeKinesis(
        client_error("ResourceInUseException", "SubscribeToShard"),
        FakeStream(event(1), urllib3.exceptions.ProtocolError("connection reset")),
        FakeStream(in_use),
        FakeStream(event(2), block=True),
    )
    reader = Reader(kinesis)
    try:
        assert payloads(*reader.collect(2)) == [b"1", b"2"]
        positions = [r["StartingPosition"] for r in kinesis.requests]
        assert positions[0] == positions[1] == {"Type": "TRIM_HORIZON"}
        after_one = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": str(seq(1).sequence_number)}
        assert positions[2] == positions[3] == after_one
        assert metrics.in_memory().total("FanoutSubscriptionsFailed", shard_id=SHARD) == 3
    finally:
        reader.close()


def test_child_shards_end_the_shard_after_its_records() -> None:
    children = [{"ShardId": "shardId-000000000001", "ParentShards": [SHARD], "HashKeyRange": {}}]
    kinesis = FakeKinesis(FakeStream(event(1), event(2, ChildShards=children)))
    reader = Reader(kinesis)
    try:
        batches = reader.collect(3)
        assert payloads(*batches) == [b"1", b"2"]
        end = batches[-1]
        assert end.shard_end and end.child_shards == tuple(children)
        assert reader.reader.ended and len(kinesis.requests) == 1
    finally:
        reader.close()


def test_no_continuation_ends_the_shard() -> None:
    last = event(1)
    last["SubscribeToShardEvent"]["ContinuationSequenceNumber"] = None
    reader = Reader(FakeKinesis(FakeStream(last)))
    try:
        batches = reader.collect(2)
        assert payloads(*batches) == [b"1"] and batches[-1].shard_end
    finally:
        reader.close()


def test_a_missing_shard_is_its_end_but_a_missing_consumer_is_a_failure() -> None:
    gone = client_error("ResourceNotFoundException", "SubscribeToShard")
    reader = Reader(FakeKinesis(gone))
    try:
        end = reader.batch()
        assert end.shard_end and end.child_shards is None
    finally:
        reader.close()
    reader = Reader(FakeKinesis(gone, consumer_exists=False))
    try:
        failed = reader.next()
        assert isinstance(failed, SubscriptionFailed) and not failed.protocol
        assert "no longer exists" in str(failed.error)
    finally:
        reader.close()


@pytest.mark.parametrize(
    "failure",
    [
        client_error("UnknownOperationException", "SubscribeToShard"),
        ChecksumMismatch(1, 2),
    ],
    ids=["not served", "unreadable stream"],
)
def test_a_protocol_error_fails_the_reader_after_what_it_handed_out(failure: Exception) -> None:
    script = [FakeStream(event(1, 2))]
    script.append(FakeStream(failure) if isinstance(failure, ChecksumMismatch) else failure)  # type: ignore[arg-type]
    reader = Reader(FakeKinesis(*script))
    try:
        assert payloads(*reader.collect(2)) == [b"1", b"2"]
        failed = reader.next()
        assert isinstance(failed, SubscriptionFailed) and failed.protocol
        assert failed.resume_after == str(seq(2).sequence_number)
    finally:
        reader.close()


def test_the_stream_is_read_no_faster_than_batches_are_taken() -> None:
    conf = consumer_conf("kcl { fanoutMaxBufferedBatches = 1, maxRecords = 1 }")
    stream = FakeStream(event(1), event(2), event(3), event(4), block=True)
    reader = Reader(FakeKinesis(stream), conf)
    try:
        assert payloads(reader.batch()) == [b"1"]
        assert payloads(reader.batch()) == [b"2"]
        # Taken: 2, buffered: 1, the thread waits to buffer the next: at most 4 read.
        assert stream.read <= 4
        assert payloads(reader.batch()) == [b"3"]
        assert payloads(reader.batch()) == [b"4"]
    finally:
        reader.close()


def test_close_ends_a_blocked_read_at_once() -> None:
    kinesis = FakeKinesis(FakeStream(event(1), block=True))
    reader = Reader(kinesis)
    reader.batch()
    reader.close()  # joins the thread within the bound
    assert kinesis.streams[0].interrupted.is_set() and kinesis.streams[0].closed
    assert len(kinesis.requests) == 1


def test_a_shard_already_at_shard_end_is_not_subscribed() -> None:
    kinesis = FakeKinesis()
    reader = Reader(kinesis, checkpoint=Sentinel.SHARD_END)
    try:
        assert reader.batch().shard_end
        assert kinesis.requests == []
    finally:
        reader.close()
