"""The consumer on kinesalite + dynalite: processes sharing a stream, hand-over, resharding, KPL.

Timings are short (failover 1 s, idle 50 ms) so the whole module runs in well under a minute.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aws_kinesis_agg.aggregator import RecordAggregator

from integration.conftest import split_in_two
from kinesis_actors._config import load_config
from kinesis_actors._consumer import KinesisConsumer
from kinesis_actors._leases import DynamoDBLeaseTable
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, Sentinel
from kinesis_actors.testing._local import LocalKinesis

WORKER = Path(__file__).resolve().parent / "consumer_worker.py"


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


class WorkerProcess:
    """``consumer_worker.py`` in a subprocess; its JSON lines collected as they come."""

    def __init__(
        self,
        stream: str,
        application: str,
        *args: str,
        env: dict[str, str] | None = None,
    ) -> None:
        """``args``: more options of the worker; ``env``: more environment variables."""
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), "--stream", stream, "--application", application, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONPATH=str(WORKER.parent.parent), **(env or {})),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._lock:
                self.lines.append(json.loads(raw))

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [line for line in self.lines if line["event"] == "record"]

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def owners(local: LocalKinesis, table: str) -> dict[str, str | None]:
    try:
        leases = DynamoDBLeaseTable(local.dynamodb_client(), table).list_leases()
    except Exception:
        return {}
    return {lease.shard_id: lease.owner for lease in leases}


def put(kinesis: Any, stream: str, count: int, prefix: str) -> list[str]:
    payloads = [f"{prefix}-{n}" for n in range(count)]
    for start in range(0, count, 100):
        kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": p.encode(), "PartitionKey": p} for p in payloads[start : start + 100]
            ],
        )
    return payloads


def start_two_sharing(
    local: LocalKinesis,
    table: str,
    start: Callable[[], WorkerProcess],
    workers: list[WorkerProcess],
    timeout: float,
) -> tuple[WorkerProcess, WorkerProcess]:
    """Worker a takes both leases of a 2-shard stream, then worker b steals one of them."""
    a = start()
    workers.append(a)
    wait_for(lambda: len(owners(local, table)) == 2, timeout, "leases created and taken")
    b = start()
    workers.append(b)
    wait_for(lambda: len(set(owners(local, table).values())) == 2, timeout, "one shard each")
    # The worker the lease was stolen from learns it at its next renewal (failover / 3); until
    # then it may still process that shard (the KCL's zombie window).
    time.sleep(1.0)
    return a, b


def put_and_split_exactly_once(
    kinesis: Any, stream: str, a: WorkerProcess, b: WorkerProcess, timeout: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """200 records, each processed once by a or b, each worker on its own shard; their records."""
    first = put(kinesis, stream, 200, "first")
    wait_for(lambda: len(a.records()) + len(b.records()) >= 200, timeout, "first records done")
    time.sleep(0.3)
    by_a, by_b = a.records(), b.records()
    assert sorted(r["data"] for r in by_a + by_b) == sorted(first)  # each exactly once
    assert by_a and by_b
    assert not {r["shard"] for r in by_a} & {r["shard"] for r in by_b}
    return by_a, by_b


def test_two_processes_share_two_shards_and_hand_over(
    local_kinesis: LocalKinesis,
    kinesis: Any,
    make_stream: Callable[..., str],
    workers: list[WorkerProcess],
) -> None:
    stream = make_stream(2)
    application = f"app-{uuid.uuid4().hex[:6]}"
    table = f"{application}-{stream}"
    a, b = start_two_sharing(
        local_kinesis, table, lambda: WorkerProcess(stream, application), workers, 20
    )
    _, by_b = put_and_split_exactly_once(kinesis, stream, a, b, 20)

    survivor = owners(local_kinesis, table)[by_b[0]["shard"]]
    assert a.stop() == 0  # graceful: final checkpoint, lease released
    wait_for(
        lambda: set(owners(local_kinesis, table).values()) == {survivor},
        10,
        "the survivor owns both shards",
    )
    second = put(kinesis, stream, 200, "second")
    wait_for(lambda: len(b.records()) >= len(by_b) + 200, 20, "records after the hand-over")
    time.sleep(0.3)
    after = b.records()[len(by_b) :]
    assert sorted(r["data"] for r in after) == sorted(second)  # no gap, nothing from before
    assert b.stop() == 0


# -- in-process consumers --------------------------------------------------------------------


CONFIG = """
kinesis {{
  application-name = "{application}"
  it {{
    stream-name = "{stream}"
    worker {{ batchTimeoutSeconds = {batch_timeout}, gracefulShutdownHook = false,
             shutdownTimeoutSeconds = 5 }}
    checkpointer {{ intervalMillis = 100, notificationDelayMillis = 50 }}
    kcl {{ failoverTimeMillis = 1000, idleTimeBetweenReadsInMillis = 50,
          parentShardPollIntervalMillis = 100, taskBackoffTimeMillis = 100,
          shardSyncIntervalMillis = 500, releasedLeasePollMillis = 100 }}
  }}
}}
"""


def consumer(
    stream: str,
    application: str,
    process: Callable[[ConsumerEvent], object],
    batch_timeout: float = 5,
) -> KinesisConsumer:
    text = CONFIG.format(stream=stream, application=application, batch_timeout=batch_timeout)
    return KinesisConsumer(process, load_config(text), "it")


class Seen:
    def __init__(self) -> None:
        self.events: list[ConsumerEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: ConsumerEvent) -> None:
        with self.lock:
            self.events.append(event)

    def payloads(self) -> list[str]:
        with self.lock:
            return [e.payload_as_string() for e in self.events]


def test_split_mid_stream_keeps_each_key_in_order(
    kinesis: Any, make_stream: Callable[..., str]
) -> None:
    stream = make_stream(1)
    keys = [f"key-{k}" for k in range(20)]
    seen = Seen()
    app = f"app-{uuid.uuid4().hex[:6]}"
    running = consumer(stream, app, seen)
    running.start()
    try:
        sent: list[str] = []

        def put_round(round_: int) -> None:
            batch = [(key, f"{key}:{round_}") for key in keys]
            kinesis.put_records(
                StreamName=stream,
                Records=[{"Data": data.encode(), "PartitionKey": key} for key, data in batch],
            )
            sent.extend(data for _, data in batch)

        for round_ in range(5):
            put_round(round_)
        parent = split_in_two(kinesis, stream)
        for round_ in range(5, 10):
            put_round(round_)
        wait_for(lambda: len(seen.payloads()) >= len(sent), 30, "every record processed")
        time.sleep(0.2)
        assert sorted(seen.payloads()) == sorted(sent)  # nothing lost, nothing twice
        by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
        with seen.lock:
            for event in seen.events:
                key, round_text = event.payload_as_string().split(":")
                by_key[key].append((int(round_text), event.shard_id))
        for key, rounds in by_key.items():
            assert [r for r, _ in rounds] == list(range(10)), key  # parent first, in order
            assert {s for r, s in rounds if r < 5} == {parent}
            assert parent not in {s for r, s in rounds if r >= 5}
    finally:
        running.stop()


def test_kpl_aggregated_records_checkpoint_sub_sequences(
    local_kinesis: LocalKinesis, kinesis: Any, make_stream: Callable[..., str]
) -> None:
    stream = make_stream(1)
    aggregator = RecordAggregator()
    for n in range(10):
        aggregator.add_user_record(f"pk-{n}", f"member-{n}".encode())
    pk, _, data = aggregator.clear_and_get().get_contents()
    kinesis.put_record(StreamName=stream, Data=data, PartitionKey=pk)
    app = f"app-{uuid.uuid4().hex[:6]}"
    table = DynamoDBLeaseTable(local_kinesis.dynamodb_client(), f"{app}-{stream}")

    held_back = threading.Event()

    def first_run(event: ConsumerEvent) -> object:
        if event.payload == b"member-6":
            held_back.set()
            raise RuntimeError("not now")  # 6 stays unacknowledged (retries are 60 s away)
        return None

    running = consumer(stream, app, first_run, batch_timeout=60)
    running.start()
    wait_for(held_back.is_set, 20, "member 6 reached")
    time.sleep(0.3)  # members 7..9 processed too
    running.stop()
    lease = table.list_leases()[0]
    assert isinstance(lease.checkpoint, CompoundSequenceNumber)
    assert lease.checkpoint.sub_sequence_number == 5  # highest contiguous acknowledged

    seen = Seen()
    resumed = consumer(stream, app, seen)
    resumed.start()
    try:
        wait_for(lambda: len(seen.payloads()) >= 4, 20, "resumed")
        time.sleep(0.2)
        assert seen.payloads() == [f"member-{n}" for n in range(6, 10)]
        assert [e.sequence_number.sub_sequence_number for e in seen.events] == [6, 7, 8, 9]
        wait_for(
            lambda: (
                table.list_leases()[0].checkpoint
                == CompoundSequenceNumber(lease.checkpoint.sequence_number, 9)
            ),
            10,
            "checkpoint at the last member",
        )
    finally:
        resumed.stop()
    assert table.list_leases()[0].checkpoint != Sentinel.SHARD_END


def test_the_consumer_example_runs_on_the_local_servers(
    local_kinesis: LocalKinesis, capsys: pytest.CaptureFixture[str]
) -> None:
    example = WORKER.parent.parent / "examples" / "consume_orders.py"
    logging_config = structlog.get_config()  # the example configures logging, as apps do
    try:
        assert runpy.run_path(str(example))["main"]([]) == 0
    finally:
        structlog.configure(**logging_config)
    out = capsys.readouterr().out
    assert "processed 400 of 400 orders (function)" in out
    assert out.count("owner None") == 2
