"""KinesisConsumer: the Scala KinesisConsumerSpec, ported, and the whole pipeline in one process.

The pipeline tests use the real LeaseCoordinator on an in-memory lease table and a fake Kinesis,
so leases, checkpoints and restarts behave as in production, without servers.
"""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from test_consumer_support import (
    SHARD,
    FakeCoordinator,
    FakeKinesis,
    Probe,
    consumer_conf,
    lease,
    seq,
    wait_for,
)

from kinesis_actors import _exit
from kinesis_actors._aggregation import encode
from kinesis_actors._config import ConsumerConf, load_config
from kinesis_actors._consumer.consumer import KinesisConsumer
from kinesis_actors._consumer.messages import ConsumerShutdown, ProcessEvent
from kinesis_actors._errors import ProcessingFailedError
from kinesis_actors._leases import InMemoryLeaseTable, LeaseCoordinator
from kinesis_actors._models import ConsumerEvent

SPEC_CONFIG = """
kinesis {
  application-name = "TestSpec"
  testConsumer {
    stream-name = "test-kinesis-reliability"
    worker { batchTimeoutSeconds = 1234, failedMessageRetries = 1,
             failureTolerancePercentage = 0.25, gracefulShutdownHook = false,
             shutdownTimeoutSeconds = 2 }
    checkpointer { backoffMillis = 4321 }
    kcl {
      kinesisEndpoint = "https://kinesis.eu-west-1.amazonaws.com"
      dynamoDBEndpoint = "https://dynamodb.eu-west-1.amazonaws.com"
      skipShardSyncAtStartupIfLeasesExist = true
      tableName = "TableName"
      regionName = "eu-west-1"
    }
  }
  testConsumer2 { stream-name = "another-stream", kcl { regionName = "us-east-2" } }
}
"""


# -- the KinesisConsumerSpec ---------------------------------------------------------------------


def test_parses_the_named_consumer_config() -> None:
    consumer = KinesisConsumer(lambda e: None, load_config(SPEC_CONFIG), "testConsumer")
    conf = consumer.conf
    assert (conf.worker.batch_timeout, conf.worker.failed_message_retries) == (1234, 1)
    assert conf.worker.failure_tolerance_percentage == 0.25
    assert not conf.worker.graceful_shutdown_hook
    assert conf.worker.shutdown_timeout == 2
    assert (conf.checkpointer.backoff, conf.checkpointer.interval) == (4.321, 2.0)
    assert conf.checkpointer.notification_delay == 1.0
    assert conf.application_name == "TestSpec"
    assert conf.table_name == "TableName"
    assert conf.kcl.kinesis_endpoint == "https://kinesis.eu-west-1.amazonaws.com"
    assert conf.kcl.skip_shard_sync_at_startup_if_leases_exist
    assert conf.kcl.region_name == "eu-west-1"


def test_multiple_consumers_fall_back_to_the_defaults() -> None:
    tree = load_config(SPEC_CONFIG)
    first = KinesisConsumer(lambda e: None, tree, "testConsumer")
    second = KinesisConsumer.with_processor(Probe.start().ref, tree["kinesis"], "testConsumer2")
    assert second.conf.stream_name == "another-stream"
    assert second.conf.table_name == "TestSpec-another-stream"
    assert second.conf.kcl.region_name == "us-east-2"
    assert second.conf.worker.batch_timeout == 10  # reference.conf
    assert first.conf.worker.batch_timeout == 1234
    pykka.ActorRegistry.stop_all()


def test_a_config_tree_needs_a_consumer_name() -> None:
    with pytest.raises(ValueError, match="consumer_name"):
        KinesisConsumer(lambda e: None, load_config(SPEC_CONFIG))


class SlowCoordinator(FakeCoordinator):
    def __init__(self, fail_start: BaseException | None = None) -> None:
        super().__init__()
        self.fail_start = fail_start
        self.stop_calls = 0

    def start(self) -> None:
        if self.fail_start is not None:
            raise self.fail_start
        super().start()

    def stop(self, release: bool | None = None) -> None:
        self.stop_calls += 1
        super().stop(release)


