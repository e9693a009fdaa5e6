"""``kinesis-actors put``: lines from stdin as records, failures reported per line."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
import structlog
from moto import mock_aws

from kinesis_actors._aggregation import deaggregate
from kinesis_actors._cli import main
from kinesis_actors._cli.put import add_arguments, kpl_settings, put_lines, report, run_put
from kinesis_actors._config import KplConf
from kinesis_actors._errors import InvalidStateError
from kinesis_actors._producer.engine import KinesisProducer
from kinesis_actors.testing._memory_kinesis import InMemoryKinesis

STREAM = "lines"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """``main`` points structlog at the captured stderr, which pytest closes after the test."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        client = boto3.client("kinesis")
        client.create_stream(StreamName=STREAM, ShardCount=2)
        yield client


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def user_records(client: Any) -> list[tuple[str, bytes]]:
    found = []
    for shard in client.list_shards(StreamName=STREAM)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in client.get_records(ShardIterator=iterator)["Records"]:
            for member in deaggregate(record["Data"], record["PartitionKey"], None):
                found.append((member.partition_key, member.data))
    return found


@pytest.mark.parametrize("aggregation", [True, False])
def test_puts_every_line(aws: Any, aggregation: bool, capsys: pytest.CaptureFixture[str]) -> None:
    stdin = io.BytesIO(b"one\ntwo\r\n\nthree")
    argv = [STREAM] + ([] if aggregation else ["--no-aggregation"])
    assert run_put(parse(*argv), stdin) == 0
    records = user_records(aws)
    assert sorted(data for _, data in records) == [b"", b"one", b"three", b"two"]
    assert len({key for key, _ in records}) == 4  # a random key per line
    assert capsys.readouterr().err.splitlines()[-1] == f"4 records put to {STREAM}, 0 failed"


def test_fixed_partition_key(aws: Any) -> None:
    assert run_put(parse(STREAM, "--partition-key", "k"), io.BytesIO(b"a\nb\n")) == 0
    assert sorted(user_records(aws)) == [("k", b"a"), ("k", b"b")]


def test_a_failed_line_is_reported_and_exits_1(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.BytesIO(b"ok\n" + b"x" * 1_100_000 + b"\nok too\n")
    assert run_put(parse(STREAM), stdin) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("line 2: RecordTooLargeError: ")
    assert err[-1] == f"2 records put to {STREAM}, 1 failed"


def test_missing_stream_is_one_line(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["put", "no-such-stream"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("kinesis-actors put: ResourceNotFoundException")


def test_bad_arguments_are_one_line(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["put", STREAM, "--ttl", "soon"]) == 1
    assert main(["put", STREAM, "--endpoint-url", "http://host:1/path"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert all(line.startswith("kinesis-actors put: --") for line in err)


def test_endpoint_url_becomes_the_kpl_endpoint() -> None:
    kpl = KplConf.from_config(kpl_settings(endpoint_url="http://127.0.0.1:4567", ttl=2))
    assert kpl.endpoint_url == "http://127.0.0.1:4567"
    assert kpl.record_ttl == 2.0
    assert KplConf.from_config(kpl_settings(endpoint_url="https://k.example")).endpoint_url == (
        "https://k.example:443"
    )
    with pytest.raises(InvalidStateError):
        kpl_settings(endpoint_url="http://host/path")


class _Throttled(InMemoryKinesis):
    """Lists shards, refuses every PutRecords call."""

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "LimitExceededException", "Message": "slow down"}}, "PutRecords"
        )


def test_records_that_expire_are_reported_with_the_last_service_error() -> None:
    kpl = KplConf.from_config(kpl_settings(ttl=0.3))
    producer = KinesisProducer(kpl, STREAM, client=_Throttled(1))  # type: ignore[arg-type]
    try:
        summary = put_lines(producer, [b"a", b"b"])
    finally:
        producer.stop()
    out = io.StringIO()
    assert report(summary, STREAM, out) == 1
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["line 1", "line 2"]
    assert all("Expired" in line and "LimitExceededException" in line for line in lines[:2])
    assert lines[2] == f"0 records put to {STREAM}, 2 failed"
