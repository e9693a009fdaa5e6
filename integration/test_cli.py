"""The kinesis-actors command against local servers: output, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog

from integration.conftest import split_in_two, start_local_command
from integration.test_local_servers import child_processes
from kinesis_actors._aggregation import encode
from kinesis_actors._cli import main

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors.testing._local import LocalKinesis


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """``main`` configures structlog for the terminal (on capsys's stream): undo it after."""
    yield
    structlog.reset_defaults()


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kinesis_actors._cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("local", "tail"):
        assert command in result.stdout


def test_tail_prints_plain_and_deaggregated_records(
    make_stream: Callable[..., str],
    kinesis: KinesisClient,
    local_kinesis: LocalKinesis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = make_stream(1)  # one shard: every member hashes into its range
    kinesis.put_record(StreamName=stream, PartitionKey="plain", Data=b"hello")
    aggregate = encode([("k1", None, b"first"), ("k2", None, b"second"), ("k3", None, b"")])
    kinesis.put_record(StreamName=stream, PartitionKey="a", Data=aggregate, ExplicitHashKey="1")
    code = main(["tail", stream, "--json", "--endpoint-url", local_kinesis.kinesis_endpoint])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((r["partition_key"], r["data"], r["sub_sequence_number"]) for r in records) == [
        ("k1", "first", 0),
        ("k2", "second", 1),
        ("k3", "", 2),
        ("plain", "hello", 0),
    ]


def test_tail_limit_stops_early(
    make_stream: Callable[..., str], kinesis: KinesisClient, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = make_stream(1)
    kinesis.put_records(
        StreamName=stream, Records=[{"PartitionKey": str(i), "Data": b"x"} for i in range(10)]
    )
    assert main(["tail", stream, "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_tail_follows_a_split_parent_first_each_key_in_order(
    make_stream: Callable[..., str], kinesis: KinesisClient, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = make_stream(1)
    keys = [f"key-{k}" for k in range(10)]

    def put_round(round_: int) -> None:
        kinesis.put_records(
            StreamName=stream,
            Records=[{"PartitionKey": key, "Data": f"{key}:{round_}".encode()} for key in keys],
        )

    for round_ in range(3):
        put_round(round_)
    parent = split_in_two(kinesis, stream)
    for round_ in range(3, 6):
        put_round(round_)
    assert main(["tail", stream]) == 0
    lines = capsys.readouterr().out.splitlines()
    rounds: dict[str, list[tuple[int, str]]] = {key: [] for key in keys}
    for line in lines:
        shard_id, _ = line.split(" ", 1)
        key, round_text = line.split("\t", 1)[1].split(":")
        rounds[key].append((int(round_text), shard_id))
    for key, seen in rounds.items():
        assert [r for r, _ in seen] == list(range(6)), key  # each once, parent's first
        assert {s for r, s in seen if r < 3} == {parent}
        assert parent not in {s for r, s in seen if r >= 3}


def test_missing_stream_is_one_line_and_non_zero(
    local_kinesis: LocalKinesis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tail", "no-such-stream"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "ResourceNotFoundException" in err[0]


def test_unreachable_endpoint_is_one_line_and_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    from kinesis_actors.testing._processes import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert main(["tail", "s", "--endpoint-url", url, "--region", "us-east-1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "Could not connect" in err[0]
    assert "Traceback" not in err[0]


def test_bad_position_is_a_clear_error(
    local_kinesis: LocalKinesis,
    make_stream: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = make_stream(1)
    with pytest.raises(SystemExit) as exited:
        main(["tail", stream, "--from", "yesterday"])
    assert exited.value.code == 2  # a usage error (issue 13)
    assert "not TRIM_HORIZON, LATEST or a timestamp" in capsys.readouterr().err


def test_reliability_run_command_succeeds(
    local_kinesis: LocalKinesis, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["reliability", "run", "--messages", "3000", "--rate", "3000", "--timeout", "90"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SUCCEEDED" in out
    assert "lost                                0" in out


def test_reliability_run_writes_its_report_over_time(
    local_kinesis: LocalKinesis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "run.html"
    run = ["reliability", "run", "--messages", "3000", "--rate", "3000", "--chaos", "graceful"]
    code = main([*run, "--timeout", "120", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    page = report.read_text()
    assert "SUCCEEDED" in page  # the text summary
    assert page.count("<svg") == 3  # throughput, lag, duplicates
    assert ": graceful</li>" in page  # the fault and when it was injected


def test_reliability_rejects_unknown_faults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["reliability", "run", "--chaos", "meteor"])
    assert exited.value.code == 2  # a usage error (issue 13): argparse's exit code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "unknown fault(s) meteor; known: sigkill, graceful, reshard, throttle" in err[0]


def test_local_exits_with_one_line_naming_a_server_that_died(tmp_path: Path) -> None:
    process, exports = start_local_command(tmp_path / "env")
    try:
        children = child_processes(process.pid).items()
        (dynalite,) = [pid for pid, argv in children if "dynalite-cli.js" in " ".join(argv)]
        os.kill(dynalite, signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1
    endpoint = exports["AWS_ENDPOINT_URL_DYNAMODB"]
    assert stderr.splitlines()[-1] == (
        f"kinesis-actors local: dynalite (pid {dynalite}, {endpoint}) exited with code -9"
    )
