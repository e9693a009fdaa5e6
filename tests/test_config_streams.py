"""Streams addressed by name or by ARN: config keys, the request arguments, moto in-process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kinesis_actors._config import ConsumerConf, ProducerConf, load_config, resolve_producer_conf
from kinesis_actors._errors import ConfigError
from kinesis_actors._models import ProducerEvent
from kinesis_actors._producer.engine import KinesisProducer
from kinesis_actors._stream_ref import StreamRef

ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders"


def test_stream_ref_request_arguments() -> None:
    assert StreamRef("orders").request_args() == {"StreamName": "orders"}
    by_arn = StreamRef.from_arn(ARN)
    assert by_arn.request_args() == {"StreamARN": ARN}
    assert (by_arn.name, by_arn.region, by_arn.account) == ("orders", "eu-west-1", "123456789012")
    assert StreamRef.of(ARN) == by_arn
    assert StreamRef.of("orders").arn_args() == {}
    with pytest.raises(ValueError, match="not a Kinesis stream ARN"):
        StreamRef.from_arn("arn:aws:sqs:eu-west-1:123456789012:orders")


def test_producer_by_arn_takes_region_and_name_from_it() -> None:
    conf = ProducerConf.from_config(load_config(f'kinesis.p.stream-arn = "{ARN}"'), "p")
    assert conf.stream == StreamRef("orders", ARN)
    assert conf.stream_name == "orders"
    assert conf.kpl.region == "eu-west-1"
    explicit = load_config(f'kinesis.p {{ stream-arn = "{ARN}", kpl.Region = us-east-1 }}')
    assert ProducerConf.from_config(explicit, "p").kpl.region == "us-east-1"


@pytest.mark.parametrize("key", ["stream-arn", "kcl.streamArn"])
def test_consumer_by_arn_and_its_lease_table(key: str) -> None:
    config = load_config(f'kinesis {{ application-name = App, c {{ {key} = "{ARN}" }} }}')
    conf = ConsumerConf.from_config(config, "c")
    assert conf.stream.request_args() == {"StreamARN": ARN}
    assert conf.table_name == "App-orders"
    assert conf.kcl.region_name == "eu-west-1"


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (f'p {{ stream-name = other, stream-arn = "{ARN}", kpl {{}} }}', "kinesis.p.stream-name"),
        ('p { stream-arn = "orders", kpl {} }', "kinesis.p.stream-arn"),
        (
            f'c {{ stream-arn = "{ARN}", kcl.streamArn = "{ARN.replace("orders", "x")}" }}',
            "kinesis.c.kcl.streamArn",
        ),
    ],
)
def test_conflicting_or_malformed_arns_fail_at_load(text: str, path: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(f"kinesis {{ {text} }}")
    assert error.value.path == path


def test_an_engine_stream_may_be_an_arn() -> None:
    conf = resolve_producer_conf({"AggregationEnabled": False}, stream_name=ARN)
    assert conf.stream.arn == ARN


@pytest.fixture
def moto_kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):  # moto, not a local server
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        client = boto3.client("kinesis", region_name="eu-west-1")
        client.create_stream(StreamName="orders", ShardCount=1)
        yield client


def test_the_engine_puts_by_arn(moto_kinesis: Any) -> None:
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params)

    arn = moto_kinesis.describe_stream_summary(StreamName="orders")["StreamDescriptionSummary"][
        "StreamARN"
    ]
    moto_kinesis.meta.events.register("provide-client-params.kinesis.*", record)
    with KinesisProducer({"AggregationEnabled": False}, arn, client=moto_kinesis) as producer:
        result = producer.add_user_record(ProducerEvent("k", b"by arn")).result(timeout=30)
    assert result.shard_id.startswith("shardId-")
    assert calls and all(call.get("StreamARN") == arn or "NextToken" in call for call in calls)
    assert not any("StreamName" in call for call in calls)
