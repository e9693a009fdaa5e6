"""ministack, the fan-out backend: its launcher, and the behaviours the fan-out reader relies on.

These pin what was measured on ministack 1.5.33 (docs/fanout.rst): if an upgrade changes one,
the fan-out tests' premises changed too.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from kinesis_actors.testing._ministack import LocalMinistack

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient


def _port_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_launcher_starts_on_loopback_and_stop_ends_the_process() -> None:
    server = LocalMinistack().start()
    pid, port = server.pid, int(server.endpoint.rsplit(":", 1)[1])
    assert pid is not None and server.running
    try:
        stream = f"launcher-{uuid.uuid4().hex[:8]}"
        kinesis = server.kinesis_client()
        kinesis.create_stream(StreamName=stream, ShardCount=1)
        assert kinesis.list_shards(StreamName=stream)["Shards"]
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _port_closed(port)


def _event(stream: Any) -> dict[str, Any]:
    event: dict[str, Any] = next(iter(stream))["SubscribeToShardEvent"]
    return event


def test_subscribe_to_shard_streams_events_refuses_a_second_subscriber_and_ends_at_a_split(
    ministack_kinesis: KinesisClient,
) -> None:
    kinesis = ministack_kinesis
    name = f"facts-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="facts")["Consumer"]
    assert consumer["ConsumerStatus"] == "ACTIVE"  # at once (AWS: CREATING first)
    shard = "shardId-000000000000"
    put = kinesis.put_record(StreamName=name, Data=b"one", PartitionKey="k")
    response = kinesis.subscribe_to_shard(
        ConsumerARN=consumer["ConsumerARN"],
        ShardId=shard,
        StartingPosition={"Type": "TRIM_HORIZON"},
    )
    stream = response["EventStream"]
    try:
        event = _event(stream)
        assert [r["Data"] for r in event["Records"]] == [b"one"]
        assert event["ContinuationSequenceNumber"] == put["SequenceNumber"]
        with pytest.raises(ClientError) as second:
            kinesis.subscribe_to_shard(
                ConsumerARN=consumer["ConsumerARN"],
                ShardId=shard,
                StartingPosition={"Type": "LATEST"},
            )
        assert second.value.response["Error"]["Code"] == "ResourceInUseException"
        kinesis.split_shard(StreamName=name, ShardToSplit=shard, NewStartingHashKey=str(2**127))
        end = _event(stream)
        assert sorted(child["ShardId"] for child in end["ChildShards"]) == [
            "shardId-000000000001",
            "shardId-000000000002",
        ]
        # Unlike AWS, the shard-end event still carries a continuation number.
        assert end["ContinuationSequenceNumber"]
        with pytest.raises(StopIteration):
            next(iter(stream))
    finally:
        stream.close()
