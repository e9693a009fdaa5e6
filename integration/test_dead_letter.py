"""The dead-letter path on kinesalite + dynalite: records that keep failing, skipped within the
failure tolerance, arrive on the dead-letter stream with their metadata, and the checkpoint never
passes a record whose dead-letter write failed."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from kinesis_actors import DeadLetterError, KinesisConsumer, ProcessingFailedError, load_config
from kinesis_actors._leases import DynamoDBLeaseTable
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent
from kinesis_actors.testing._local import LocalKinesis

CONFIG = """
kinesis {{
  application-name = "{application}"
  it {{
    stream-name = "{stream}"
    worker {{ batchTimeoutSeconds = 0.5, failedMessageRetries = 1,
             failureTolerancePercentage = 20, gracefulShutdownHook = false,
             shutdownTimeoutSeconds = 5, deadLetterStream = "{dead_letters}" }}
    checkpointer {{ intervalMillis = 100, notificationDelayMillis = 50 }}
    kcl {{ failoverTimeMillis = 1000, idleTimeBetweenReadsInMillis = 50,
          taskBackoffTimeMillis = 100, shardSyncIntervalMillis = 500 }}
  }}
}}
"""


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def failing_on_bad(event: ConsumerEvent) -> None:
    if event.payload.startswith(b"bad"):
        raise ValueError("cannot parse")


def start(
    stream: str, dead_letters: str, on_skipped: Callable[..., None] | None = None
) -> tuple[KinesisConsumer, str, Any]:
    application = f"app-{uuid.uuid4().hex[:6]}"
    text = CONFIG.format(application=application, stream=stream, dead_letters=dead_letters)
    consumer = KinesisConsumer(failing_on_bad, load_config(text), "it", on_skipped=on_skipped)
    return consumer, f"{application}-{stream}", consumer.start()


def put_batch(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Ten records in one PutRecords (one batch), the fourth one bad."""
    payloads = [b"bad-4" if n == 4 else f"good-{n}".encode() for n in range(1, 11)]
    records = [{"Data": p, "PartitionKey": f"key-{n}"} for n, p in enumerate(payloads, 1)]
    result = kinesis.put_records(StreamName=stream, Records=records)
    return [dict(r, **put) for r, put in zip(records, result["Records"], strict=True)]


def read_all(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return list(kinesis.get_records(ShardIterator=iterator)["Records"])


def checkpoint(local_kinesis: LocalKinesis, table: str) -> Any:
    leases = DynamoDBLeaseTable(local_kinesis.dynamodb_client(), table).list_leases()
    return leases[0].checkpoint if leases else None


def test_skipped_records_arrive_on_the_dead_letter_stream_before_the_checkpoint_passes(
    kinesis: Any, local_kinesis: LocalKinesis, make_stream: Callable[..., str]
) -> None:
    stream, dead_letters = make_stream(1), make_stream(1)
    kept: list[tuple[Any, ...]] = []
    consumer, table, done = start(stream, dead_letters, lambda *arguments: kept.append(arguments))
    try:
        put = put_batch(kinesis, stream)
        last = CompoundSequenceNumber(put[-1]["SequenceNumber"])
        wait_for(lambda: read_all(kinesis, dead_letters), 30, "the dead-letter record")
        wait_for(lambda: checkpoint(local_kinesis, table) == last, 30, "checkpoint at the end")
    finally:
        assert consumer.stop()
    assert done.result(timeout=1) is None
    [record] = read_all(kinesis, dead_letters)
    assert record["PartitionKey"] == "key-4"  # the original partition key
    document = json.loads(record["Data"])
    assert document["stream"] == stream
    assert document["shardId"] == put[3]["ShardId"]
    assert document["sequenceNumber"] == put[3]["SequenceNumber"]
    assert document["subSequenceNumber"] == 0
    assert document["partitionKey"] == "key-4"
    assert document["reason"] == "unacknowledged"
    # The exception process_record raised, not only why the record was skipped.
    assert document["lastError"] == "ValueError: cannot parse"
    assert base64.b64decode(document["data"]) == b"bad-4"
    # onSkipped, after the stream: the same record, reason and last error.
    [(events, shard_id, reason, errors)] = kept
    assert [e.payload for e in events] == [b"bad-4"] and shard_id == put[3]["ShardId"]
    assert (reason, errors) == ("unacknowledged", ("ValueError: cannot parse",))


def test_a_missing_dead_letter_stream_fails_the_consumer_and_keeps_the_checkpoint_before(
    kinesis: Any, local_kinesis: LocalKinesis, make_stream: Callable[..., str]
) -> None:
    stream = make_stream(1)
    consumer, table, done = start(stream, f"missing-{uuid.uuid4().hex[:8]}")
    try:
        put = put_batch(kinesis, stream)
        with pytest.raises(ProcessingFailedError) as error:
            done.result(timeout=60)
    finally:
        consumer.stop()
    assert isinstance(error.value.__cause__, DeadLetterError)
    assert [e.payload for e in error.value.failed_events] == [b"bad-4"]
    bad = CompoundSequenceNumber(put[3]["SequenceNumber"])
    position = checkpoint(local_kinesis, table)
    # At most the records before the bad one; never past it.
    assert not isinstance(position, CompoundSequenceNumber) or position < bad