def fake_consumer(
    coordinator: FakeCoordinator, hocon: str = "", process: Callable[[Any], object] | None = None
) -> KinesisConsumer:
    kinesis = FakeKinesis()
    kinesis.add_shard(SHARD)
    return KinesisConsumer(
        process or (lambda e: None),
        consumer_conf(hocon),
        kinesis=kinesis,  # type: ignore[arg-type]
        coordinator_factory=lambda conf, k, d, subscriber: coordinator,
    )


def test_start_completes_only_when_the_consumer_stops() -> None:
    coordinator = SlowCoordinator()
    consumer = fake_consumer(coordinator)
    done = consumer.start()
    assert consumer.start() is done
    time.sleep(0.25)
    assert not done.done() and coordinator.started
    assert consumer.stop()
    assert done.result(timeout=1) is None


def test_start_fails_the_future_when_the_consumer_cannot_start() -> None:
    consumer = fake_consumer(SlowCoordinator(fail_start=RuntimeError("no table")))
    done = consumer.start()
    with pytest.raises(RuntimeError, match="no table"):
        done.result(timeout=1)
    assert consumer.stop()


def test_stop_is_idempotent() -> None:
    coordinator = SlowCoordinator()
    consumer = fake_consumer(coordinator)
    consumer.start()
    assert consumer.stop() and consumer.stop()
    assert coordinator.stop_calls == 1
    assert fake_consumer(SlowCoordinator()).stop()  # never started


# -- the pipeline with the real lease coordinator --------------------------------------------------


class Pipeline:
    """Consumers on one fake stream and one in-memory lease table."""

    def __init__(self, shards: int = 1) -> None:
        self.kinesis = FakeKinesis()
        self.shard_ids = [f"shardId-{n:012d}" for n in range(shards)]
        for shard_id in self.shard_ids:
            self.kinesis.add_shard(shard_id)
        self.table = InMemoryLeaseTable()
        self.consumers: list[KinesisConsumer] = []

    def consumer(self, process: Any, hocon: str = "") -> KinesisConsumer:
        def coordinator(conf: ConsumerConf, kinesis: Any, dynamodb: Any, subscriber: Any) -> Any:
            return LeaseCoordinator(
                conf.kcl,
                table_name=conf.table_name,
                stream_name=conf.stream_name,
                kinesis=kinesis,
                table=self.table,
                subscriber=subscriber,
            )

        consumer = KinesisConsumer(
            process,
            consumer_conf(hocon),
            kinesis=self.kinesis,  # type: ignore[arg-type]
            coordinator_factory=coordinator,
        )
        self.consumers.append(consumer)
        return consumer

    def checkpoint(self, shard_id: str = SHARD) -> Any:
        held = self.table.get_lease(shard_id)
        return held.checkpoint if held else None

    def stop(self) -> None:
        for consumer in self.consumers:
            consumer.stop()


class Recorder:
    def __init__(self) -> None:
        self.events: list[ConsumerEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: ConsumerEvent) -> object:
        with self.lock:
            self.events.append(event)
        return None

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [e.payload for e in self.events]


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    world = Pipeline()
    yield world
    world.stop()


def test_consumes_and_checkpoints(pipeline: Pipeline) -> None:
    recorder = Recorder()
    for n in range(250):
        pipeline.kinesis.put(SHARD, b"%d" % n)
    pipeline.consumer(recorder).start()
    wait_for(lambda: len(recorder.payloads()) == 250, what="all records")
    assert recorder.payloads() == [b"%d" % n for n in range(250)]
    wait_for(lambda: pipeline.checkpoint() == seq(1249), what="checkpoint of the last record")


def test_an_event_processor_actor_gets_every_record(pipeline: Pipeline) -> None:
    processor = Probe.start(lambda m: m.acknowledge() if isinstance(m, ProcessEvent) else None)
    pipeline.kinesis.put(SHARD, b"x")
    consumer = KinesisConsumer.with_processor(
        processor.ref,
        consumer_conf(),
        kinesis=pipeline.kinesis,  # type: ignore[arg-type]
        coordinator_factory=lambda conf, k, d, s: LeaseCoordinator(
            conf.kcl,
            table_name="t",
            stream_name="stream",
            kinesis=k,
            table=pipeline.table,
            subscriber=s,
        ),
    )
    pipeline.consumers.append(consumer)
    consumer.start()
    assert processor.expect(ProcessEvent).event.payload == b"x"
    consumer.stop()
    processor.expect(ConsumerShutdown(SHARD))
    processor.stop()


