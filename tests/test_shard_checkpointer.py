"""ShardCheckpointer: the Scala CheckpointWorkerSpec, ported (timings scaled down), plus each
failure kind and the SHARD_END retry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_consumer_support import Probe, checkpointer_conf, seq

from kinesis_actors._consumer.checkpointer import ShardCheckpointer
from kinesis_actors._consumer.executor import BlockingExecutor
from kinesis_actors._consumer.messages import (
    Checkpoint,
    CheckpointResult,
    CheckpointWanted,
    NothingToCheckpoint,
    NotReady,
    ReadyToCheckpoint,
)
from kinesis_actors._errors import (
    DependencyError,
    InvalidStateError,
    ShutdownError,
    ThrottlingError,
)
from kinesis_actors._models import Sentinel

NOTIFY, INTERVAL, BACKOFF = 0.1, 0.4, 0.6


class Checkpointer:
    """Records calls; raises the queued errors first."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.children: list[Any] = []
        self.errors: list[BaseException] = []

    def __call__(self, position: Any, child_shards: Any = None) -> None:
        self.calls.append(position)
        self.children.append(child_shards)
        if self.errors:
            raise self.errors.pop(0)


@pytest.fixture
def world() -> Iterator[tuple[Probe, Checkpointer, Callable[[], Any]]]:
    parent = Probe.start()
    checkpointer = Checkpointer()
    executor = BlockingExecutor(4, idle_timeout=5.0)
    refs: list[Any] = []

    def start() -> Any:
        conf = checkpointer_conf(notification_delay=NOTIFY, interval=INTERVAL, backoff=BACKOFF)
        ref = ShardCheckpointer.start(
            parent.ref, checkpointer, conf, "shard-1", executor, retry_delay=BACKOFF
        )
        refs.append(ref)
        return ref

    yield parent, checkpointer, start
    for ref in refs:
        ref.stop()
    parent.stop()
    executor.shutdown()


def test_notifies_when_ready(world: tuple[Probe, Checkpointer, Callable[[], Any]]) -> None:
    parent, _, start = world
    start()
    parent.expect(ReadyToCheckpoint(), timeout=NOTIFY * 3)
    parent.expect(ReadyToCheckpoint(), timeout=NOTIFY * 3)


def test_nothing_to_checkpoint_pauses_notifications_until_a_checkpoint_is_wanted(
    world: tuple[Probe, Checkpointer, Callable[[], Any]],
) -> None:
    parent, checkpointer, start = world
    worker = start()
    parent.expect(ReadyToCheckpoint(), timeout=NOTIFY * 3)
    worker.tell(NothingToCheckpoint())
    parent.drain()  # a notification may have crossed it
    parent.expect_no_message(NOTIFY * 4)
    worker.tell(CheckpointWanted())
    parent.expect(ReadyToCheckpoint(), timeout=NOTIFY * 3)
    worker.tell(Checkpoint(seq(1), reply_to=parent.ref))
    assert parent.expect(CheckpointResult, timeout=2).success
    assert checkpointer.calls == [seq(1)]


def test_checkpoints_when_ready_and_pauses_notifications_for_the_interval(
    world: tuple[Probe, Checkpointer, Callable[[], Any]],
) -> None:
    parent, checkpointer, start = world
    worker = start()
    parent.expect(ReadyToCheckpoint())
    parent.drain()
    worker.tell(Checkpoint(seq(10, 1), reply_to=parent.ref))
    parent.expect(CheckpointResult(seq(10, 1), True))
    assert checkpointer.calls == [seq(10, 1)]
    parent.drain()
    parent.expect_no_message(INTERVAL * 0.75)
    parent.expect(ReadyToCheckpoint(), timeout=INTERVAL + NOTIFY * 3)


