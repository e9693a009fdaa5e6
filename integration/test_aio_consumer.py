"""Coroutine processors and AsyncKinesisConsumer on kinesalite + dynalite.

The thread of every botocore call is recorded through a client hook (botocore's ``before-call``
event), so "no AWS call runs on the event loop's thread" is checked call by call.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from integration.conftest import AwsCalls
from integration.test_consumer import put
from kinesis_actors import ConsumerEvent, KinesisConsumer, load_config
from kinesis_actors.aio import AsyncKinesisConsumer

#: Hang guard of each wait; never a timed assertion.
GUARD = 60

CONFIG = """
kinesis {{
  application-name = "aio-{uid}"
  it {{
    stream-name = "{stream}"
    worker {{ batchTimeoutSeconds = 0.5, gracefulShutdownHook = false,
             shutdownTimeoutSeconds = 5, maxConcurrentRecords = {concurrency} }}
    checkpointer {{ intervalMillis = 50, notificationDelayMillis = 50 }}
    kcl {{ failoverTimeMillis = 1000, idleTimeBetweenReadsInMillis = 50, maxRecords = 100,
          taskBackoffTimeMillis = 100, releasedLeasePollMillis = 100 }}
  }}
}}
"""


def config(stream: str, concurrency: int = 1) -> Any:
    text = CONFIG.format(uid=uuid.uuid4().hex[:8], stream=stream, concurrency=concurrency)
    return load_config(text)


def test_an_async_def_processor_on_the_consumers_own_loop_sees_every_record_once_and_retries(
    kinesis: Any, make_stream: Callable[..., str], aws_calls: AwsCalls
) -> None:
    stream = make_stream(2)
    payloads = put(kinesis, stream, 300, "rec")
    seen: Counter[str] = Counter()
    threads: set[int] = set()
    all_seen = threading.Event()

    async def process_record(event: ConsumerEvent) -> None:
        threads.add(threading.get_ident())
        payload = event.payload_as_string()
        seen[payload] += 1
        await asyncio.sleep(0)
        if payload == "rec-7" and seen[payload] == 1:
            raise RuntimeError("first attempt fails")  # re-sent after batchTimeoutSeconds
        if len(seen) == len(payloads) and seen["rec-7"] >= 2:
            all_seen.set()

    consumer = KinesisConsumer(process_record, config(stream), "it")
    done = consumer.start()
    try:
        assert all_seen.wait(GUARD), "not every record was processed"
    finally:
        assert consumer.stop()
    done.result(GUARD)

    assert seen["rec-7"] == 2, "the raising coroutine was not retried"
    assert {p for p, n in seen.items() if n != 1} == {"rec-7"}, "a record processed twice"
    assert len(threads) == 1, "one event loop for all shards"
    [loop_thread] = threads
    assert loop_thread != threading.main_thread().ident
    assert all(thread != loop_thread for thread, _, _ in aws_calls.calls)


@pytest.mark.asyncio
async def test_eight_records_in_flight_finish_out_of_order_and_the_checkpoint_stays_contiguous(
    kinesis: Any, make_stream: Callable[..., str], aws_calls: AwsCalls
) -> None:
    stream = make_stream(1)
    count = 400
    payloads = put(kinesis, stream, count, "ooo")
    completed: set[tuple[int, int]] = set()
    finish_order: list[int] = []
    in_flight = [0, 0]  # now, most
    lock = threading.Lock()
    violations: list[tuple[int, int]] = []
    positions: dict[int, tuple[int, int]] = {}
    all_done = asyncio.Event()

    def on_checkpoint(position: tuple[int, int]) -> None:  # an executor thread, before the write
        with lock:
            if any(p <= position and p not in completed for p in positions.values()):
                violations.append(position)

    aws_calls.on_checkpoint = on_checkpoint

    async def process_record(event: ConsumerEvent) -> None:
        n = int(event.payload_as_string().removeprefix("ooo-"))
        seq = event.sequence_number
        position = (int(seq.sequence_number), seq.sub_sequence_number)
        with lock:
            positions[n] = position
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        for _ in range(7 - n % 8):  # later records of a group of 8 finish first
            await asyncio.sleep(0)
        in_flight[0] -= 1
        with lock:
            completed.add(position)
        finish_order.append(n)
        if len(finish_order) == count:
            all_done.set()

    loop_thread = threading.get_ident()
    async with AsyncKinesisConsumer(process_record, config(stream, 8), "it") as consumer:
        await asyncio.wait_for(all_done.wait(), GUARD)
        assert await consumer.stop()

    assert sorted(finish_order) == list(range(count)), "lost or repeated records"
    assert finish_order != sorted(finish_order), "no record finished out of order"
    assert in_flight[1] == 8
    assert aws_calls.checkpoints, "no checkpoint was written"
    assert violations == [], "a checkpoint covered a record not yet processed"
    assert max(aws_calls.checkpoints) == max(positions.values())  # the final checkpoint
    assert len(payloads) == count
    assert all(thread != loop_thread for thread, _, _ in aws_calls.calls)
    operations = {op for _, _, op in aws_calls.calls}
    assert {"GetRecords", "UpdateItem"} <= operations


@pytest.mark.asyncio
async def test_run_stops_cleanly_when_its_task_is_cancelled(
    kinesis: Any, make_stream: Callable[..., str], aws_calls: AwsCalls
) -> None:
    stream = make_stream(1)
    put(kinesis, stream, 50, "c")
    seen: list[str] = []
    some_seen = asyncio.Event()

    async def process_record(event: ConsumerEvent) -> None:
        seen.append(event.payload_as_string())
        some_seen.set()

    consumer = AsyncKinesisConsumer(process_record, config(stream), "it")
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(some_seen.wait(), GUARD)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, GUARD)
    await asyncio.wait_for(consumer.wait(), GUARD)  # stopped gracefully: returns, no error
    assert await consumer.stop()  # idempotent
    assert seen and all(thread != threading.get_ident() for thread, _, _ in aws_calls.calls)
