"""Issue 13, items 4 and 6: what a consumer accepts as a processor, and failure logs bounded (one
line per batch attempt, tracebacks rate-limited). Coroutine processors and returned awaitables
(item 1) are awaited natively now: see test_consumer_coroutines."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from test_consumer_support import SHARD, Probe, event, wait_for

from kinesis_actors import KinesisConsumer
from kinesis_actors._consumer.event_loop import ConsumerLoop
from kinesis_actors._consumer.failures import FailureLog
from kinesis_actors._consumer.messages import (
    ProcessRecords,
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
    processor = RecordProcessor.start(fail, SHARD, 60.0, ConsumerLoop(None, "unused"))
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
