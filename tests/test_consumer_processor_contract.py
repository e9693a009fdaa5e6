"""Issue 13, items 1, 4 and 6: what a consumer accepts as a processor, awaitables never taken as
success, and failure logs bounded (one line per batch attempt, tracebacks rate-limited)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pykka
import pytest
from test_consumer_support import SHARD, Probe, event, wait_for, worker_conf

from kinesis_actors import KinesisConsumer
from kinesis_actors._consumer.batch import BatchTracker
from kinesis_actors._consumer.failures import FailureLog
from kinesis_actors._consumer.messages import (
    ProcessingComplete,
    ProcessRecords,
    StartBatch,
)
from kinesis_actors._consumer.processor import RecordProcessor

CONFIG = 'kinesis { orders-consumer { stream-name = "orders" } }'

# -- 4. what a KinesisConsumer accepts ----------------------------------------------------------


@pytest.mark.parametrize("processor", ["process_record", 42, None, b"bytes"])
def test_a_processor_that_is_not_callable_is_a_type_error(processor: Any, tmp_path: Path) -> None:
    path = tmp_path / "application.conf"
    path.write_text(CONFIG)
    with pytest.raises(TypeError, match="process_record must be a function") as raised:
        KinesisConsumer(processor, path, "orders-consumer")
    assert type(processor).__name__ in str(raised.value)


def test_a_config_path_is_read_as_load_config_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "application.conf"
    path.write_text(CONFIG)
    for source in (path, str(path)):
        consumer = KinesisConsumer(lambda event: None, source, "orders-consumer")
        assert consumer.conf.stream_name == "orders"
        assert consumer.conf.name == "orders-consumer"


# -- 1. async def processors are refused until they are supported natively ------------------------


async def _async_processor(event: Any) -> None:
    return None


class _AsyncCallable:
    async def __call__(self, event: Any) -> None:
        return None


@pytest.mark.parametrize("processor", [_async_processor, _AsyncCallable()])
def test_an_async_def_processor_is_refused_with_what_to_do(processor: Any, tmp_path: Path) -> None:
    path = tmp_path / "application.conf"
    path.write_text(CONFIG)
    with pytest.raises(TypeError, match="async def") as raised:
        KinesisConsumer(processor, path, "orders-consumer")
    assert "run_coroutine_threadsafe" in str(raised.value)


@pytest.fixture
def batch() -> Any:
    """A BatchTracker over a RecordProcessor running ``process_record`` (two attempts)."""
    started: list[pykka.ActorRef[Any]] = []
    probes: list[Probe] = []

    def run(process_record: Any, events: tuple[Any, ...]) -> Probe:
        manager, checkpointer = Probe.start(), Probe.start()
        probes.extend((manager, checkpointer))
        processor = RecordProcessor.start(process_record, SHARD, 60.0)
        tracker = BatchTracker.start(
            SHARD,
            processor,
            worker_conf(batch_timeout=0.2, failed_message_retries=1),
            lambda parent: checkpointer.ref,
            batch_processor=True,
        )
        started.extend((tracker, processor))
        tracker.tell(StartBatch(events, SHARD, manager.ref))
        return manager

    yield run
    for ref in started:
        ref.stop(timeout=2)
    for probe in probes:
        probe.stop()


def test_a_coroutine_returned_at_run_time_fails_the_record_and_is_retried(batch: Any) -> None:
    calls: list[Any] = []
    returned: list[Any] = []

    def sneaky(event: Any) -> Any:
        calls.append(event)
        returned.append(_async_processor(event))  # the mistake: a coroutine, never awaited
        return returned[-1]

    manager = batch(sneaky, (event(1), event(2)))
    result = manager.expect(ProcessingComplete, timeout=3)
    assert result == ProcessingComplete(False, (event(1), event(2)))
    assert len(calls) == 4  # two records, two attempts: never taken as success
    assert all(coroutine.cr_frame is None for coroutine in returned)  # closed, never run


def test_an_asyncio_future_returned_at_run_time_fails_the_record(batch: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        manager = batch(lambda event: loop.create_future(), (event(1),))
        assert manager.expect(ProcessingComplete, timeout=3) == ProcessingComplete(
            False, (event(1),)
        )
    finally:
        loop.close()


# -- 6. logs a person can read ------------------------------------------------------------------


def _failure_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("kinesis_actors._consumer")]


def test_an_always_failing_processor_logs_one_line_per_attempt_and_one_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(event: Any) -> None:
        raise ValueError("cannot process " + "x" * 10_000)  # a huge message

    caplog.set_level(logging.WARNING, logger="kinesis_actors")
    worker = Probe.start()
    processor = RecordProcessor.start(fail, SHARD, 60.0)
    try:
        events = tuple(event(n) for n in range(1, 1001))
        for _ in range(3):  # three attempts of a 1000-record batch
            processor.tell(ProcessRecords(events, worker.ref))
        wait_for(lambda: len(_failure_lines(caplog)) >= 3, what="three summaries")
        processor.ask(ProcessRecords((), worker.ref))  # every attempt handled
    finally:
        processor.stop()
        worker.stop()
    lines = _failure_lines(caplog)
    assert len(lines) == 3
    messages = [r.getMessage() for r in lines]
    assert all("failed=1000" in m for m in messages)
    assert sum("Traceback" in m for m in messages) == 1  # once per error per interval
    longest = max(len(line) for m in messages for line in m.splitlines())
    assert longest <= 2048
    assert max(len(m) for m in messages) <= 4096


def test_each_distinct_error_gets_its_traceback_once_per_interval() -> None:
    now = [0.0]
    log = FailureLog(SHARD, interval=60.0, clock=lambda: now[0])
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("kinesis_actors._consumer.failures")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.WARNING)
    try:

        def raised(error: BaseException) -> BaseException:
            try:
                raise error
            except BaseException as exc:
                return exc

        for attempt in range(3):
            log.add(event(1), raised(ValueError(f"bad {attempt}")))
            log.add(event(2), raised(KeyError("missing")))
            log.add(event(3), "process_record's future was cancelled")
            log.flush()
            now[0] += 30.0  # tracebacks due again at the third flush (60 s later)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    messages = [r.getMessage() for r in records]
    tracebacks = [m for m in messages if "Traceback" in m]
    assert len(tracebacks) == 4  # ValueError and KeyError, at flushes 1 and 3
    summaries = [m for m in messages if "failed=3" in m]
    assert len(summaries) == 3
    assert all("cancelled" in m for m in summaries)
