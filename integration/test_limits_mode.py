"""The limits mode's model itself: AWS's limits and error shapes, seen through raw boto3 calls."""

from __future__ import annotations

import base64
import concurrent.futures
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from integration.conftest import start_local_command
from kinesis_actors.testing._limits_process import LimitsProxyProcess

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors.testing._local import LocalKinesis

#: One attempt per call: the test sees every refusal (botocore would retry throttles).
_NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30)


@pytest.fixture
def proxy(limits_proxy: LimitsProxyProcess) -> LimitsProxyProcess:
    return limits_proxy


@pytest.fixture
def limited_kinesis(proxy: LimitsProxyProcess, local_kinesis: LocalKinesis) -> KinesisClient:
    return boto3.session.Session(region_name=local_kinesis.region).client(
        "kinesis", endpoint_url=proxy.endpoint, config=_NO_RETRIES
    )


@pytest.fixture
def limited_dynamodb(proxy: LimitsProxyProcess, local_kinesis: LocalKinesis) -> DynamoDBClient:
    return boto3.session.Session(region_name=local_kinesis.region).client(
        "dynamodb", endpoint_url=proxy.endpoint, config=_NO_RETRIES
    )


def _code(error: ClientError) -> tuple[str, int]:
    return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_loop_reading_one_shard_10_times_a_second_is_throttled_about_half(
    make_stream: Callable[..., str], limited_kinesis: KinesisClient, proxy: LimitsProxyProcess
) -> None:
    stream = make_stream(1)
    limited_kinesis.put_records(
        StreamName=stream, Records=[{"Data": b"x" * 100, "PartitionKey": str(i)} for i in range(50)]
    )
    iterator = limited_kinesis.get_shard_iterator(
        StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    before = proxy.stats()
    calls, throttled, records = 60, 0, 0
    started = time.monotonic()
    for index in range(calls):
        # 10 calls a second, on a schedule (a slow call does not slow the loop down)
        time.sleep(max(0.0, started + index * 0.1 - time.monotonic()))
        try:
            answer = limited_kinesis.get_records(ShardIterator=iterator, Limit=10)
        except ClientError as error:
            assert _code(error) == ("ProvisionedThroughputExceededException", 400)
            throttled += 1
            continue
        iterator = answer["NextShardIterator"]
        records += len(answer["Records"])
    seen = proxy.stats() - before
    assert seen.api("kinesis.GetRecords").calls == calls
    assert seen.api("kinesis.GetRecords").refused == throttled
    assert 0.3 * calls <= throttled <= 0.7 * calls, throttled
    assert records == min(50, 10 * (calls - throttled))  # a refused call loses no data


def test_put_records_of_2000_to_one_shard_at_once_throttles_entries_in_aws_shape(
    make_stream: Callable[..., str], limited_kinesis: KinesisClient, kinesis: KinesisClient
) -> None:
    stream = make_stream(2)
    shard = kinesis.list_shards(StreamName=stream)["Shards"][1]
    hash_key = shard["HashKeyRange"]["StartingHashKey"]
    batches = [
        [
            {"Data": f"{batch}-{i}".encode(), "PartitionKey": "k", "ExplicitHashKey": hash_key}
            for i in range(500)
        ]
        for batch in range(4)
    ]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda records: limited_kinesis.put_records(StreamName=stream, Records=records),
                batches,
            )
        )
    elapsed = time.monotonic() - started

    stored: set[bytes] = set()
    throttled = 0
    message = (
        f"Rate exceeded for shard {shard['ShardId']} in stream {stream} under account 000000000000."
    )
    for records, answer in zip(batches, answers, strict=True):
        assert len(answer["Records"]) == len(records)
        failed = [entry for entry in answer["Records"] if "ErrorCode" in entry]
        assert answer["FailedRecordCount"] == len(failed)
        for record, entry in zip(records, answer["Records"], strict=True):
            if "ErrorCode" in entry:
                assert entry == {
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": message,
                }
            else:
                assert set(entry) == {"SequenceNumber", "ShardId"}
                assert entry["ShardId"] == shard["ShardId"]
                stored.add(record["Data"])
        throttled += len(failed)
    # 1000 records/s per shard: at most 1000 at once plus what a second refills meanwhile
    assert 1000 <= len(stored) <= 1000 + 1000 * elapsed + 1
    assert throttled == 2000 - len(stored) > 0

    # exactly the stored entries are in the shard (read upstream, not limited)
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    found: list[bytes] = []
    for _ in range(20):
        answer = kinesis.get_records(ShardIterator=iterator)
        found.extend(record["Data"] for record in answer["Records"])
        if not answer["Records"]:
            break
        iterator = answer["NextShardIterator"]
    assert sorted(found) == sorted(stored)