def test_raising_callback_is_retried_then_judged_by_the_tolerance(pipeline: Pipeline) -> None:
    attempts: list[bytes] = []

    def process(event: ConsumerEvent) -> None:
        attempts.append(event.payload)
        if event.payload == b"bad":
            raise ValueError("cannot process")

    pipeline.kinesis.put(SHARD, b"good")
    pipeline.kinesis.put(SHARD, b"bad")
    consumer = pipeline.consumer(process, "worker { batchTimeoutSeconds = 0.1 }")
    with pytest.raises(ProcessingFailedError):
        consumer.start().result(timeout=5)
    assert attempts == [b"good", b"bad", b"bad"]  # one retry of the unacknowledged record
    assert pipeline.checkpoint() == seq(1000)
    assert pipeline.table.get_lease(SHARD).owner is None  # released for another worker


def test_failed_futures_are_retried_and_skipped_within_the_tolerance(pipeline: Pipeline) -> None:
    calls: list[bytes] = []

    def process(event: ConsumerEvent) -> concurrent.futures.Future[None]:
        calls.append(event.payload)
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if event.payload == b"bad":
            future.set_exception(RuntimeError("downstream"))
        else:
            future.set_result(None)
        return future

    for payload in (b"1", b"bad", b"3"):
        pipeline.kinesis.put(SHARD, payload)
    consumer = pipeline.consumer(
        process, "worker { batchTimeoutSeconds = 0.1, failureTolerancePercentage = 50 }"
    )
    done = consumer.start()
    wait_for(lambda: pipeline.checkpoint() == seq(1002), what="checkpoint past the skipped record")
    assert calls == [b"1", b"bad", b"3", b"bad"]
    assert not done.done()


def test_a_hanging_callback_cannot_block_shutdown(pipeline: Pipeline) -> None:
    release = threading.Event()
    seen: list[bytes] = []

    def process(event: ConsumerEvent) -> None:
        seen.append(event.payload)
        if event.payload == b"hang":
            release.wait()
        time.sleep(0.01)  # a callback doing some work: its ack goes out before the next call

    for payload in (b"1", b"hang", b"3"):
        pipeline.kinesis.put(SHARD, payload)
    consumer = pipeline.consumer(process, "worker { shutdownTimeoutSeconds = 1 }")
    consumer.start()
    try:
        wait_for(lambda: b"hang" in seen, what="callback hanging")
        started = time.monotonic()
        assert consumer.stop()
        # stop() returned while the callback still hangs (it returns only once released)
        assert seen[-1] == b"hang" and not release.is_set()
        assert time.monotonic() - started < 30  # a hang guard, not a timing
        assert pipeline.checkpoint() == seq(1000)  # what was acknowledged before the hang
    finally:
        release.set()
    wait_for(lambda: not pykka.ActorRegistry.get_all(), what="hung processor finished")


def test_resumes_inside_an_aggregate_after_a_restart(pipeline: Pipeline) -> None:
    members = [(f"pk{n}", None, b"%d" % n) for n in range(5)]
    pipeline.kinesis.put(SHARD, encode(members))
    first: list[bytes] = []

    def process_until_three(event: ConsumerEvent) -> object:
        if event.payload == b"3":
            return concurrent.futures.Future()  # never completes: 3 and 4 stay unacknowledged
        first.append(event.payload)
        return None

    consumer = pipeline.consumer(process_until_three, "worker { batchTimeoutSeconds = 60 }")
    consumer.start()
    wait_for(lambda: len(first) == 4, what="first run")  # 0, 1, 2 and 4
    consumer.stop()
    assert pipeline.checkpoint() == seq(1000, 2)
    second = Recorder()
    pipeline.consumer(second).start()
    wait_for(lambda: second.payloads() == [b"3", b"4"], what="resumed at sub-sequence 3")


