"""The local servers themselves: kinesalite + dynalite (session fixture) and moto server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from kinesis_actors._errors import LocalBackendError
from kinesis_actors.testing import _backends as backends
from kinesis_actors.testing import _processes as processes
from kinesis_actors.testing._backends import BACKEND_EMULATORS, BACKEND_MOTO
from kinesis_actors.testing._local import LocalKinesis
from kinesis_actors.testing._processes import free_ports

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _port_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _kinesis_roundtrip(kinesis: KinesisClient, stream: str) -> None:
    put = kinesis.put_record(StreamName=stream, Data=b"hello", PartitionKey="pk-1")
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    assert put["ShardId"] in {shard["ShardId"] for shard in shards}
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [(r["Data"], r["PartitionKey"]) for r in records] == [(b"hello", "pk-1")]
    assert records[0]["SequenceNumber"] == put["SequenceNumber"]


def _dynamodb_conditional_writes(dynamodb: DynamoDBClient, table: str) -> None:
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    key = {"leaseKey": {"S": "shardId-000000000000"}}
    dynamodb.put_item(
        TableName=table,
        Item={**key, "leaseCounter": {"N": "0"}},
        ConditionExpression="attribute_not_exists(leaseKey)",
    )
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.put_item(
            TableName=table,
            Item={**key, "leaseCounter": {"N": "5"}},
            ConditionExpression="attribute_not_exists(leaseKey)",
        )
    updated = dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET leaseCounter = leaseCounter + :one, leaseOwner = :me",
        ConditionExpression="leaseCounter = :expected",
        ExpressionAttributeValues={":one": {"N": "1"}, ":me": {"S": "w1"}, ":expected": {"N": "0"}},
        ReturnValues="ALL_NEW",
    )
    assert updated["Attributes"]["leaseCounter"] == {"N": "1"}
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET leaseCounter = leaseCounter + :one",
            ConditionExpression="leaseCounter = :expected",
            ExpressionAttributeValues={":one": {"N": "1"}, ":expected": {"N": "0"}},
        )
    dynamodb.delete_table(TableName=table)


# -- the session's emulators ---------------------------------------------------------------------


def test_session_backend_is_the_emulators(local_kinesis: LocalKinesis) -> None:
    assert local_kinesis.backend == BACKEND_EMULATORS
    assert local_kinesis.running
    assert set(local_kinesis.pids) == {"kinesalite", "dynalite"}
    assert local_kinesis.kinesis_endpoint.startswith("http://127.0.0.1:")
    assert local_kinesis.dynamodb_endpoint.startswith("http://127.0.0.1:")
    assert local_kinesis.kinesis_endpoint != local_kinesis.dynamodb_endpoint


def test_kinesis_create_put_get(make_stream: Callable[..., str], kinesis: KinesisClient) -> None:
    stream = make_stream(2)
    summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] == 2
    _kinesis_roundtrip(kinesis, stream)
    # kinesalite's sequence numbers are AWS-like (56 digits), moto's are "1", "2", ...
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="LATEST"
    )["ShardIterator"]
    assert iterator


def test_make_stream_names_are_unique(
    make_stream: Callable[..., str], kinesis: KinesisClient, unique_name: str
) -> None:
    first, second = make_stream(), make_stream(1)
    assert first == unique_name
    assert second == f"{unique_name}-2"
    names = kinesis.list_streams()["StreamNames"]
    assert {first, second} <= set(names)


@pytest.mark.parametrize("label", ["a/b c", "x"])
def test_unique_name_is_sanitised(unique_name: str, label: str) -> None:
    assert unique_name.startswith("test_unique_name_is_sanitised-")
    assert all(ch.isalnum() or ch in "_.-" for ch in unique_name)
    assert len(unique_name) <= 49


def test_dynamodb_conditional_writes(dynamodb: DynamoDBClient, unique_name: str) -> None:
    _dynamodb_conditional_writes(dynamodb, unique_name)


def test_env_vars_point_boto3_at_the_emulators(local_kinesis: LocalKinesis) -> None:
    assert os.environ["AWS_ENDPOINT_URL_KINESIS"] == local_kinesis.kinesis_endpoint
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == local_kinesis.dynamodb_endpoint
    client = boto3.client("kinesis")  # no endpoint, no region, no credentials given
    assert client.meta.endpoint_url == local_kinesis.kinesis_endpoint
    assert client.meta.region_name == local_kinesis.region
    client.list_streams()
    boto3.client("dynamodb").list_tables()


# -- start / stop of separate servers ------------------------------------------------------------


def _check_start_stop(backend: str) -> None:
    before = live_children()
    server = LocalKinesis(backend=backend)  # type: ignore[arg-type]
    started = time.monotonic()
    with server:
        elapsed = time.monotonic() - started
        assert server.backend == (BACKEND_MOTO if backend == "moto" else BACKEND_EMULATORS)
        assert elapsed < 20
        pids = server.pids
        ports = {_port(server.kinesis_endpoint), _port(server.dynamodb_endpoint)}
        log_dir = server.log_dir
        assert log_dir is not None
        assert log_dir.is_dir()
        assert all(not _port_closed(port) for port in ports)
        kinesis = server.kinesis_client()
        kinesis.create_stream(StreamName="local-servers", ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(
            StreamName="local-servers", WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        _kinesis_roundtrip(kinesis, "local-servers")
        _dynamodb_conditional_writes(server.dynamodb_client(), "local-servers")
    assert server.pids == {}
    assert not server.running
    assert all(_process_gone(pid) for pid in pids.values())
    assert all(_port_closed(port) for port in ports)
    assert not log_dir.exists()  # the temporary log folder is removed
    assert live_children() <= before
    server.stop()  # idempotent


def test_emulators_start_and_stop() -> None:
    _check_start_stop("emulators")


def test_moto_start_and_stop() -> None:
    _check_start_stop("moto")


def test_fixed_ports_and_log_dir(tmp_path: Path) -> None:
    kinesis_port, dynamodb_port = free_ports(2)
    with LocalKinesis(
        backend="emulators",
        kinesis_port=kinesis_port,
        dynamodb_port=dynamodb_port,
        log_dir=tmp_path,
    ) as server:
        assert server.kinesis_endpoint == f"http://127.0.0.1:{kinesis_port}"
        assert server.dynamodb_endpoint == f"http://127.0.0.1:{dynamodb_port}"
    logs = sorted(path.name for path in tmp_path.iterdir())
    assert logs == [f"dynalite-{dynamodb_port}.log", f"kinesalite-{kinesis_port}.log"]
    assert "listening" in (tmp_path / f"kinesalite-{kinesis_port}.log").read_text()


def test_taken_fixed_port_fails_with_the_server_log() -> None:
    before = live_children()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = LocalKinesis(backend="emulators", kinesis_port=port)
        with pytest.raises(
            LocalBackendError, match=rf"kinesalite did not start on 127.0.0.1:{port}"
        ):
            server.start()
    assert server.pids == {}
    assert live_children() <= before


def live_children() -> set[int]:
    """Pids of this test process's live (non-zombie) child processes."""
    return set(child_processes(os.getpid()))


