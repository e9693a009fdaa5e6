"""The Scala ConsumerWorkerSpec, ported: probes act as manager, processor and checkpointer.

Plus the bugs the port fixes (integer ordering, no retry reset on a late ack, acks of other
batches not counted) and the shutdown reasons the original did not distinguish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_consumer_support import SHARD, Probe, event, seq, wait_for, worker_conf

from kinesis_actors._config import WorkerConf
from kinesis_actors._consumer.acks import ResponseCollector
from kinesis_actors._consumer.batch import BatchTracker
from kinesis_actors._consumer.messages import (
    Checkpoint,
    CheckpointResult,
    CheckpointWanted,
    ConsumerShutdown,
    ConsumerWorkerFailure,
    EventProcessed,
    GracefulShutdown,
    NothingToCheckpoint,
    NotReady,
    ProcessEvent,
    ProcessingComplete,
    ProcessRecords,
    ReadyToCheckpoint,
    RecordsAcknowledged,
    ShutdownComplete,
    ShutdownReason,
    StartBatch,
)
from kinesis_actors._models import ConsumerEvent, Sentinel

EVENTS = tuple(event(n) for n in range(1, 6))


def acking(
    no_ack: set[Any] = frozenset(),  # type: ignore[assignment]
    failed: set[Any] = frozenset(),  # type: ignore[assignment]
    ack_on_attempt: dict[Any, int] | None = None,
) -> Callable[[Any], None]:
    """The processor autopilot of the Scala spec: ack all but ``no_ack``; ``failed`` are acked
    with successful=False; ``ack_on_attempt[seq] = n`` acks only the n-th delivery."""
    deliveries: dict[Any, int] = {}

    def autopilot(message: Any) -> None:
        if not isinstance(message, ProcessEvent):
            return
        position = message.event.sequence_number
        deliveries[position] = deliveries.get(position, 0) + 1
        if position in no_ack:
            return
        wanted = (ack_on_attempt or {}).get(position)
        if wanted is not None and deliveries[position] != wanted:
            return
        message.acknowledge(position not in failed)

    return autopilot


class World:
    """A BatchTracker wired to three probes."""

    def __init__(self, autopilot: Callable[[Any], None], conf: WorkerConf) -> None:
        self.processor = Probe.start(autopilot)
        self.manager = Probe.start()
        self.checkpointer = Probe.start()
        self.worker = BatchTracker.start(
            SHARD, self.processor.ref, conf, lambda parent: self.checkpointer.ref
        )

    def process(self, events: tuple[ConsumerEvent, ...]) -> None:
        self.worker.tell(StartBatch(events, SHARD, self.manager.ref))

    def ready(self) -> None:
        self.worker.tell(ReadyToCheckpoint())

    def expect_checkpoint(self, position: Any) -> Checkpoint:
        message: Checkpoint = self.checkpointer.expect(Checkpoint)
        assert message.sequence_number == position
        return message

    def stop(self) -> None:
        for probe in (self.processor, self.manager, self.checkpointer):
            if probe.ref.is_alive():
                probe.stop()
        if self.worker.is_alive():
            self.worker.stop()


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(autopilot: Callable[[Any], None] | None = None, **conf: Any) -> World:
        world = World(autopilot or acking(), worker_conf(**conf))
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.stop()


# -- 1. a batch ---------------------------------------------------------------------------------


def test_processes_a_batch_and_notifies_the_manager(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.process(EVENTS)
    received = world.processor.receive_all(ProcessEvent, 5)
    assert [m.event for m in received] == list(EVENTS)
    world.manager.expect(ProcessingComplete(True))


# -- 2. checkpoint the latest processed position ----------------------------------------------


def test_checkpoints_the_latest_processed_when_ready(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete)
    world.ready()
    world.expect_checkpoint(seq(5))


def test_checkpoints_highest_contiguous_with_out_of_order_delivery(
    make_world: Callable[..., World],
) -> None:
    world = make_world(acking(no_ack={seq(3)}))
    world.process(tuple(event(n) for n in (1, 3, 2, 5, 4)))
    world.processor.receive_all(ProcessEvent, 5)
    world.manager.expect_no_message(0.1)
    world.ready()
    world.expect_checkpoint(seq(2))


def test_checkpoints_highest_contiguous_sub_sequence_of_an_aggregate(
    make_world: Callable[..., World],
) -> None:
    world = make_world(acking(no_ack={seq(1, 3)}))
    world.process(tuple(event(1, sub) for sub in range(1, 6)))
    world.processor.receive_all(ProcessEvent, 5)
    world.ready()
    world.expect_checkpoint(seq(1, 2))


def test_skipped_message_counts_as_processed(make_world: Callable[..., World]) -> None:
    world = make_world(acking(failed={seq(3)}))
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete(True))
    world.ready()
    world.expect_checkpoint(seq(5))


def test_remembers_the_old_batch_when_starting_a_new_one(make_world: Callable[..., World]) -> None:
    batch2 = tuple(event(n) for n in range(6, 11))
    world = make_world(acking(no_ack={e.sequence_number for e in batch2}))
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete(True))
    world.process(batch2)
    world.processor.receive_all(ProcessEvent, 10)
    world.ready()
    checkpoint = world.expect_checkpoint(seq(5))
    world.worker.tell(CheckpointResult(checkpoint.sequence_number, True))
    for e in batch2:
        world.worker.tell(EventProcessed(e.sequence_number))
    world.manager.expect(ProcessingComplete(True))
    world.ready()
    world.expect_checkpoint(seq(10))


# -- 3. retries ---------------------------------------------------------------------------------


def test_retries_only_the_unconfirmed_message(make_world: Callable[..., World]) -> None:
    world = make_world(acking(no_ack={seq(3)}), batch_timeout=0.2, failed_message_retries=3)
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.manager.expect_no_message(0.15)
    retried = world.processor.expect(ProcessEvent, timeout=0.5)
    assert retried.event == EVENTS[2]
    world.ready()
    world.expect_checkpoint(seq(2))
    world.worker.tell(EventProcessed(seq(3)))  # the late ack completes the batch
    world.manager.expect(ProcessingComplete(True))
    world.ready()
    world.expect_checkpoint(seq(5))


def test_retries_then_skips_within_the_tolerance(make_world: Callable[..., World]) -> None:
    world = make_world(
        acking(no_ack={seq(3)}),
        batch_timeout=0.1,
        failed_message_retries=1,
        failure_tolerance_percentage=20,
    )
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 6)  # 5 + one retry of event 3
    world.manager.expect(ProcessingComplete(True), timeout=1.0)
    world.ready()
    world.expect_checkpoint(seq(5))


def test_retries_then_fails_outside_the_tolerance(make_world: Callable[..., World]) -> None:
    world = make_world(
        acking(no_ack={seq(3)}),
        batch_timeout=0.1,
        failed_message_retries=2,
        failure_tolerance_percentage=0,
    )
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    for _ in range(2):
        assert world.processor.expect(ProcessEvent, timeout=0.5).event == EVENTS[2]
    failure = world.processor.expect(ConsumerWorkerFailure, timeout=0.5)
    assert failure == ConsumerWorkerFailure((EVENTS[2],), SHARD)
    world.manager.expect(ProcessingComplete(False, (EVENTS[2],)))
    world.ready()
    world.expect_checkpoint(seq(2))


def test_tolerance_is_a_percentage_rounded_down(make_world: Callable[..., World]) -> None:
    # 19 % of 5 records = 0.95 -> 0 allowed: one unacked record is fatal.
    world = make_world(
        acking(no_ack={seq(3)}),
        batch_timeout=0.1,
        failed_message_retries=0,
        failure_tolerance_percentage=19,
    )
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete(False, (EVENTS[2],)), timeout=1.0)


# -- 4-6. what is not checkpointed or confirmed -------------------------------------------------


def test_does_not_checkpoint_the_same_position_twice(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete)
    world.ready()
    checkpoint = world.expect_checkpoint(seq(5))
    world.worker.tell(CheckpointResult(checkpoint.sequence_number, True))
    world.ready()
    world.checkpointer.expect(NothingToCheckpoint())
    world.ready()  # paused: said once
    world.checkpointer.expect_no_message(0.2)


def test_after_nothing_to_checkpoint_wants_one_when_something_newer_is_processed(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    world.ready()
    world.checkpointer.expect(NothingToCheckpoint())
    world.process(EVENTS)
    world.checkpointer.expect(CheckpointWanted())
    world.manager.expect(ProcessingComplete)
    world.checkpointer.expect_no_message(0.2)  # wanted once; the Checkpoint waits for a ready
    world.ready()
    world.expect_checkpoint(seq(5))


def test_does_not_checkpoint_if_no_message_confirmed(make_world: Callable[..., World]) -> None:
    world = make_world(acking(no_ack={e.sequence_number for e in EVENTS}))
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.ready()
    world.checkpointer.expect(NothingToCheckpoint())
    world.checkpointer.expect_no_message(0.2)


def test_does_not_confirm_the_batch_until_all_confirmed(make_world: Callable[..., World]) -> None:
    world = make_world(acking(no_ack={seq(5)}), batch_timeout=5)
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.manager.expect_no_message(0.3)
    world.worker.tell(EventProcessed(seq(5)))
    world.manager.expect(ProcessingComplete(True))


# -- 7-10. graceful shutdown ----------------------------------------------------------------------


def test_graceful_shutdown_without_a_batch(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.manager.expect(ProcessingComplete)
    world.worker.tell(GracefulShutdown(ShutdownReason.REQUESTED, world.manager.ref))
    _checkpoint_and_stop(world, seq(5))


def test_graceful_shutdown_while_processing(make_world: Callable[..., World]) -> None:
    world = make_world(acking(no_ack={seq(4)}), batch_timeout=5)
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.worker.tell(GracefulShutdown(ShutdownReason.REQUESTED, world.manager.ref))
    world.manager.expect(ProcessingComplete(False))
    _checkpoint_and_stop(world, seq(3))


def test_graceful_shutdown_lets_the_batch_in_flight_finish(
    make_world: Callable[..., World],
) -> None:
    # The processor acknowledges seq(4) only once the shutdown was requested: the batch
    # finishes, and its records are checkpointed here (the next owner would repeat them).
    held: list[ProcessEvent] = []

    def autopilot(message: Any) -> None:
        if isinstance(message, ProcessEvent):
            if message.event.sequence_number == seq(4):
                held.append(message)
            else:
                message.acknowledge(True)

    world = make_world(autopilot, batch_timeout=5, shutdown_timeout=10)
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.worker.tell(GracefulShutdown(ShutdownReason.REQUESTED, world.manager.ref))
    world.checkpointer.expect_no_message(0.2)  # waiting for the batch, not aborting it
    held[0].acknowledge(True)
    world.manager.expect(ProcessingComplete(True))
    _checkpoint_and_stop(world, seq(5))


def test_graceful_shutdown_when_the_checkpoint_does_not_answer(
    make_world: Callable[..., World],
) -> None:
    world = make_world(shutdown_timeout=0.2)
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.manager.expect(ProcessingComplete)
    world.worker.tell(GracefulShutdown(ShutdownReason.REQUESTED, world.manager.ref))
    world.expect_checkpoint(seq(5))
    world.processor.expect(ConsumerShutdown(SHARD), timeout=1.0)
    world.manager.expect(ShutdownComplete(False))
    _wait_stopped(world)


def test_graceful_shutdown_with_nothing_to_checkpoint(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.worker.tell(GracefulShutdown(ShutdownReason.REQUESTED, world.manager.ref))
    world.manager.expect(ShutdownComplete(False))
    world.processor.expect(ConsumerShutdown(SHARD))
    world.checkpointer.expect_no_message(0.1)
    _wait_stopped(world)


def test_graceful_shutdown_waits_for_the_forced_checkpoint(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.manager.expect(ProcessingComplete)
    world.ready()
    regular = world.expect_checkpoint(seq(5))
    world.worker.tell(GracefulShutdown(ShutdownReason.REQUESTED, world.manager.ref))
    forced = world.expect_checkpoint(seq(5))
    assert forced.force and not regular.force
    world.worker.tell(CheckpointResult(seq(5), False))  # the regular one's answer comes first
    world.manager.expect_no_message(0.1)
    world.worker.tell(CheckpointResult(seq(5), True))
    world.manager.expect(ShutdownComplete(True))


def _checkpoint_and_stop(world: World, position: Any) -> None:
    """The forced final checkpoint at ``position`` succeeds; the tracker then stops."""
    checkpoint = world.expect_checkpoint(position)
    assert checkpoint.force
    world.worker.tell(CheckpointResult(position, True))
    world.processor.expect(ConsumerShutdown(SHARD))
    world.manager.expect(ShutdownComplete(True))
    _wait_stopped(world)


def _wait_stopped(world: World) -> None:
    wait_for(lambda: not world.worker.is_alive(), what="worker stopped")
    wait_for(lambda: not world.checkpointer.ref.is_alive(), what="checkpointer stopped")


# -- shutdown reasons -----------------------------------------------------------------------------


def test_lease_lost_aborts_the_batch_without_checkpoint(make_world: Callable[..., World]) -> None:
    world = make_world(acking(no_ack={seq(4)}), batch_timeout=5)
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    world.worker.tell(GracefulShutdown(ShutdownReason.LEASE_LOST, world.manager.ref))
    world.manager.expect(ProcessingComplete(False))
    world.manager.expect(ShutdownComplete(False))
    world.processor.expect(ConsumerShutdown(SHARD))
    world.checkpointer.expect_no_message(0.1)
    _wait_stopped(world)


def test_shard_end_checkpoints_shard_end_not_an_older_position(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete)
    world.worker.tell(GracefulShutdown(ShutdownReason.SHARD_END, world.manager.ref))
    checkpoint = world.expect_checkpoint(Sentinel.SHARD_END)
    assert checkpoint.force
    world.worker.tell(CheckpointResult(Sentinel.SHARD_END, True))
    world.manager.expect(ShutdownComplete(True))
    world.checkpointer.expect_no_message(0.1)


# -- the original's bugs, fixed -------------------------------------------------------------------


def test_positions_compare_as_integers(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.process((event(9),))
    world.manager.expect(ProcessingComplete)
    world.ready()
    world.worker.tell(CheckpointResult(world.expect_checkpoint(seq(9)).sequence_number, True))
    world.process((event(10),))  # "10" < "9" as strings
    world.manager.expect(ProcessingComplete)
    world.ready()
    world.expect_checkpoint(seq(10))


def test_a_late_ack_does_not_reset_the_retries(make_world: Callable[..., World]) -> None:
    # Event 1 is acked only on its second delivery (during the retry); 2 and 3 never.
    events = EVENTS[:3]
    world = make_world(
        acking(no_ack={seq(2), seq(3)}, ack_on_attempt={seq(1): 2}),
        batch_timeout=0.1,
        failed_message_retries=1,
    )
    world.process(events)
    world.processor.receive_all(ProcessEvent, 6)  # 3 + 3 re-sent once
    world.processor.expect(ConsumerWorkerFailure, timeout=1.0)
    world.manager.expect(ProcessingComplete(False, events[1:]))
    world.processor.expect_no_message(0.3)  # no third attempt


def test_acks_of_other_batches_are_not_counted(make_world: Callable[..., World]) -> None:
    world = make_world(acking(no_ack={e.sequence_number for e in EVENTS}), batch_timeout=5)
    world.process(EVENTS)
    world.processor.receive_all(ProcessEvent, 5)
    for stray in (99, 100, 101, 102, 103):
        world.worker.tell(EventProcessed(seq(stray)))
    for e in EVENTS[:4]:
        world.worker.tell(EventProcessed(e.sequence_number))
        world.worker.tell(EventProcessed(e.sequence_number))  # duplicates count once
    world.manager.expect_no_message(0.2)
    world.worker.tell(EventProcessed(seq(5)))
    world.manager.expect(ProcessingComplete(True))


# -- protocol details -----------------------------------------------------------------------------


def test_not_ready_lets_the_next_notification_retry(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete)
    world.ready()
    checkpoint = world.expect_checkpoint(seq(5))
    world.ready()  # still in flight: no duplicate
    world.checkpointer.expect_no_message(0.1)
    world.worker.tell(NotReady(checkpoint))
    world.ready()
    world.expect_checkpoint(seq(5))


def test_failed_checkpoint_is_offered_again(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete)
    world.ready()
    world.worker.tell(CheckpointResult(world.expect_checkpoint(seq(5)).sequence_number, False))
    world.ready()
    world.expect_checkpoint(seq(5))


def test_a_batch_sent_while_processing_waits_for_the_first(
    make_world: Callable[..., World],
) -> None:
    world = make_world(acking(no_ack={seq(5)}), batch_timeout=5)
    world.process(EVENTS)
    world.process((event(6),))
    world.processor.receive_all(ProcessEvent, 5)
    world.processor.expect_no_message(0.1)
    world.worker.tell(EventProcessed(seq(5)))
    world.manager.expect(ProcessingComplete(True))
    assert world.processor.expect(ProcessEvent).event == event(6)
    world.manager.expect(ProcessingComplete(True))


def test_crash_is_reported_to_the_supervisor() -> None:
    reported: list[tuple[str, BaseException]] = []
    processor = Probe.start()
    processor.stop()  # telling a dead processor is a failure the supervisor must hear about
    checkpointer = Probe.start()
    worker = BatchTracker.start(
        SHARD,
        processor.ref,
        worker_conf(),
        lambda parent: checkpointer.ref,
        lambda actor, error: reported.append((actor, error)),
    )
    manager = Probe.start()
    worker.tell(StartBatch(EVENTS, SHARD, manager.ref))
    wait_for(lambda: reported, what="failure reported")
    assert reported[0][0] == "BatchTracker"
    wait_for(lambda: not checkpointer.ref.is_alive(), what="checkpointer stopped with its parent")
    manager.stop()


# -- ResponseCollector ------------------------------------------------------------------------------


def test_collector_contiguous_examples() -> None:
    events = tuple(event(n) for n in range(1, 7))
    for acked, expected in (
        ((1, 2, 3, 4, 5, 6), seq(6)),
        ((1, 2, 4, 5, 6), seq(2)),
        ((1,), seq(1)),
        ((), None),
    ):
        collector = ResponseCollector(events, None)
        for n in acked:
            assert collector.ack(seq(n))
        assert collector.latest_confirmed == expected
    carried = ResponseCollector(events, seq(0))
    assert carried.latest_confirmed == seq(0)
    assert carried.latest_event == seq(6)
    assert not carried.ack(seq(7))
    assert [e.sequence_number for e in carried.unconfirmed] == [seq(n) for n in range(1, 7)]


def test_aggregate_with_gaps_in_sub_sequences(make_world: Callable[..., World]) -> None:
    # Sub-sequences 0, 2, 5 (members filtered out or resumed past): contiguity is by position
    # in the batch, not by consecutive numbers.
    events = (event(1, 0), event(1, 2), event(1, 5), event(2, 0))
    world = make_world(acking(no_ack={seq(1, 5)}), batch_timeout=5)
    world.process(events)
    world.processor.receive_all(ProcessEvent, 4)
    world.ready()
    world.expect_checkpoint(seq(1, 2))
    world.worker.tell(EventProcessed(seq(1, 5)))
    world.manager.expect(ProcessingComplete(True))
    world.ready()
    world.expect_checkpoint(seq(2, 0))


def test_a_batch_processor_gets_one_message_per_attempt() -> None:
    processor, manager, checkpointer = Probe.start(), Probe.start(), Probe.start()
    worker = BatchTracker.start(
        SHARD,
        processor.ref,
        worker_conf(batch_timeout=0.1),
        lambda parent: checkpointer.ref,
        batch_processor=True,
    )
    try:
        worker.tell(StartBatch(EVENTS, SHARD, manager.ref))
        batch = processor.expect(ProcessRecords)
        assert batch.events == EVENTS
        worker.tell(RecordsAcknowledged(tuple(e.sequence_number for e in EVENTS[:3])))
        retry = processor.expect(ProcessRecords, timeout=0.5)
        assert retry.events == EVENTS[3:]
        worker.tell(RecordsAcknowledged((seq(4), seq(5))))
        manager.expect(ProcessingComplete(True))
    finally:
        for ref in (worker, processor.ref, manager.ref, checkpointer.ref):
            ref.stop()


def test_skipped_records_are_logged_once_per_batch(
    make_world: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kinesis_actors")
    world = make_world(acking(failed={e.sequence_number for e in EVENTS}))
    world.process(EVENTS)
    world.manager.expect(ProcessingComplete(True))
    skips = [r for r in caplog.records if "Skipping messages" in r.getMessage()]
    assert len(skips) == 1
    assert "skipped=5" in skips[0].getMessage()
