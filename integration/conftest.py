"""Fixtures for integration tests: one kinesalite + dynalite pair per test session, and one
ministack (Kinesis only: enhanced fan-out, UpdateShardCount, ChildShards) when a test asks for it.

Integration tests run on the real npm emulators only (never moto, never AWS). If they
cannot be installed or started, every integration test errors with the reason; CI installs
the node packages first (``kinesis-actors local --install``).

A test gets a stream from ``make_stream``::

    def test_roundtrip(make_stream, kinesis):
        stream = make_stream(2)          # named after the test, ACTIVE, deleted afterwards
        kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k")
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kinesis_actors._aws import add_client_hook, remove_client_hook
from kinesis_actors._errors import LocalBackendError
from kinesis_actors.reliability._run import RunOptions, RunReport, run_test
from kinesis_actors.testing._emulators import install_emulators
from kinesis_actors.testing._limits_process import LimitsProxyProcess
from kinesis_actors.testing._local import LocalKinesis
from kinesis_actors.testing._ministack import LocalMinistack

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

    from integration.test_consumer import WorkerProcess

_HERE = Path(__file__).resolve().parent

#: Variables that could send boto3 somewhere else than the emulators; unset for the session.
_UNSET_FOR_SESSION = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


#: The session's local servers once started; every test must leave them running.
_SESSION_SERVERS: list[LocalKinesis | LocalMinistack] = []


@pytest.fixture(autouse=True)
def _session_servers_outlive_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop the run at the first test by whose end a session server has exited, with why.

    Every test after it would only fail with "connection refused" (or wait out its timeouts);
    the server's exit code and the last lines of its log say what happened.
    """
    yield
    for server in _SESSION_SERVERS:
        report = server.describe_exits()
        if report:
            pytest.exit(
                f"a local server of the test session exited by the end of "
                f"{request.node.nodeid}:\n{report}",
                returncode=1,
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under ``integration/`` with ``pytest.mark.integration``."""
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_kinesis() -> Iterator[LocalKinesis]:
    """kinesalite + dynalite on loopback for the whole session, with the AWS env vars set."""
    try:
        folder = install_emulators()
    except LocalBackendError as exc:
        pytest.fail(
            f"integration tests need kinesalite and dynalite (npm) and they could not be "
            f"installed: {exc}",
            pytrace=False,
        )
    server = LocalKinesis(backend="emulators", emulators_dir=folder)
    try:
        server.start()
    except LocalBackendError as exc:
        pytest.fail(f"could not start kinesalite/dynalite: {exc}", pytrace=False)
    _SESSION_SERVERS.append(server)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in _UNSET_FOR_SESSION:
                patch.delenv(name, raising=False)
            for name, value in server.environ().items():
                patch.setenv(name, value)
            yield server
    finally:
        _SESSION_SERVERS.remove(server)
        server.stop()


@pytest.fixture(scope="session")
def local_ministack() -> Iterator[LocalMinistack]:
    """ministack's Kinesis on loopback for the whole session (leases stay on dynalite)."""
    server = LocalMinistack()
    try:
        server.start()
    except LocalBackendError as exc:
        pytest.fail(f"could not start ministack: {exc}", pytrace=False)
    _SESSION_SERVERS.append(server)
    try:
        yield server
    finally:
        _SESSION_SERVERS.remove(server)
        server.stop()


@pytest.fixture
def ministack_kinesis(local_ministack: LocalMinistack) -> KinesisClient:
    """A boto3 Kinesis client for the session's ministack."""
    return local_ministack.kinesis_client()


@pytest.fixture
def kinesis(local_kinesis: LocalKinesis) -> KinesisClient:
    """A boto3 Kinesis client for the session's kinesalite."""
    return local_kinesis.kinesis_client()


@pytest.fixture
def dynamodb(local_kinesis: LocalKinesis) -> DynamoDBClient:
    """A boto3 DynamoDB client for the session's dynalite."""
    return local_kinesis.dynamodb_client()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A stream/table name unique to this test run: ``<test name[:40]>-<8 hex>``."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name[:40]).strip("-") or "test"
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_stream(kinesis: KinesisClient, unique_name: str) -> Iterator[Callable[..., str]]:
    """Factory: ``make_stream(shard_count=1)`` creates an ACTIVE stream, deleted after the test.

    The first stream is named ``unique_name``; later ones get ``-2``, ``-3``, ... appended.
    Returns the stream name.
    """
    created: list[str] = []

    def make(shard_count: int = 1) -> str:
        name = unique_name if not created else f"{unique_name}-{len(created) + 1}"
        kinesis.create_stream(StreamName=name, ShardCount=shard_count)
        created.append(name)
        kinesis.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        return name

    yield make

    for name in created:
        try:
            kinesis.delete_stream(StreamName=name)
        except kinesis.exceptions.ResourceNotFoundException:
            pass


def split_in_two(kinesis: KinesisClient, stream: str) -> str:
    """Split the stream's first shard in the middle of its hash range and wait until the stream
    is ACTIVE again; the parent shard's id."""
    parent = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent, NewStartingHashKey=str(2**127))
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    return parent