def child_processes(parent: int) -> dict[int, list[str]]:
    """Pid to argv of the live (non-zombie) child processes of ``parent``."""
    children: dict[int, list[str]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
            argv = (status.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        if fields.get("PPid", "").strip() == str(parent) and not fields.get(
            "State", ""
        ).strip().startswith("Z"):
            children[int(status.parent.name)] = [arg.decode() for arg in argv if arg]
    return children


def test_free_port_taken_before_the_server_binds_it_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        real_free_ports = processes.free_ports
        calls: list[int] = []

        def racy_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
            calls.append(count)
            ports = real_free_ports(count, host)
            return [taken_port, *ports[1:]] if len(calls) == 1 else ports

        monkeypatch.setattr(processes, "free_ports", racy_free_ports)
        with LocalKinesis(backend="emulators") as server:
            assert calls == [2, 1]  # kinesalite lost the race once and got a new port
            assert _port(server.kinesis_endpoint) != taken_port
            server.kinesis_client().list_streams()


# -- a server outlives a client that leaves mid-request; one that exits says why -----------------


def _send_half_a_request(port: int, target: str) -> None:
    """Headers and the start of a body, then close: what a client killed mid-send leaves."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n"
            b"X-Amz-Target: " + target.encode() + b'\r\nContent-Length: 200\r\n\r\n{"Table'
        )
        time.sleep(0.1)  # most likely the server has parsed the headers: the request has begun


def test_a_client_leaving_mid_request_does_not_stop_the_emulators(tmp_path: Path) -> None:
    # kinesalite and dynalite rethrow a request's "aborted" error, which ended the server for
    # every later client; the wrappers survive it and log one line.
    with LocalKinesis(backend="emulators", log_dir=tmp_path) as server:
        logs = {
            name: tmp_path / f"{name}-{_port(endpoint)}.log"
            for name, endpoint in (
                ("kinesalite", server.kinesis_endpoint),
                ("dynalite", server.dynamodb_endpoint),
            )
        }
        _send_half_a_request(_port(server.kinesis_endpoint), "Kinesis_20131202.ListStreams")
        _send_half_a_request(_port(server.dynamodb_endpoint), "DynamoDB_20120810.ListTables")
        deadline = time.monotonic() + 20
        unlogged = set(logs)
        while unlogged and time.monotonic() < deadline and not server.exited():
            unlogged = {
                name
                for name in unlogged
                if f"{name}: a client closed its connection mid-request"
                not in logs[name].read_text()
            }
            time.sleep(0.05)
        assert server.describe_exits() == ""
        assert unlogged == set()
        assert server.exited() == []
        assert server.kinesis_client().list_streams()["StreamNames"] == []
        assert server.dynamodb_client().list_tables()["TableNames"] == []


def test_a_server_that_exits_is_described_with_its_exit_code_and_log(tmp_path: Path) -> None:
    with LocalKinesis(backend="emulators", log_dir=tmp_path) as server:
        pid = server.pids["dynalite"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not server.exited() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.exited() == ["dynalite"]
        assert not server.running
        report = server.describe_exits()
        first, heading, *tail = report.splitlines()
        assert first == f"dynalite (pid {pid}, {server.dynamodb_endpoint}) exited with code -9"
        assert heading == "the last lines of its log:"
        assert any("Dynalite listening at" in line for line in tail)
        assert "kinesalite" not in report


def _run_node(script: str) -> subprocess.CompletedProcess[str]:
    wrapper = backends._WRAPPERS / "emulator-process.js"
    return subprocess.run(
        ["node", "-e", f"require({json.dumps(str(wrapper))})('demo')\n{script}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_an_uncaught_error_that_is_not_a_client_leaving_still_ends_the_server() -> None:
    result = _run_node(
        "setTimeout(() => { throw new TypeError('the store is broken') }, 10)\n"
        "setTimeout(() => { console.log('still running') }, 2000)"
    )
    assert result.returncode == 1
    assert "demo: uncaught error, stopping: TypeError: the store is broken" in result.stderr
    assert "still running" not in result.stdout


def test_the_abort_is_survived_by_a_server_that_rethrows_request_errors() -> None:
    # the emulators' own pattern, req.on('error', throw), on a bare Node.js server
    result = _run_node(
        "const http = require('http'), net = require('net')\n"
        "const server = http.createServer((req, res) => {\n"
        "  req.on('error', (err) => { throw err })\n"
        "  req.on('data', () => {})\n"
        "  req.on('end', () => res.end('answered'))\n"
        "})\n"
        "server.listen(0, '127.0.0.1', () => {\n"
        "  const { port } = server.address()\n"
        "  // after the wrapper's listener has had the abort: the next client\n"
        "  process.on('uncaughtException', () => setImmediate(() => {\n"
        "    http.get({ port, host: '127.0.0.1' }, (res) => {\n"
        "      res.on('data', (chunk) => console.log(String(chunk)))\n"
        "      res.on('end', () => process.exit(0))\n"
        "    })\n"
        "  }))\n"
        "  const half = net.connect(port, '127.0.0.1', () => {\n"
        "    half.write('POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 100\\r\\n\\r\\n{')\n"
        "    setTimeout(() => half.destroy(), 100)\n"
        "  })\n"
        "})"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "answered"
    assert "demo: a client closed its connection mid-request" in result.stderr
