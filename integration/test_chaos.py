"""The throttle injector makes a real client see what Kinesis and DynamoDB report when throttling."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from botocore.exceptions import ClientError

from kinesis_actors._aws import consumer_clients, producer_client
from kinesis_actors._config import ConsumerConf, KplConf, load_config
from kinesis_actors.reliability._chaos import ThrottleInjector
from kinesis_actors.testing._local import LocalKinesis


@pytest.fixture
def injector() -> Iterator[ThrottleInjector]:
    injector = ThrottleInjector(put_entries=1.0, get_calls=1.0, lease_writes=1.0, seed=1)
    injector.install()
    yield injector
    injector.uninstall()


def test_put_records_entries_fail_as_partial_failures(
    local_kinesis: LocalKinesis, make_stream: Callable[..., str], injector: ThrottleInjector
) -> None:
    stream = make_stream(1)
    client = producer_client(KplConf.from_config({"Region": local_kinesis.region}))
    response = client.put_records(
        StreamName=stream,
        Records=[{"PartitionKey": "k", "Data": f"{n}".encode()} for n in range(3)],
    )
    # Every entry but one (PutRecords needs one) failed, as Kinesis reports a throttle...
    codes = [entry.get("ErrorCode") for entry in response["Records"]]
    assert codes == ["ProvisionedThroughputExceededException"] * 2 + [None]
    assert response["FailedRecordCount"] == 2
    assert injector.injected["put"] == 2
    # ... and, as in Kinesis, a failed entry was not stored: retrying it makes no duplicate.
    reader = local_kinesis.kinesis_client()  # not made by kinesis_actors._aws: no injection
    shard = reader.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = reader.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    stored = [record["Data"] for record in reader.get_records(ShardIterator=iterator)["Records"]]
    assert stored == [b"2"]


def test_get_records_and_lease_writes_are_throttled(
    local_kinesis: LocalKinesis, make_stream: Callable[..., str], injector: ThrottleInjector
) -> None:
    stream = make_stream(1)
    conf = ConsumerConf.from_config(
        load_config(
            f"kinesis.c {{ stream-name = {stream}, kcl.regionName = {local_kinesis.region} }}"
        ),
        "c",
    )
    kinesis, dynamodb = consumer_clients(conf.kcl, tries=1)
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )
    with pytest.raises(kinesis.exceptions.ProvisionedThroughputExceededException):
        kinesis.get_records(ShardIterator=iterator["ShardIterator"])
    with pytest.raises(ClientError, match="ProvisionedThroughputExceededException"):
        dynamodb.put_item(TableName="whatever", Item={"leaseKey": {"S": "x"}})
    assert injector.injected["get"] == 1
    assert injector.injected["lease"] == 1
