"""The command line under signals and with ports in use, against the session's local servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors.testing import LocalKinesis

_HANG_GUARD_S = 120.0


def _reliability_resources(kinesis: KinesisClient, dynamodb: DynamoDBClient) -> set[str]:
    streams = kinesis.list_streams()["StreamNames"]
    tables = dynamodb.list_tables()["TableNames"]
    return {f"stream {s}" for s in streams if s.startswith("reliability-")} | {
        f"table {t}" for t in tables if t.startswith("Reliability-")
    }


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_reliability_run_deletes_what_it_created(
    signum: signal.Signals,
    local_kinesis: LocalKinesis,
    kinesis: KinesisClient,
    dynamodb: DynamoDBClient,
    tmp_path: Path,
) -> None:
    before = _reliability_resources(kinesis, dynamodb)
    env = {**os.environ, **local_kinesis.environ(), "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "kinesis_actors._cli", "reliability", "run"]
    run = subprocess.Popen(
        [*command, "--messages", "1000000", "--rate", "1000", "--consumers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + _HANG_GUARD_S
        # the stream, the lease table and its -Workers table exist: mid-run
        while len(_reliability_resources(kinesis, dynamodb) - before) < 3:
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline, "the run did not create its stream and table"
            time.sleep(0.2)
        assert any(tmp_path.iterdir())  # its temporary folder
        run.send_signal(signum)
        _, stderr = run.communicate(timeout=_HANG_GUARD_S)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    leftovers = _reliability_resources(kinesis, dynamodb) - before
    assert leftovers == set()
    assert list(tmp_path.iterdir()) == []


def test_local_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env_file = tmp_path / "local.env"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kinesis_actors._cli",
                "local",
                "--backend",
                "emulators",
                "--kinesis-port",
                str(port),
                "--env-file",
                str(env_file),
            ],
            capture_output=True,
            text=True,
            timeout=_HANG_GUARD_S,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"kinesis-actors local: kinesalite did not start on 127.0.0.1:{port}: the port is in use "
        "by another process; choose another port, or 0 for a free one"
    ]
    assert "export" not in result.stdout
    assert not env_file.exists()


def test_local_writes_the_env_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "local.env"
    local = subprocess.Popen(
        [sys.executable, "-m", "kinesis_actors._cli", "local", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + _HANG_GUARD_S
        while not env_file.exists():
            assert local.poll() is None, local.communicate()
            assert time.monotonic() < deadline, "no env file"
            time.sleep(0.1)
        lines = env_file.read_text().splitlines()
        local.send_signal(signal.SIGTERM)
        out, _ = local.communicate(timeout=_HANG_GUARD_S)
    finally:
        if local.poll() is None:
            local.kill()
            local.wait()
    assert local.returncode == 0
    names = [line.split("=", 1)[0] for line in lines]
    assert names == [
        "export AWS_ENDPOINT_URL_KINESIS",
        "export AWS_ENDPOINT_URL_DYNAMODB",
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_DEFAULT_REGION",
        "export AWS_REGION",
    ]
    assert f"source {env_file}" in out
    assert "Stopped." in out
