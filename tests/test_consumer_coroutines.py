"""Coroutine processors: the ConsumerLoop, CoroutineProcessor and awaitables from a function."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from test_consumer_support import SHARD, Probe, event, seq, worker_conf

from kinesis_actors._consumer.coroutine_processor import CoroutineProcessor
from kinesis_actors._consumer.event_loop import ConsumerLoop
from kinesis_actors._consumer.messages import (
    EventProcessed,
    ProcessRecords,
    RecordsAcknowledged,
    RecordsFailed,
)
from kinesis_actors._consumer.processor import RecordProcessor, start_processor


@pytest.fixture
def loop() -> Iterator[ConsumerLoop]:
    consumer_loop = ConsumerLoop(None, "test")
    yield consumer_loop
    consumer_loop.close()


def test_async_def_gets_a_coroutine_processor_and_a_function_a_record_processor(
    loop: ConsumerLoop,
) -> None:
    async def coroutine(e: Any) -> None: ...

    refs = [
        start_processor(coroutine, SHARD, worker_conf(), loop),
        start_processor(lambda e: None, SHARD, worker_conf(), loop),
    ]
    try:
        assert [ref.actor_class for ref in refs] == [CoroutineProcessor, RecordProcessor]
    finally:
        for ref in refs:
            ref.stop()


def test_coroutines_run_in_order_on_one_loop_thread_and_a_raise_is_not_acknowledged(
    loop: ConsumerLoop,
) -> None:
    order: list[int] = []
    threads: set[int] = set()

    async def process_record(e: Any) -> None:
        threads.add(threading.get_ident())
        await asyncio.sleep(0)
        n = int(e.sequence_number.sequence_number)
        order.append(n)
        if n == 3:
            raise ValueError("bad record")

    probe = Probe.start()
    processor = CoroutineProcessor.start(process_record, SHARD, loop, 1, 60.0)
    try:
        processor.tell(ProcessRecords(tuple(event(n) for n in range(1, 6)), probe.ref))
        acked: list[Any] = []
        while len(acked) < 4:
            acked.extend(probe.expect(RecordsAcknowledged).sequence_numbers)
        assert acked == [seq(1), seq(2), seq(4), seq(5)]
        probe.expect(RecordsFailed(((seq(3), "ValueError: bad record"),)))
        assert order == [1, 2, 3, 4, 5]
        assert len(threads) == 1 and threading.get_ident() not in threads
    finally:
        processor.stop()
        probe.stop()


def test_a_function_returning_coroutines_has_them_awaited_one_at_a_time(
    loop: ConsumerLoop,
) -> None:
    running = [0, 0]  # now, most

    async def handle(e: Any) -> None:
        running[0] += 1
        running[1] = max(running)
        await asyncio.sleep(0.001)
        running[0] -= 1

    probe = Probe.start()

    def plain(e: Any) -> Any:  # a plain function that returns a coroutine
        return handle(e)

    processor = RecordProcessor.start(plain, SHARD, 60.0, loop, 1)
    try:
        processor.tell(ProcessRecords(tuple(event(n) for n in range(1, 11)), probe.ref))
        acked = [probe.expect(EventProcessed).sequence_number for _ in range(10)]
        assert acked == [seq(n) for n in range(1, 11)]  # in order: one in flight at a time
        assert running[1] == 1
    finally:
        processor.stop()
        probe.stop()


def test_after_close_a_submitted_coroutine_is_cancelled_and_never_run() -> None:
    consumer_loop = ConsumerLoop(None, "test")
    ran: list[bool] = []

    async def work() -> None:
        ran.append(True)

    assert consumer_loop.submit(work()).result(5) is None
    consumer_loop.close()
    assert consumer_loop.submit(work()).cancelled()
    assert ran == [True]
