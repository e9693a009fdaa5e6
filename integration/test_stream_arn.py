"""A stream addressed by ARN end to end: put, consume, tail and leases, on ministack (Kinesis)
and dynalite (the lease table). ministack checks the ARN: a wrong one is a ResourceNotFound."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kinesis_actors import KinesisConsumer, KinesisProducer, ProducerEvent, load_config
from kinesis_actors._cli.leases import lease_lags
from kinesis_actors._cli.tail import read_stream
from kinesis_actors._leases.dynamodb_leases import DynamoDBLeaseTable
from kinesis_actors.testing import LocalKinesis, LocalMinistack

RECORDS = 20


def test_put_consume_tail_and_leases_by_arn(
    local_kinesis: LocalKinesis, local_ministack: LocalMinistack, ministack_kinesis: Any
) -> None:
    name = f"arn-{uuid.uuid4().hex[:8]}"
    ministack_kinesis.create_stream(StreamName=name, ShardCount=2)
    ministack_kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    arn = ministack_kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    with pytest.raises(ClientError, match="ResourceNotFound"):
        ministack_kinesis.list_shards(StreamARN=arn.replace(name, f"{name}-missing"))
    calls: list[dict[str, Any]] = []
    ministack_kinesis.meta.events.register(
        "provide-client-params.kinesis.*", lambda params, **_: calls.append(dict(params))
    )
    with KinesisProducer({"AggregationEnabled": True}, arn, client=ministack_kinesis) as producer:
        futures = [producer.add_user_record(ProducerEvent(f"k{i}", str(i))) for i in range(RECORDS)]
        assert all(f.result(timeout=60).shard_id for f in futures)

    seen: set[str] = set()
    done = threading.Event()

    def process(event: Any) -> None:
        seen.add(event.payload_as_string())
        if len(seen) == RECORDS:
            done.set()

    application = f"app-{uuid.uuid4().hex[:6]}"
    config = load_config(
        f"""
        kinesis {{
          application-name = "{application}"
          c {{
            stream-arn = "{arn}"
            worker {{ gracefulShutdownHook = false, shutdownTimeoutSeconds = 5 }}
            checkpointer {{ intervalMillis = 100, notificationDelayMillis = 50 }}
            kcl {{ failoverTimeMillis = 1000, idleTimeBetweenReadsInMillis = 50 }}
          }}
        }}
        """
    )
    consumer = KinesisConsumer(
        process, config, "c", kinesis=ministack_kinesis, dynamodb=local_kinesis.dynamodb_client()
    )
    assert consumer.conf.table_name == f"{application}-{name}"
    stopped = consumer.start()
    try:
        assert done.wait(timeout=120), f"consumed {len(seen)} of {RECORDS}"
    finally:
        consumer.stop()
    stopped.result(timeout=60)
    assert seen == {str(i) for i in range(RECORDS)}

    tailed = list(read_stream(ministack_kinesis, arn, "TRIM_HORIZON", follow=False, idle=0.05))
    assert len(tailed) == RECORDS
    leases = DynamoDBLeaseTable(
        local_kinesis.dynamodb_client(), consumer.conf.table_name
    ).list_leases()
    assert set(lease_lags(ministack_kinesis, arn, leases)) == {lease.shard_id for lease in leases}

    stream_calls = [c for c in calls if "NextToken" not in c and "ShardIterator" not in c]
    assert stream_calls
    assert [c for c in stream_calls if c.get("StreamARN") != arn or "StreamName" in c] == []
