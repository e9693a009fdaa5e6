"""RecordProcessor: the process_record contract (return, future, raise, hang)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from test_consumer_support import SHARD, Probe, event, seq

from kinesis_actors._consumer.event_loop import ConsumerLoop
from kinesis_actors._consumer.messages import (
    EventProcessed,
    ProcessRecords,
    RecordsAcknowledged,
    RecordsFailed,
)
from kinesis_actors._consumer.processor import RecordProcessor

#: These processors return no awaitable, so this loop never starts (see test_consumer_coroutines).
NO_LOOP = ConsumerLoop(None, "unused")


@pytest.fixture
def run() -> Iterator[Callable[[Callable[[Any], object]], Probe]]:
    """Start a RecordProcessor for ``process_record``, send it a batch of event 1; returns the
    probe that gets the acks."""
    refs: list[pykka.ActorRef[Any]] = []
    probes: list[Probe] = []

    def start(process_record: Callable[[Any], object]) -> Probe:
        worker = Probe.start()
        processor = RecordProcessor.start(process_record, SHARD, 60.0, NO_LOOP)
        refs.append(processor)
        probes.append(worker)
        processor.tell(ProcessRecords((event(1),), worker.ref))
        return worker

    yield start
    for ref in refs:
        ref.stop(timeout=2)
    for probe in probes:
        probe.stop()


def test_returning_none_acknowledges(run: Callable[..., Probe]) -> None:
    run(lambda e: None).expect(RecordsAcknowledged((seq(1),)))


def test_returning_another_value_acknowledges(run: Callable[..., Probe]) -> None:
    run(lambda e: "done").expect(RecordsAcknowledged((seq(1),)))


def test_raising_does_not_acknowledge_and_reports_the_exception(run: Callable[..., Probe]) -> None:
    def fail(e: Any) -> None:
        raise ValueError("bad record")

    worker = run(fail)
    worker.expect(RecordsFailed(((seq(1), "ValueError: bad record"),)))
    worker.expect_no_message(0.2)


def test_future_acknowledges_on_success_only(run: Callable[..., Probe]) -> None:
    futures: list[concurrent.futures.Future[Any]] = []

    def later(e: Any) -> concurrent.futures.Future[Any]:
        futures.append(concurrent.futures.Future())
        return futures[-1]

    worker = run(later)
    worker.expect_no_message(0.1)
    futures[0].set_result(None)
    worker.expect(EventProcessed(seq(1), True))


@pytest.mark.parametrize("outcome", ["fail", "cancel"])
def test_failed_or_cancelled_future_does_not_acknowledge(
    run: Callable[..., Probe], outcome: str
) -> None:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    worker = run(lambda e: future)
    if outcome == "fail":
        future.set_exception(RuntimeError("downstream down"))
        error = "RuntimeError: downstream down"
    else:
        future.cancel()
        error = "process_record's future or coroutine was cancelled"
    worker.expect(RecordsFailed(((seq(1), error),)))
    worker.expect_no_message(0.2)


class Echo(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        if message == "fail":
            raise RuntimeError("actor failed")
        return message


@pytest.mark.parametrize(("ask", "acknowledged"), [("ok", True), ("fail", False)])
def test_pykka_future_acknowledges_on_success_only(
    run: Callable[..., Probe], ask: str, acknowledged: bool
) -> None:
    echo = Echo.start()
    try:
        worker = run(lambda e: echo.ask(ask, block=False))
        if acknowledged:
            worker.expect(EventProcessed(seq(1), True))
        else:
            worker.expect(RecordsFailed(((seq(1), "RuntimeError: actor failed"),)))
            worker.expect_no_message(0.2)
    finally:
        echo.stop()


def test_a_hanging_callback_does_not_block_stopping(run: Callable[..., Probe]) -> None:
    release = threading.Event()
    worker = run(lambda e: release.wait())
    worker.expect_no_message(0.1)
    processor = pykka.ActorRegistry.get_by_class(RecordProcessor)[0]
    processor.stop(block=False)  # returns at once; the daemon thread finishes when released
    release.set()


def test_acknowledges_a_batch_in_order_in_chunks() -> None:
    seen: list[Any] = []
    worker = Probe.start()
    processor = RecordProcessor.start(
        lambda e: seen.append(e.sequence_number), SHARD, 60.0, NO_LOOP
    )
    try:
        events = tuple(event(n) for n in range(1200))
        processor.tell(ProcessRecords(events, worker.ref))
        acked: list[Any] = []
        while len(acked) < len(events):
            chunk = worker.expect(RecordsAcknowledged).sequence_numbers
            assert 0 < len(chunk) <= 500
            acked.extend(chunk)
        assert acked == seen == [e.sequence_number for e in events]
    finally:
        processor.stop()
        worker.stop()


def test_stops_processing_a_batch_once_the_shard_is_gone() -> None:
    seen: list[Any] = []
    worker = Probe.start()
    worker.stop()  # the shard's BatchTracker has stopped
    processor = RecordProcessor.start(seen.append, SHARD, 60.0, NO_LOOP)
    try:
        processor.tell(ProcessRecords(tuple(event(n) for n in range(2000)), worker.ref))
    finally:
        processor.stop()
    assert len(seen) <= 500  # the first acks found nobody: the rest was dropped
