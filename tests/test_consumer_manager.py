"""RecordProcessingManager: shard workers per lease, supervision, failure policy, stopping."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from test_consumer_support import (
    FakeCoordinator,
    FakeKinesis,
    Probe,
    consumer_conf,
    lease,
    seq,
    wait_for,
)

from kinesis_actors._consumer.event_loop import ConsumerLoop
from kinesis_actors._consumer.executor import BlockingExecutor
from kinesis_actors._consumer.manager import RecordProcessingManager, StopConsumer
from kinesis_actors._consumer.messages import ShardActorCrashed
from kinesis_actors._consumer.shard import ShardConsumer
from kinesis_actors._errors import ProcessingFailedError
from kinesis_actors._leases.lease import (
    HeldLease,
    LeaseHandoffRequested,
    LeasesGained,
    LeasesLost,
)
from kinesis_actors._models import ConsumerEvent

S0, S1 = "shardId-000000000000", "shardId-000000000001"
FAST_FAILURE = "worker { batchTimeoutSeconds = 0.1, failedMessageRetries = 0 }"


class World:
    def __init__(self, hocon: str, processor: Any) -> None:
        self.kinesis = FakeKinesis()
        for shard_id in (S0, S1):
            self.kinesis.add_shard(shard_id)
        self.coordinator = FakeCoordinator()
        self.seen: list[ConsumerEvent] = []
        self.seen_lock = threading.Lock()
        self.fail_payloads: set[bytes] = set()
        self.stopped: concurrent.futures.Future[BaseException | None] = concurrent.futures.Future()
        self.executor = BlockingExecutor(8, idle_timeout=5.0)
        self.manager = RecordProcessingManager.start(
            consumer_conf(hocon),
            self.kinesis,
            self.coordinator,
            self.process if processor is None else processor,
            self.stopped.set_result,
            self.executor,
            ConsumerLoop(None, "unused"),  # plain processors: it never starts
        )

    def process(self, event: ConsumerEvent) -> None:
        if event.payload in self.fail_payloads:
            raise ValueError("cannot process")
        with self.seen_lock:
            self.seen.append(event)

    def payloads(self, shard_id: str | None = None) -> list[bytes]:
        with self.seen_lock:
            return [e.payload for e in self.seen if shard_id in (None, e.shard_id)]

    def gain(self, *leases: HeldLease) -> None:
        self.coordinator.grant(*leases)
        self.manager.tell(LeasesGained(leases))

    def put(self, shard_id: str, *payloads: bytes) -> None:
        for payload in payloads:
            self.kinesis.put(shard_id, payload)

    def shard_workers(self) -> list[pykka.ActorRef[Any]]:
        return pykka.ActorRegistry.get_by_class(ShardConsumer)

    def stop(self) -> None:
        if self.manager.is_alive():
            self.manager.tell(StopConsumer())
            self.stopped.result(timeout=5)
        wait_for(lambda: not pykka.ActorRegistry.get_all(), what="all actors stopped")
        self.executor.shutdown()


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(hocon: str = "", processor: Any = None) -> World:
        worlds.append(World(hocon, processor))
        return worlds[-1]

    yield make
    for world in worlds:
        world.stop()


def test_one_shard_worker_per_gained_lease(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.put(S0, b"a")
    world.put(S1, b"b")
    world.gain(lease(S0), lease(S1))
    wait_for(lambda: sorted(world.payloads()) == [b"a", b"b"], what="both shards processed")
    assert len(world.shard_workers()) == 2
    world.gain(lease(S0))  # the same acquisition again: nothing new
    time.sleep(0.05)
    assert len(world.shard_workers()) == 2


def test_a_lost_lease_stops_its_worker_without_checkpoint(make_world: Callable[..., World]) -> None:
    world = make_world("checkpointer { notificationDelayMillis = 60000 }")
    world.put(S0, b"a")
    held = lease(S0)
    world.gain(held)
    wait_for(lambda: world.payloads() == [b"a"], what="processed")
    world.manager.tell(LeasesLost((lease(S0, token="other"),)))  # another acquisition: ignored
    time.sleep(0.05)
    assert len(world.shard_workers()) == 1
    world.manager.tell(LeasesLost((held,)))
    wait_for(lambda: not world.shard_workers(), what="shard worker stopped")
    assert world.coordinator.checkpoints == {}


def test_a_lease_regained_meanwhile_starts_after_the_old_worker(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    world.put(S0, b"a")
    world.gain(lease(S0, token="t1"))
    wait_for(lambda: world.payloads() == [b"a"], what="processed")
    old = world.shard_workers()[0]
    world.gain(lease(S0, token="t2"))
    wait_for(lambda: not old.is_alive(), what="old worker stopped")
    wait_for(lambda: len(world.shard_workers()) == 1, what="new worker started")
    assert world.shard_workers()[0] != old


def test_a_crashed_shard_is_shut_down_cleanly_and_restarted(
    make_world: Callable[..., World],
) -> None:
    world = make_world("checkpointer { notificationDelayMillis = 60000 }")
    world.put(S0, b"a", b"b")
    held = lease(S0)
    world.gain(held)
    wait_for(lambda: world.payloads() == [b"a", b"b"], what="processed")
    first = world.shard_workers()[0]
    world.manager.tell(ShardActorCrashed(held, "ShardCheckpointer", RuntimeError("boom")))
    wait_for(lambda: not first.is_alive(), what="crashed shard stopped")
    assert world.coordinator.checkpoints == {S0: [seq(1001)]}  # final checkpoint was made
    wait_for(lambda: len(world.shard_workers()) == 1, what="shard restarted")
    world.put(S0, b"c")
    wait_for(lambda: world.payloads() == [b"a", b"b", b"c"], what="resumed after the checkpoint")


def test_repeated_crashes_apply_the_failure_policy(make_world: Callable[..., World]) -> None:
    dead = Probe.start()
    dead.stop()  # every BatchTracker crashes telling it
    world = make_world(processor=dead.ref)
    world.put(S0, b"a")
    started = time.monotonic()
    world.gain(lease(S0))
    error = world.stopped.result(timeout=5)
    assert isinstance(error, pykka.ActorDeadError)
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2  # three restarts with backoff
    assert world.coordinator.stopped


def test_tolerance_failure_stops_the_consumer(make_world: Callable[..., World]) -> None:
    world = make_world(FAST_FAILURE)
    world.fail_payloads.add(b"bad")
    world.put(S0, b"ok", b"bad")
    world.put(S1, b"other")
    world.gain(lease(S0), lease(S1))
    error = world.stopped.result(timeout=5)
    assert isinstance(error, ProcessingFailedError)
    assert error.shard_id == S0 and [e.payload for e in error.failed_events] == [b"bad"]
    assert world.coordinator.checkpoints[S0] == [seq(1000)]  # up to the last contiguous ack
    assert world.coordinator.history[-1] == ("stop",)


def test_tolerance_failure_with_shard_policy_releases_only_that_shard(
    make_world: Callable[..., World],
) -> None:
    world = make_world(FAST_FAILURE + ' worker { failurePolicy = "shard" }')
    world.fail_payloads.add(b"bad")
    world.put(S0, b"bad")
    world.gain(lease(S0), lease(S1))
    wait_for(lambda: world.coordinator.released == [S0], what="failed shard released")
    world.put(S1, b"still consuming")
    wait_for(lambda: world.payloads(S1) == [b"still consuming"], what="other shard goes on")
    assert not world.stopped.done()


def _two_shards_processed(make_world: Callable[..., World]) -> World:
    """A world holding S0 and S1, each with one record processed and not yet checkpointed."""
    world = make_world("checkpointer { notificationDelayMillis = 60000 }")
    world.put(S0, b"a")
    world.put(S1, b"b")
    world.gain(lease(S0), lease(S1))
    wait_for(lambda: len(world.payloads()) == 2, what="processed")
    return world


def test_a_stop_hands_shards_over_as_asked_while_the_others_still_process(
    make_world: Callable[..., World],
) -> None:
    world = _two_shards_processed(make_world)

    def others_ask() -> None:  # another worker asks for S0 during the hand-over wait
        world.manager.tell(LeaseHandoffRequested((lease(S0),)))
        wait_for(lambda: S0 in world.coordinator.released, what="S0 handed over")
        world.put(S1, b"c")
        wait_for(lambda: world.payloads(S1) == [b"b", b"c"], what="S1 still processing")

    world.coordinator.on_hand_over = others_ask
    world.manager.tell(StopConsumer())
    assert world.stopped.result(timeout=10) is None
    history = world.coordinator.history
    assert history[:3] == [("hand_over",), ("checkpoint", S0, seq(1000)), ("release", S0)]
    assert history[3:] == [("checkpoint", S1, seq(1001)), ("stop",)]


def test_stop_checkpoints_every_shard_then_stops_the_coordinator(
    make_world: Callable[..., World],
) -> None:
    world = _two_shards_processed(make_world)
    world.manager.tell(StopConsumer())
    world.manager.tell(LeasesGained((lease("shardId-000000000002"),)))  # ignored while stopping
    assert world.stopped.result(timeout=5) is None
    assert world.coordinator.history[0] == ("hand_over",)  # while the shards still process
    assert sorted(world.coordinator.history[1:3]) == [
        ("checkpoint", S0, seq(1000)),
        ("checkpoint", S1, seq(1000)),
    ]
    assert world.coordinator.history[3:] == [("stop",)]
    assert world.coordinator.taking_stopped
    wait_for(lambda: not world.manager.is_alive(), what="manager stopped")
