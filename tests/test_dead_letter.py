"""The dead-letter path: skipped records are kept before the checkpoint may pass them.

A BatchTracker wired to probes (processor, manager, checkpointer) and a fake dead-letter sink
that can hold, fail or succeed; the config keys; the dead-letter record's format.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_batch_tracker import acking
from test_consumer_support import SHARD, Probe, event, seq, worker_conf

from kinesis_actors import KinesisConsumer
from kinesis_actors._config import ConsumerConf, load_config
from kinesis_actors._consumer.batch import BatchTracker
from kinesis_actors._consumer.dead_letter import (
    SKIPPED,
    UNACKNOWLEDGED,
    SkippedRecords,
    chain,
    dead_letter_record,
    user_handler,
)
from kinesis_actors._consumer.executor import BlockingExecutor
from kinesis_actors._consumer.messages import (
    Checkpoint,
    ConsumerWorkerFailure,
    ProcessEvent,
    ProcessingComplete,
    ReadyToCheckpoint,
    RecordsFailed,
    StartBatch,
)
from kinesis_actors._errors import ConfigError

EVENTS = tuple(event(n) for n in range(1, 6))


class FakeSink:
    """Records what it is given; fails with ``error`` if set; waits for ``gate`` if given."""

    def __init__(self, error: Exception | None = None, gate: threading.Event | None = None):
        self.error = error
        self.gate = gate
        self.received: list[SkippedRecords] = []
        self.called = threading.Event()

    def __call__(self, skipped: SkippedRecords) -> None:
        self.received.append(skipped)
        self.called.set()
        if self.gate is not None:
            assert self.gate.wait(10), "hang guard"
        if self.error is not None:
            raise self.error


class World:
    def __init__(self, autopilot: Callable[[Any], None], sink: FakeSink, **conf: Any) -> None:
        self.executor = BlockingExecutor(2, 1.0, "test-dead-letter")
        self.processor = Probe.start(autopilot)
        self.manager = Probe.start()
        self.checkpointer = Probe.start()
        self.worker = BatchTracker.start(
            SHARD,
            self.processor.ref,
            worker_conf(**conf),
            lambda parent: self.checkpointer.ref,
            dead_letter=sink,
            executor=self.executor,
        )

    def checkpoint_offered(self) -> Any:
        self.worker.tell(ReadyToCheckpoint())
        message: Checkpoint = self.checkpointer.expect(Checkpoint)
        return message.sequence_number

    def stop(self) -> None:
        for probe in (self.processor, self.manager, self.checkpointer):
            if probe.ref.is_alive():
                probe.stop()
        if self.worker.is_alive():
            self.worker.stop()
        self.executor.shutdown()


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    worlds: list[World] = []

    def make(autopilot: Callable[[Any], None], sink: FakeSink, **conf: Any) -> World:
        world = World(autopilot, sink, **conf)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        world.stop()


def test_a_record_skipped_by_the_processor_is_checkpointed_past_only_after_the_sink(
    make_world: Callable[..., World],
) -> None:
    gate = threading.Event()
    sink = FakeSink(gate=gate)
    world = make_world(acking(failed={seq(3)}), sink)
    world.worker.tell(StartBatch(EVENTS, SHARD, world.manager.ref))
    assert sink.called.wait(5)
    # The sink has not returned: the checkpoint stays below the skipped record.
    assert world.checkpoint_offered() == seq(2)
    world.manager.expect_no_message(0.05)
    gate.set()
    world.manager.expect(ProcessingComplete(True))
    assert world.checkpoint_offered() == seq(5)
    [skipped] = sink.received
    assert (skipped.events, skipped.shard_id, skipped.reason) == ((EVENTS[2],), SHARD, SKIPPED)


def test_records_forgiven_by_the_tolerance_go_to_the_sink_then_the_batch_completes(
    make_world: Callable[..., World],
) -> None:
    sink = FakeSink()
    world = make_world(
        acking(no_ack={seq(3)}),
        sink,
        batch_timeout=0.05,
        failed_message_retries=1,
        failure_tolerance_percentage=20,
    )
    world.worker.tell(StartBatch(EVENTS, SHARD, world.manager.ref))
    world.manager.expect(ProcessingComplete(True), timeout=5)
    assert world.checkpoint_offered() == seq(5)
    [skipped] = sink.received
    assert skipped.events == (EVENTS[2],) and skipped.reason == UNACKNOWLEDGED
    assert skipped.error == "not acknowledged after 2 attempt(s) of 0.05 s each"


def test_skipped_records_carry_the_last_exception_reported_for_each(
    make_world: Callable[..., World],
) -> None:
    def autopilot(message: Any) -> None:
        if not isinstance(message, ProcessEvent):
            return
        position = message.event.sequence_number
        if position == seq(2):
            message.acknowledge(False, ValueError("bad payload"))
        elif position == seq(3):  # as a RecordProcessor reports a raise: no ack, the error
            message.reply_to.tell(RecordsFailed(((position, "KeyError: 'id'"),)))
        elif position != seq(4):  # seq(4) hangs: no exception known
            message.acknowledge()

    sink = FakeSink()
    world = make_world(
        autopilot,
        sink,
        batch_timeout=0.2,
        failed_message_retries=1,
        failure_tolerance_percentage=40,
    )
    world.worker.tell(StartBatch(EVENTS, SHARD, world.manager.ref))
    world.manager.expect(ProcessingComplete(True), timeout=5)
    skipped, forgiven = sink.received
    assert (skipped.reason, skipped.last_errors) == (SKIPPED, ("ValueError: bad payload",))
    assert forgiven.events == EVENTS[2:4] and forgiven.reason == UNACKNOWLEDGED
    assert forgiven.last_errors == ("KeyError: 'id'", forgiven.error)
    assert forgiven.error == "not acknowledged after 2 attempt(s) of 0.2 s each"


def test_a_failing_sink_fails_the_batch_and_the_checkpoint_never_passes_the_record(
    make_world: Callable[..., World],
) -> None:
    error = RuntimeError("dead-letter stream unreachable")
    sink = FakeSink(error=error)
    world = make_world(
        acking(no_ack={seq(3)}),
        sink,
        batch_timeout=0.05,
        failed_message_retries=0,
        failure_tolerance_percentage=20,
    )
    world.processor.ignore = (ProcessEvent,)
    world.worker.tell(StartBatch(EVENTS, SHARD, world.manager.ref))
    world.manager.expect(ProcessingComplete(False, (EVENTS[2],), error), timeout=5)
    world.processor.expect(ConsumerWorkerFailure((EVENTS[2],), SHARD))
    assert world.checkpoint_offered() == seq(2)
    world.worker.tell(ReadyToCheckpoint())
    world.checkpointer.expect_no_message(0.1)  # nothing newer than seq(2), ever


def test_both_kinds_of_skipped_records_reach_the_sink_and_a_failure_keeps_both(
    make_world: Callable[..., World],
) -> None:
    sink = FakeSink(error=RuntimeError("no"))
    world = make_world(
        acking(no_ack={seq(4)}, failed={seq(2)}),
        sink,
        batch_timeout=0.05,
        failed_message_retries=0,
        failure_tolerance_percentage=20,
    )
    world.processor.ignore = (ProcessEvent,)
    world.worker.tell(StartBatch(EVENTS, SHARD, world.manager.ref))
    complete = world.manager.expect(ProcessingComplete, timeout=5)
    assert not complete.successful
    assert complete.failed_events == (EVENTS[1], EVENTS[3])
    assert world.checkpoint_offered() == seq(1)
    assert [s.reason for s in sink.received] == [SKIPPED]  # the first failure stops the chain


def test_chain_runs_in_order_and_stops_at_the_first_failure() -> None:
    calls: list[str] = []

    def ok(skipped: SkippedRecords) -> None:
        calls.append("ok")

    def fail(skipped: SkippedRecords) -> None:
        calls.append("fail")
        raise RuntimeError("fail")

    skipped = SkippedRecords(EVENTS, SHARD, SKIPPED, "e")
    run = chain([ok, fail, ok])
    assert run is not None
    with pytest.raises(RuntimeError):
        run(skipped)
    assert calls == ["ok", "fail"]
    assert chain([]) is None


def test_user_handler_waits_for_a_future_it_returns() -> None:
    import concurrent.futures

    future: concurrent.futures.Future[None] = concurrent.futures.Future()
    future.set_exception(OSError("disk full"))
    seen: list[tuple[Any, ...]] = []

    def on_skipped(events: Any, shard_id: str, reason: str) -> Any:
        seen.append((events, shard_id, reason))
        return future

    with pytest.raises(OSError, match="disk full"):
        user_handler(on_skipped)(SkippedRecords(EVENTS[:1], SHARD, UNACKNOWLEDGED, "e"))
    assert seen == [(EVENTS[:1], SHARD, UNACKNOWLEDGED)]


def test_user_handler_gives_the_last_errors_to_a_function_of_four_parameters() -> None:
    seen: list[tuple[Any, ...]] = []

    def on_skipped(events: Any, shard_id: str, reason: str, errors: Any) -> None:
        seen.append((events, shard_id, reason, errors))

    skipped = SkippedRecords(
        EVENTS[:2], SHARD, UNACKNOWLEDGED, "timed out", ("ValueError: x", None)
    )
    user_handler(on_skipped)(skipped)
    assert seen == [(EVENTS[:2], SHARD, UNACKNOWLEDGED, ("ValueError: x", "timed out"))]


def test_dead_letter_record_format() -> None:
    record = event(7, 2, payload=b"\x00\xffpayload")
    skipped = SkippedRecords((record,), SHARD, UNACKNOWLEDGED, "timed out")
    document = json.loads(dead_letter_record(skipped, record, "orders"))
    assert document == {
        "stream": "orders",
        "shardId": SHARD,
        "sequenceNumber": "7",
        "subSequenceNumber": 2,
        "partitionKey": "pk",
        "explicitHashKey": None,
        "approximateArrivalTimestamp": "2026-01-01T00:00:00+00:00",
        "reason": UNACKNOWLEDGED,
        "lastError": "timed out",
        "data": base64.b64encode(b"\x00\xffpayload").decode(),
    }
    exception = json.loads(dead_letter_record(skipped, record, "orders", "ValueError: bad"))
    assert exception["lastError"] == "ValueError: bad"


# -- configuration ------------------------------------------------------------------------------


def _conf(worker: str) -> ConsumerConf:
    return ConsumerConf.from_config(
        load_config(f"kinesis {{ c {{ stream-name = s, worker {{ {worker} }} }} }}"), "c"
    )


def test_on_skipped_is_imported_from_a_dotted_path() -> None:
    assert _conf('onSkipped = "json:dumps"').worker.on_skipped is json.dumps
    assert _conf('onSkipped = "json.dumps"').worker.on_skipped is json.dumps
    assert _conf('deadLetterStream = "dlq"').worker.dead_letter_stream == "dlq"
    unset = _conf("")
    assert unset.worker.on_skipped is None and unset.worker.dead_letter_stream is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("json:no_such_function", "has no attribute 'no_such_function'"),
        ("json:__name__", "not a callable"),
        ("justaname", "expected 'package.module:function'"),
    ],
)
def test_a_bad_on_skipped_is_a_config_error_naming_the_key(value: str, why: str) -> None:
    with pytest.raises(ConfigError, match=r"kinesis\.c\.worker\.onSkipped: ") as error:
        _conf(f'onSkipped = "{value}"')
    assert why in str(error.value)


def test_on_skipped_argument_is_checked() -> None:
    conf = _conf("")
    with pytest.raises(TypeError, match="on_skipped must be a function"):
        KinesisConsumer(print, conf, on_skipped="json:dumps")  # type: ignore[arg-type]
    consumer = KinesisConsumer(print, conf, on_skipped=json.dumps)
    assert consumer.conf.worker.on_skipped is json.dumps
    with pytest.raises(ConfigError, match=r"kinesis\.c\.worker\.onSkipped: .*set one of the two"):
        KinesisConsumer(print, _conf('onSkipped = "json:dumps"'), on_skipped=json.dumps)