@pytest.mark.parametrize(
    "error",
    [
        ThrottlingError("throttled"),
        InvalidStateError("no table"),
        ShutdownError("lease lost"),
        DependencyError("unreachable"),
        RuntimeError("bug"),
    ],
)
def test_backs_off_after_any_failure(
    world: tuple[Probe, Checkpointer, Callable[[], Any]], error: BaseException
) -> None:
    parent, checkpointer, start = world
    worker = start()
    checkpointer.errors.append(error)
    worker.tell(Checkpoint(seq(10), reply_to=parent.ref))
    parent.expect(CheckpointResult(seq(10), False), timeout=1.0)
    parent.drain()
    started = time.monotonic()
    parent.expect(ReadyToCheckpoint(), timeout=BACKOFF + NOTIFY * 3)
    assert time.monotonic() - started >= BACKOFF - INTERVAL * 0.5  # the backoff, not the interval


def test_not_ready_when_a_checkpoint_arrives_while_waiting(
    world: tuple[Probe, Checkpointer, Callable[[], Any]],
) -> None:
    parent, checkpointer, start = world
    worker = start()
    first = Checkpoint(seq(10), reply_to=parent.ref)
    worker.tell(first)
    parent.expect(CheckpointResult(seq(10), True), timeout=1.0)
    second = Checkpoint(seq(11), reply_to=parent.ref)
    worker.tell(second)
    assert parent.expect(NotReady, timeout=1.0) == NotReady(second)
    assert checkpointer.calls == [seq(10)]


def test_forced_checkpoint_runs_anyway_and_ends_notifications(
    world: tuple[Probe, Checkpointer, Callable[[], Any]],
) -> None:
    parent, checkpointer, start = world
    worker = start()
    worker.tell(Checkpoint(seq(10), reply_to=parent.ref))
    parent.ignore = (ReadyToCheckpoint,)
    parent.expect(CheckpointResult(seq(10), True), timeout=1.0)
    worker.tell(Checkpoint(seq(11), force=True, reply_to=parent.ref))
    parent.expect(CheckpointResult(seq(11), True))
    parent.ignore = ()
    parent.drain()
    parent.expect_no_message(INTERVAL + BACKOFF)
    assert checkpointer.calls == [seq(10), seq(11)]


def test_asked_checkpoint_answers_with_the_result(
    world: tuple[Probe, Checkpointer, Callable[[], Any]],
) -> None:
    _, checkpointer, start = world
    worker = start()
    assert worker.ask(Checkpoint(seq(7))) == CheckpointResult(seq(7), True)
    checkpointer.errors.append(ThrottlingError("throttled"))
    assert worker.ask(Checkpoint(seq(8), force=True)) == CheckpointResult(seq(8), False)


def test_a_forced_shard_end_is_retried_until_it_succeeds_with_its_child_shards(
    world: tuple[Probe, Checkpointer, Callable[[], Any]],
) -> None:
    parent, checkpointer, start = world
    worker = start()
    parent.ignore = (ReadyToCheckpoint,)
    children = ({"ShardId": "shardId-000000000001"}, {"ShardId": "shardId-000000000002"})
    checkpointer.errors.extend([ThrottlingError("1"), DependencyError("2")])
    worker.tell(
        Checkpoint(Sentinel.SHARD_END, force=True, reply_to=parent.ref, child_shards=children)
    )
    parent.expect(CheckpointResult(Sentinel.SHARD_END, True), timeout=BACKOFF * 2 + 2.0)
    assert checkpointer.calls == [Sentinel.SHARD_END] * 3
    assert checkpointer.children == [children] * 3


def test_a_forced_shard_end_is_not_retried_once_the_lease_is_gone(
    world: tuple[Probe, Checkpointer, Callable[[], Any]],
) -> None:
    parent, checkpointer, start = world
    worker = start()
    parent.ignore = (ReadyToCheckpoint,)
    checkpointer.errors.append(ShutdownError("lease lost"))
    worker.tell(Checkpoint(Sentinel.SHARD_END, force=True, reply_to=parent.ref))
    parent.expect(CheckpointResult(Sentinel.SHARD_END, False), timeout=1.0)
    parent.expect_no_message(BACKOFF * 1.5)
    assert checkpointer.calls == [Sentinel.SHARD_END]