def test_refusals_carry_aws_error_codes_and_http_status(
    make_stream: Callable[..., str],
    limited_kinesis: KinesisClient,
    limited_dynamodb: DynamoDBClient,
    unique_name: str,
) -> None:
    stream = make_stream(1)
    shard_id = "shardId-000000000000"
    # PutRecord over the shard's bytes: the whole call is refused
    limited_kinesis.put_record(StreamName=stream, Data=b"x" * 1_000_000, PartitionKey="a")
    with pytest.raises(ClientError) as refused:
        limited_kinesis.put_record(StreamName=stream, Data=b"x" * 1_000_000, PartitionKey="a")
    assert _code(refused.value) == ("ProvisionedThroughputExceededException", 400)

    # GetShardIterator: 5 a second per shard
    codes = []
    for _ in range(8):
        try:
            limited_kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard_id, ShardIteratorType="LATEST"
            )
        except ClientError as error:
            codes.append(_code(error))
    assert codes and set(codes) == {("ProvisionedThroughputExceededException", 400)}

    # DescribeStream: 10 a second per account; control-plane refusals are LimitExceeded
    codes = []
    for _ in range(14):
        try:
            limited_kinesis.describe_stream(StreamName=stream)
        except ClientError as error:
            codes.append(_code(error))
    assert codes and set(codes) == {("LimitExceededException", 400)}

    # a PROVISIONED table: its write capacity (1 WCU, 1 s of burst)
    table = unique_name
    limited_dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
    )
    try:
        errors = []
        for index in range(5):
            try:
                limited_dynamodb.put_item(TableName=table, Item={"leaseKey": {"S": str(index)}})
            except ClientError as error:
                errors.append(error)
        assert errors
        assert {_code(error) for error in errors} == {
            ("ProvisionedThroughputExceededException", 400)
        }
        assert errors[0].response["ThrottlingReasons"][0]["reason"] == (  # type: ignore[typeddict-item]
            "TableWriteProvisionedThroughputExceeded"
        )
        # a read is charged its own capacity; the client's answer carries no ConsumedCapacity
        item = limited_dynamodb.get_item(TableName=table, Key={"leaseKey": {"S": "0"}})
        assert "ConsumedCapacity" not in item
    finally:
        limited_dynamodb.delete_table(TableName=table)


def test_data_is_the_same_through_the_proxy(
    make_stream: Callable[..., str], limited_kinesis: KinesisClient
) -> None:
    stream = make_stream(2)
    payloads = [bytes([i]) * (i + 1) for i in range(200)]
    answer = limited_kinesis.put_records(
        StreamName=stream,
        Records=[{"Data": data, "PartitionKey": f"pk-{i}"} for i, data in enumerate(payloads)],
    )
    assert answer["FailedRecordCount"] == 0
    found = []
    for shard in limited_kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = limited_kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        found += [r["Data"] for r in limited_kinesis.get_records(ShardIterator=iterator)["Records"]]
    assert sorted(found) == sorted(payloads)
    assert base64.b64encode(payloads[-1])  # binary data survived the JSON round trip


def test_the_counters_are_printed_at_exit(local_kinesis: LocalKinesis) -> None:
    with LimitsProxyProcess(local_kinesis.kinesis_endpoint, local_kinesis.dynamodb_endpoint) as own:
        client = boto3.session.Session(region_name=local_kinesis.region).client(
            "kinesis", endpoint_url=own.endpoint, config=_NO_RETRIES
        )
        client.list_streams()
        assert own.stats().api("kinesis.ListStreams").calls == 1
    header, *rows = own.exit_report.splitlines()
    assert header.split()[:3] == ["api", "calls", "refused"]
    assert [row.split()[:3] for row in rows] == [["kinesis.ListStreams", "1", "0"]]


def test_local_command_with_aws_limits_prints_the_counters_at_exit(tmp_path: Path) -> None:
    process, exports = start_local_command(
        tmp_path / "env", "--aws-limits", "--latency-ms", "20", stderr=subprocess.STDOUT
    )
    try:
        session = boto3.session.Session(
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            region_name=exports["AWS_DEFAULT_REGION"],
        )  # what the command exported, not what an earlier test left in the environment
        client = session.client(
            "kinesis", endpoint_url=exports["AWS_ENDPOINT_URL_KINESIS"], config=_NO_RETRIES
        )
        started = time.monotonic()
        client.list_streams()
        assert time.monotonic() - started >= 0.02  # the latency is added
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "AWS limits: on, 20 ms per call" in output
    assert re.search(r"kinesis\.ListStreams\s+1\s+0", output), output
