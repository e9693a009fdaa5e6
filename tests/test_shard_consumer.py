"""ShardConsumer: the Scala ConsumerProcessingManagerSpec, ported, plus the lifecycle, the read
loop and the shutdown reasons.

The original manager blocked a KCL thread on an ask; here the ShardConsumer sends ``StartBatch``
and reads on only after ``ProcessingComplete``, so "blocks until the worker responds" becomes
"sends no other batch before the BatchTracker responds".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from test_consumer_support import (
    SHARD,
    Acker,
    FakeCoordinator,
    FakeKinesis,
    Probe,
    client_error,
    consumer_conf,
    lease,
    seq,
    wait_for,
)

from kinesis_actors._aggregation import encode
from kinesis_actors._config import ConsumerConf
from kinesis_actors._consumer.executor import BlockingExecutor
from kinesis_actors._consumer.messages import (
    GracefulShutdown,
    ProcessingComplete,
    ShardActorCrashed,
    ShardFinished,
    ShardProcessingFailed,
    ShutdownComplete,
    ShutdownReason,
    StartBatch,
    StopShard,
)
from kinesis_actors._consumer.shard import ShardConsumer
from kinesis_actors._errors import ThrottlingError
from kinesis_actors._leases.lease import HeldLease
from kinesis_actors._models import Sentinel

QUIET_CHECKPOINTS = "checkpointer { notificationDelayMillis = 60000 }"


class World:
    def __init__(self, conf: ConsumerConf, held: HeldLease, worker_probe: bool) -> None:
        self.kinesis = FakeKinesis()
        self.kinesis.add_shard(SHARD)
        self.coordinator = FakeCoordinator()
        self.acker = Acker()
        self.processor = Probe.start(self.acker)
        self.supervisor = Probe.start()
        self.conf = conf
        self.lease = held
        self.consumer_worker = Probe.start() if worker_probe else None
        self.shard: Any = None
        self.executor = BlockingExecutor(8, idle_timeout=5.0)

    def start(self) -> None:
        factory = (lambda: self.consumer_worker.ref) if self.consumer_worker else None
        self.shard = ShardConsumer.start(
            self.lease,
            self.conf,
            self.kinesis,
            self.coordinator,
            self.processor.ref,
            self.supervisor.ref,
            factory,
            executor=self.executor,
        )

    def put(self, *payloads: bytes) -> None:
        for payload in payloads:
            self.kinesis.put(SHARD, payload)

    def finished(self, timeout: float = 3.0) -> ShardFinished:
        message: ShardFinished = self.supervisor.expect(ShardFinished, timeout)
        wait_for(lambda: not self.shard.is_alive(), what="shard worker stopped")
        return message

    def stop(self) -> None:
        self.kinesis.gate.set()
        probes = [self.processor, self.supervisor]
        if self.consumer_worker:
            probes.append(self.consumer_worker)
        if self.shard is not None and self.shard.is_alive():
            self.shard.stop()
        for probe in probes:
            if probe.ref.is_alive():
                probe.stop()
        # The shard's children stop one after the other, without blocking.
        wait_for(lambda: not pykka.ActorRegistry.get_all(), what="every actor stopped")
        self.executor.shutdown()


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(hocon: str = "", worker_probe: bool = False, **lease_args: Any) -> World:
        world = World(consumer_conf(hocon), lease(**lease_args), worker_probe)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.stop()


# -- the ConsumerProcessingManagerSpec ------------------------------------------------------------


def test_sends_converted_events_one_batch_at_a_time(make_world: Callable[..., World]) -> None:
    world = make_world(worker_probe=True)
    world.put(b"0", b"1", encode([("a", None, b"a0"), ("b", None, b"a1")]))
    world.start()
    assert world.consumer_worker is not None
    batch: StartBatch = world.consumer_worker.expect(StartBatch)
    assert [e.payload for e in batch.events] == [b"0", b"1", b"a0", b"a1"]
    assert [e.sequence_number for e in batch.events] == [
        seq(1000),
        seq(1001),
        seq(1002, 0),
        seq(1002, 1),
    ]
    assert {e.shard_id for e in batch.events} == {SHARD}
    assert batch.shard_id == SHARD
    world.put(b"2")
    world.consumer_worker.expect_no_message(0.3)  # the batch is not complete yet
    batch.reply_to.tell(ProcessingComplete(True))
    assert [e.payload for e in world.consumer_worker.expect(StartBatch).events] == [b"2"]
    world.supervisor.expect_no_message(0.1)


def test_unsuccessful_batch_reports_once_and_reads_no_more(
    make_world: Callable[..., World],
) -> None:
    world = make_world(worker_probe=True)
    world.put(b"0")
    world.start()
    assert world.consumer_worker is not None
    batch = world.consumer_worker.expect(StartBatch)
    batch.reply_to.tell(ProcessingComplete(False, batch.events))
    failed = world.supervisor.expect(ShardProcessingFailed)
    assert failed == ShardProcessingFailed(world.lease, batch.events)
    world.put(b"1")
    world.consumer_worker.expect_no_message(0.3)
    world.supervisor.expect_no_message(0.1)


def test_a_crashed_consumer_worker_is_reported(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.processor.stop()  # the BatchTracker dies telling a dead processor
    world.put(b"0")
    world.start()
    failure = world.supervisor.expect(ShardActorCrashed)
    assert failure.actor == "BatchTracker" and failure.lease == world.lease


def test_skips_batches_when_shutting_down(make_world: Callable[..., World]) -> None:
    world = make_world(worker_probe=True)
    world.kinesis.gate.clear()  # the first read hangs
    world.start()
    assert world.consumer_worker is not None
    wait_for(lambda: world.kinesis.calls, what="a read started")
    world.shard.tell(StopShard(ShutdownReason.REQUESTED))
    shutdown = world.consumer_worker.expect(GracefulShutdown)
    assert shutdown.reason is ShutdownReason.REQUESTED
    world.put(b"0")
    world.kinesis.gate.set()  # the read returns a record: not sent
    world.consumer_worker.expect_no_message(0.2)
    shutdown.reply_to.tell(ShutdownComplete(True))
    assert world.finished() == ShardFinished(world.lease, ShutdownReason.REQUESTED, True)


# -- lifecycle ------------------------------------------------------------------------------------


def test_a_child_waits_until_its_parents_finished(make_world: Callable[..., World]) -> None:
    world = make_world(parents=("shardId-parent",))
    world.coordinator.blocked_children.add(SHARD)
    world.put(b"child")
    world.start()
    time.sleep(0.3)  # several parent polls
    assert world.kinesis.calls == []
    world.coordinator.blocked_children.clear()
    wait_for(lambda: world.acker.payloads() == [b"child"], what="child processed")


def test_shard_end_checkpoints_shard_end_after_every_record(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    world.put(b"0", b"1", b"2")
    world.kinesis.close(SHARD)
    world.start()
    assert world.finished() == ShardFinished(world.lease, ShutdownReason.SHARD_END, True)
    assert world.acker.payloads() == [b"0", b"1", b"2"]
    assert world.coordinator.last() == Sentinel.SHARD_END
    assert world.coordinator.ended == [SHARD]


def test_failed_shard_end_checkpoint_is_retried(make_world: Callable[..., World]) -> None:
    world = make_world(QUIET_CHECKPOINTS)
    world.put(b"0")
    world.kinesis.close(SHARD)
    world.coordinator.fail_with.extend([ThrottlingError("1"), ThrottlingError("2")])
    world.start()
    assert world.finished() == ShardFinished(world.lease, ShutdownReason.SHARD_END, True)
    assert world.coordinator.checkpoints[SHARD] == [Sentinel.SHARD_END]


def test_lease_lost_stops_without_checkpoint(make_world: Callable[..., World]) -> None:
    world = make_world(QUIET_CHECKPOINTS)
    world.put(b"0")
    world.start()
    wait_for(lambda: world.acker.payloads() == [b"0"], what="record processed")
    world.shard.tell(StopShard(ShutdownReason.LEASE_LOST))
    assert world.finished() == ShardFinished(world.lease, ShutdownReason.LEASE_LOST, False)
    assert world.coordinator.checkpoints == {}


def test_requested_shutdown_checkpoints_what_was_acknowledged(
    make_world: Callable[..., World],
) -> None:
    world = make_world(QUIET_CHECKPOINTS)
    world.put(b"0", b"1")
    world.start()
    wait_for(lambda: len(world.acker.payloads()) == 2, what="records processed")
    time.sleep(0.05)
    world.shard.tell(StopShard(ShutdownReason.REQUESTED))
    assert world.finished() == ShardFinished(world.lease, ShutdownReason.REQUESTED, True)
    assert world.coordinator.checkpoints[SHARD] == [seq(1001)]


def test_shutdown_is_not_held_up_by_a_hanging_read(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.kinesis.gate.clear()
    world.start()
    wait_for(lambda: world.kinesis.calls, what="a read started")
    world.shard.tell(StopShard(ShutdownReason.REQUESTED))
    world.finished(timeout=10.0)  # a hang guard
    assert not world.kinesis.gate.is_set()  # stopped while the read still hangs


def test_stop_while_waiting_on_parents(make_world: Callable[..., World]) -> None:
    world = make_world(parents=("shardId-parent",))
    world.coordinator.blocked_children.add(SHARD)
    world.start()
    time.sleep(0.1)
    world.shard.tell(StopShard(ShutdownReason.REQUESTED))
    assert world.finished() == ShardFinished(world.lease, ShutdownReason.REQUESTED, False)


# -- the read loop --------------------------------------------------------------------------------


def test_waits_the_idle_time_between_empty_reads(make_world: Callable[..., World]) -> None:
    world = make_world("kcl { idleTimeBetweenReadsInMillis = 100 }")
    world.start()
    time.sleep(0.55)
    calls = world.kinesis.get_records_calls()
    assert 4 <= calls <= 7, calls


def test_backs_off_exponentially_when_throttled(make_world: Callable[..., World]) -> None:
    world = make_world("kcl { taskBackoffTimeMillis = 50 }")
    world.kinesis.errors.extend(
        client_error("ProvisionedThroughputExceededException") for _ in range(3)
    )
    world.put(b"0")
    started = time.monotonic()
    world.start()
    wait_for(lambda: world.acker.payloads() == [b"0"], what="record processed after throttling")
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2


def test_other_read_errors_are_retried(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.kinesis.errors.append(client_error("InternalFailure"))
    world.put(b"0")
    world.start()
    wait_for(lambda: world.acker.payloads() == [b"0"], what="record processed after an error")


def test_iterator_expiry_loses_and_repeats_nothing(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.put(b"0", b"1")
    world.start()
    wait_for(lambda: len(world.acker.payloads()) == 2, what="first records")
    world.kinesis.expire_next = True
    world.put(b"2", b"3")
    wait_for(lambda: len(world.acker.payloads()) == 4, what="records after expiry")
    time.sleep(0.1)
    assert world.acker.payloads() == [b"0", b"1", b"2", b"3"]


@pytest.mark.parametrize(
    ("strategy", "reads_during_batch"), [("PREFETCH_CACHED", 2), ("DEFAULT", 1)]
)
def test_prefetches_at_most_one_batch_ahead(
    make_world: Callable[..., World], strategy: str, reads_during_batch: int
) -> None:
    world = make_world(f"kcl {{ dataFetchingStrategy = {strategy} }}", worker_probe=True)
    world.put(b"0")
    world.start()
    assert world.consumer_worker is not None
    batch = world.consumer_worker.expect(StartBatch)
    world.put(b"1")
    time.sleep(0.3)  # plenty of idle periods: still at most one read ahead
    assert world.kinesis.get_records_calls() == reads_during_batch
    batch.reply_to.tell(ProcessingComplete(True))
    assert [e.payload for e in world.consumer_worker.expect(StartBatch).events] == [b"1"]


def test_resumes_inside_an_aggregate(make_world: Callable[..., World]) -> None:
    world = make_world(checkpoint=seq(1000, 1))
    world.put(encode([("a", None, b"0"), ("b", None, b"1"), ("c", None, b"2")]), b"3")
    world.start()
    wait_for(lambda: len(world.acker.payloads()) == 2, what="records after the checkpoint")
    time.sleep(0.05)
    assert world.acker.payloads() == [b"2", b"3"]