def reliability_run(messages: int, **options: Any) -> RunReport:
    """The reliability run on the servers the environment names (the session's, or the limits
    mode in front of them); ``options`` as for ``RunOptions`` (2 shards, 2 consumers)."""
    options.setdefault("progress", io.StringIO())
    return run_test(RunOptions(messages, local=False, **options))


@pytest.fixture(scope="session")
def limits_proxy(local_kinesis: LocalKinesis) -> Iterator[LimitsProxyProcess]:
    """The limits mode (AWS's limits) in its own process, in front of the session's servers.

    Shared by the session: tests use their own streams and look at ``stats()`` differences.
    """
    with LimitsProxyProcess(
        local_kinesis.kinesis_endpoint, local_kinesis.dynamodb_endpoint
    ) as proxy:
        yield proxy


@pytest.fixture
def aws_limits(
    limits_proxy: LimitsProxyProcess, monkeypatch: pytest.MonkeyPatch
) -> LimitsProxyProcess:
    """Points boto3 (every client the library builds) at the limits proxy for this test."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", limits_proxy.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", limits_proxy.endpoint)
    return limits_proxy


class AwsCalls:
    """(thread id, service, operation) of every call of every client built meanwhile."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str]] = []
        self.checkpoints: list[tuple[int, int]] = []
        self.on_checkpoint: Callable[[tuple[int, int]], None] = lambda _: None
        self._lock = threading.Lock()

    def hook(self, service: str, client: Any) -> None:
        client.meta.events.register("before-call", self._before_call)
        client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", self._update)

    def _before_call(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((threading.get_ident(), model.service_model.service_name, model.name))

    def _update(self, params: dict[str, Any], **_: Any) -> None:
        values = params.get("ExpressionAttributeValues", {})
        sequence = values.get(":checkpoint", {}).get("S", "")
        if sequence.isdigit():
            position = (int(sequence), int(values[":sub"]["N"]))
            self.on_checkpoint(position)
            with self._lock:
                self.checkpoints.append(position)


@pytest.fixture
def aws_calls() -> Iterator[AwsCalls]:
    """Records the thread of every botocore call of the clients the library builds meanwhile."""
    calls = AwsCalls()
    add_client_hook(calls.hook)
    yield calls
    remove_client_hook(calls.hook)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Consumer worker processes a test starts (``integration.test_consumer.WorkerProcess``),
    killed after it."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()


def start_local_command(
    env_file: Path, *options: str, stderr: int = subprocess.PIPE
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``kinesis-actors local --env-file env_file *options`` in a child process, and the exports
    it wrote there once its servers answer. Its output is piped; the caller ends it."""
    command = [sys.executable, "-m", "kinesis_actors._cli", "local", *options]
    command += ["--env-file", str(env_file)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    deadline = time.monotonic() + 60
    while not env_file.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    if not env_file.exists():
        process.kill()
        output, errors = process.communicate()
        raise AssertionError(f"kinesis-actors local wrote no {env_file}:\n{output}{errors or ''}")
    lines = env_file.read_text().splitlines()
    return process, dict(line.removeprefix("export ").split("=", 1) for line in lines)
