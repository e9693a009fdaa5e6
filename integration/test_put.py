"""``kinesis-actors put`` against kinesalite: lines in, records out, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kinesis_actors._cli.tail import read_stream
from kinesis_actors.testing._processes import free_port

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors.testing._local import LocalKinesis


def put(
    *args: str, data: bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinesis_actors._cli", "put", *args],
        check=False,
        input=data.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("aggregation", [True, False])
def test_lines_become_records(
    make_stream: Callable[..., str],
    kinesis: KinesisClient,
    local_kinesis: LocalKinesis,
    aggregation: bool,
) -> None:
    stream = make_stream(2)
    lines = [f"line {i}" for i in range(5000)]  # enough that records for a shard meet in a buffer
    flags = [] if aggregation else ["--no-aggregation"]
    result = put(
        stream,
        "--endpoint-url",
        local_kinesis.kinesis_endpoint,
        *flags,
        data="\n".join(lines).encode() + b"\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == f"5000 records put to {stream}, 0 failed"
    events = list(read_stream(kinesis, stream))
    assert sorted(e.payload_as_string() for e in events) == sorted(lines)
    assert {e.shard_id for e in events} == {"shardId-000000000000", "shardId-000000000001"}
    aggregated = any(e.sequence_number.sub_sequence_number > 0 for e in events)
    assert aggregated is aggregation


def test_missing_stream_is_one_line(local_kinesis: LocalKinesis) -> None:
    result = put("no-such-stream", data=b"x\n")  # endpoint from AWS_ENDPOINT_URL_KINESIS
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("kinesis-actors put: ResourceNotFoundException")


def test_unreachable_endpoint_fails_fast_in_one_line(local_kinesis: LocalKinesis) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    result = put("s", "--endpoint-url", url, "--region", "us-east-1", data=b"x\n")
    assert result.returncode == 1
    assert time.monotonic() - start < 30
    (line,) = result.stderr.strip().splitlines()
    assert "Could not connect" in line


def test_no_credentials_is_one_line(local_kinesis: LocalKinesis, tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") or key == "AWS_ENDPOINT_URL_KINESIS"
    }
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    result = put("s", data=b"x\n", env=env)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line == "kinesis-actors put: Unable to locate credentials"
