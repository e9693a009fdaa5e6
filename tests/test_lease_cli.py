"""``kinesis-actors leases``: listing and deleting a lease table."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from kinesis_actors.errors import InvalidStateError
from kinesis_actors.leases import DynamoDBLeaseTable, Lease
from kinesis_actors.leases.cli import add_arguments, format_leases, run_leases
from kinesis_actors.models import CompoundSequenceNumber, Sentinel

SEQ = "49680573334585594527311465187954266352274692041466707986"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoDBLeaseTable]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
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
    lines = capsys.readouterr().out.splitlines()
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
