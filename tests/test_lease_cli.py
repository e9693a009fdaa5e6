"""``kinesis-actors leases``: listing and deleting a lease table."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import boto3
import botocore.exceptions
import pytest
from moto import mock_aws

from kinesis_actors._cli.leases import add_arguments, format_lag, format_leases, run_leases
from kinesis_actors._errors import InvalidStateError
from kinesis_actors._leases import DynamoDBLeaseTable, Lease
from kinesis_actors._models import CompoundSequenceNumber, Sentinel

SEQ = "49680573334585594527311465187954266352274692041466707986"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoDBLeaseTable]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_KINESIS",
    ):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        table = DynamoDBLeaseTable(boto3.client("dynamodb"), "app-orders")
        table.create_if_missing()
        table.create_lease(
            Lease("shardId-000000000001", "host-a:12:ab", 42, CompoundSequenceNumber(SEQ, 3))
        )
        table.create_lease(Lease("shardId-000000000000", None, 7, Sentinel.SHARD_END))
        table.create_lease(
            Lease(
                "shardId-000000000002",
                None,
                0,
                Sentinel.TRIM_HORIZON,
                parent_shard_ids=("shardId-000000000000", "shardId-000000000001"),
            )
        )
        yield table


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_prints_every_lease_and_a_summary(
    table: DynamoDBLeaseTable, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_leases(parse("app-orders")) == 0
    billing, *lines = capsys.readouterr().out.splitlines()
    assert billing == "lease table app-orders: PAY_PER_REQUEST"
    assert lines[0].split() == ["SHARD", "OWNER", "COUNTER", "CHECKPOINT", "PARENTS"]
    assert lines[1].split() == ["shardId-000000000000", "-", "7", "SHARD_END", "-"]
    assert lines[2].split() == ["shardId-000000000001", "host-a:12:ab", "42", f"{SEQ}/3", "-"]
    assert lines[3].split() == [
        "shardId-000000000002",
        "-",
        "0",
        "TRIM_HORIZON",
        "shardId-000000000000,shardId-000000000001",
    ]
    assert lines[4] == "3 leases, 2 free, 1 finished; 1 owners: host-a:12:ab: 1"


def test_empty_table() -> None:
    assert format_leases([]) == [
        "SHARD  OWNER  COUNTER  CHECKPOINT  PARENTS",
        "0 leases, 0 free, 0 finished; 0 owners",
    ]


def test_delete_needs_confirmation(
    table: DynamoDBLeaseTable, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_leases(parse("app-orders", "--delete")) == 2
    assert "--yes" in capsys.readouterr().err
    assert len(table.list_leases()) == 3
    assert run_leases(parse("app-orders", "--delete", "--yes")) == 0
    assert "deleted" in capsys.readouterr().out
    with pytest.raises(InvalidStateError):
        table.list_leases()


def test_missing_table_is_an_error(table: DynamoDBLeaseTable) -> None:
    with pytest.raises(InvalidStateError):
        run_leases(parse("no-such-table"))


def _millis(lag: str) -> float:
    for suffix, factor in (("ms", 1), ("min", 60_000), ("s", 1000), ("h", 3_600_000)):
        if lag.endswith(suffix):
            return float(lag.removesuffix(suffix)) * factor
    raise AssertionError(f"not a lag: {lag!r}")


def test_stream_adds_the_lag_of_each_checkpoint(
    table: DynamoDBLeaseTable, capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName="orders", ShardCount=2)
    first_of_shard_1 = None
    for data in (b"first", b"second", b"third"):
        kinesis.put_record(StreamName="orders", Data=data, PartitionKey="k", ExplicitHashKey="0")
        put = kinesis.put_record(
            StreamName="orders", Data=data, PartitionKey="k", ExplicitHashKey=str(2**127)
        )
        assert put["ShardId"] == "shardId-000000000001"
        first_of_shard_1 = first_of_shard_1 or put["SequenceNumber"]
        time.sleep(0.3)
    assert first_of_shard_1 is not None
    lag_table = DynamoDBLeaseTable(boto3.client("dynamodb"), "app-lag")
    lag_table.create_if_missing()
    for lease in (
        Lease("shardId-000000000000", "host-a:1:a", 3, Sentinel.TRIM_HORIZON),
        Lease("shardId-000000000001", "host-b:2:b", 5, CompoundSequenceNumber(first_of_shard_1, 0)),
        Lease("shardId-000000000002", None, 9, Sentinel.SHARD_END),
        Lease("shardId-000000000003", None, 1, CompoundSequenceNumber(SEQ, 0)),
        Lease("shardId-000000000004", None, 0, Sentinel.AT_TIMESTAMP),
    ):
        lag_table.create_lease(lease)
    capsys.readouterr()  # the log line of the table's creation

    assert run_leases(parse("app-lag", "--stream", "orders")) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows[0] == ["SHARD", "OWNER", "COUNTER", "CHECKPOINT", "LAG", "PARENTS"]
    lags = {row[0]: row[4] for row in rows[1:-1]}
    # from TRIM_HORIZON: the first record is two puts (~0.6 s) older than the newest
    assert 450 <= _millis(lags["shardId-000000000000"]) < 5000
    # after the first record: the second is one put (~0.3 s) older than the newest
    assert 150 <= _millis(lags["shardId-000000000001"]) < _millis(lags["shardId-000000000000"])
    assert lags["shardId-000000000002"] == "-"  # finished
    assert lags["shardId-000000000003"] == "?"  # no such shard
    assert lags["shardId-000000000004"] == "?"  # AT_TIMESTAMP: the time is not in the lease
    assert rows[-1][0] == "5"


def test_lag_of_a_missing_stream_is_an_error(table: DynamoDBLeaseTable) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match="ResourceNotFoundException"):
        run_leases(parse("app-orders", "--stream", "no-such-stream"))


def test_format_lag() -> None:
    assert [format_lag(m) for m in (0, 999, 1000, 12_345, 120_000, 7_200_000)] == [
        "0ms",
        "999ms",
        "1.0s",
        "12.3s",
        "2.0min",
        "2.0h",
    ]