def test_two_consumers_share_the_shards(pipeline: Pipeline) -> None:
    world = Pipeline(shards=2)
    try:
        recorders = [Recorder(), Recorder()]
        hocon = "kcl { failoverTimeMillis = 300 }"
        for recorder in recorders:
            world.consumer(recorder, hocon).start()
        wait_for(
            lambda: sum(1 for lease_ in world.table.list_leases() if lease_.owner) == 2,
            what="both leases owned",
        )
        wait_for(  # the second consumer takes one shard over (a hand-off, then a completed one)
            lambda: (
                len(
                    {
                        lease_.owner
                        for lease_ in world.table.list_leases()
                        if lease_.owner and lease_.checkpoint_owner is None
                    }
                )
                == 2
            ),
            timeout=30.0,  # a hang guard: taker runs and a hand-off, on a loaded machine
            what="one lease each",
        )
        for n in range(20):
            world.kinesis.put(world.shard_ids[n % 2], b"%d" % n)
        wait_for(lambda: sum(len(r.payloads()) for r in recorders) == 20, what="all records")
        assert all(r.payloads() for r in recorders), "each consumer should hold one shard"
        owners = {lease_.owner for lease_ in world.table.list_leases()}
        assert len(owners) == 2
    finally:
        world.stop()


# -- the shutdown hook --------------------------------------------------------------------------


def test_sigterm_stops_gracefully_then_runs_the_previous_handler() -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        coordinator = SlowCoordinator()
        coordinator.grant(lease())
        consumer = fake_consumer(coordinator, "worker { gracefulShutdownHook = true }")
        done = consumer.start()
        signal.raise_signal(signal.SIGTERM)
        assert done.result(timeout=5) is None
        assert received == [signal.SIGTERM]
        assert coordinator.stopped
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler) and not isinstance(handler, type(consumer.stop))
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_exit_registry_stops_a_running_consumer_before_the_producer_engines() -> None:
    coordinator = SlowCoordinator()
    coordinator.grant(lease())
    consumer = fake_consumer(coordinator, "worker { gracefulShutdownHook = true }")
    done = consumer.start()
    consumer_stopped_first: list[bool] = []
    cancel = _exit.at_exit(lambda: consumer_stopped_first.append(done.done()), _exit.ENGINES)
    try:
        _exit._run()  # what the interpreter's one atexit hook runs
    finally:
        cancel()
    assert done.result(timeout=5) is None and coordinator.stopped
    assert consumer_stopped_first == [True]


def test_a_stopped_consumer_leaves_the_exit_registry() -> None:
    consumer = fake_consumer(SlowCoordinator(), "worker { gracefulShutdownHook = true }")
    consumer.start()
    assert consumer.stop in [stop for _, stop in _exit._stops.values()]
    assert consumer.stop()
    assert consumer.stop not in [stop for _, stop in _exit._stops.values()]


EXIT_HOOK_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_consumer_support import FakeCoordinator, FakeKinesis, SHARD, consumer_conf, lease, wait_for
from kinesis_actors._consumer import KinesisConsumer
from kinesis_actors._leases.lease import LeasesGained

class Coordinator(FakeCoordinator):
    def start(self):
        self.grant(lease())
        self.subscriber(LeasesGained((lease(),)))

    def stop(self, release=None):
        super().stop(release)
        print(f"coordinator stopped, checkpoints: {{self.checkpoints.get(SHARD)}}", flush=True)

kinesis = FakeKinesis()
kinesis.add_shard(SHARD)
kinesis.put(SHARD, b"x")
coordinator = Coordinator()
seen = []

def factory(conf, kinesis, dynamodb, subscriber):
    coordinator.subscriber = subscriber
    return coordinator

consumer = KinesisConsumer(
    seen.append,
    consumer_conf("worker {{ gracefulShutdownHook = true }}, "
                  "checkpointer {{ notificationDelayMillis = 60000 }}"),
    kinesis=kinesis,
    coordinator_factory=factory,
)
consumer.start()
wait_for(lambda: seen, what="record processed")
print("main returns without stop()", flush=True)
"""


def test_the_exit_hook_stops_gracefully_when_main_returns(tmp_path: Path) -> None:
    script = tmp_path / "exit_hook.py"
    script.write_text(EXIT_HOOK_SCRIPT.format(tests=str(Path(__file__).resolve().parent)))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout  # (with the consumer's log lines in between)
    returned = out.index("main returns without stop()")
    stopped = out.index(
        "coordinator stopped, checkpoints: [CompoundSequenceNumber(sequence_number='1000'"
    )
    assert returned < stopped
