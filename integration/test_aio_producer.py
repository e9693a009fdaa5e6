"""AsyncKinesisProducer on the real engine against kinesalite.

Many tasks put concurrently; every put must be answered exactly once, and the stream read back
(deaggregated) must hold every record exactly once, where its result said. Back-pressure and
cancellation are checked on the same real engine.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from integration.conftest import AwsCalls
from integration.test_producer_actor import read_back
from kinesis_actors import ProducerEvent, UserRecordResult, load_config
from kinesis_actors.aio import AsyncKinesisProducer

#: Hang guard of each test's awaits; never a timed assertion.
GUARD = 120


def producer_config(stream: str, max_outstanding: int | None = None) -> Any:
    """A producer block; a short buffer time, as each task awaits its puts one by one."""
    throttle = f"akka.max-outstanding-requests = {max_outstanding}" if max_outstanding else ""
    return load_config(
        f"""kinesis.aio-producer {{
          stream-name = "{stream}"
          kpl {{ RateLimit = 100000, RecordMaxBufferedTime = 10 }}
          {throttle}
        }}"""
    )


@pytest.mark.asyncio
async def test_ten_thousand_puts_from_fifty_tasks_answered_and_stored_once(
    make_stream: Callable[..., str], kinesis: Any, aws_calls: AwsCalls
) -> None:
    stream = make_stream(2)
    results: dict[int, list[UserRecordResult]] = {}

    async def task(first: int, producer: AsyncKinesisProducer) -> None:
        for n in range(first, first + 200):
            result = await producer.put(ProducerEvent(f"key-{n % 101}", f"record-{n}"))
            results.setdefault(n, []).append(result)

    async with AsyncKinesisProducer(producer_config(stream, 5000), "aio-producer") as producer:
        await asyncio.wait_for(asyncio.gather(*(task(t * 200, producer) for t in range(50))), GUARD)
        stats = producer.stats()

    assert sorted(results) == list(range(10_000))
    assert {len(answers) for answers in results.values()} == {1}, "a put answered twice"
    assert all(answers[0].successful for answers in results.values())
    assert (stats.waiting, stats.in_engine, stats.dropped_results) == (0, 0, 0)
    stored = read_back(kinesis, stream)
    copies = Counter(data for _, _, data in stored)
    assert len(copies) == 10_000 and set(copies.values()) == {1}, "lost or duplicated records"
    where = {data: (shard, seq) for shard, seq, data in stored}
    for n, [result] in results.items():
        assert where[f"record-{n}".encode()] == (result.shard_id, result.sequence_number)
    assert {op for _, _, op in aws_calls.calls} >= {"PutRecords", "ListShards"}
    assert all(thread != threading.get_ident() for thread, _, _ in aws_calls.calls)


@pytest.mark.asyncio
async def test_back_pressure_holds_the_outstanding_records_at_the_limit(
    make_stream: Callable[..., str], kinesis: Any
) -> None:
    stream = make_stream(1)
    limit, tasks, per_task = 40, 200, 10
    samples: list[tuple[int, int]] = []
    async with AsyncKinesisProducer(producer_config(stream, limit), "aio-producer") as producer:

        async def task(t: int) -> None:
            for n in range(per_task):
                await producer.put(ProducerEvent(f"k{t}", f"t{t}-{n}"))
                stats = producer.stats()
                samples.append((stats.in_engine, stats.waiting))

        running = asyncio.gather(*(task(t) for t in range(tasks)))
        await asyncio.sleep(0)  # every task has called put once: 200 accepted
        stats = producer.stats()
        samples.append((stats.in_engine, stats.waiting))
        await asyncio.wait_for(running, GUARD)

    assert samples[0][1] > 0, "the limit was never reached"
    assert max(in_engine for in_engine, _ in samples) == limit
    assert all(in_engine <= limit for in_engine, _ in samples)
    # While records wait, every slot is taken: the limit is reached, not merely respected.
    assert all(in_engine == limit for in_engine, waiting in samples if waiting)
    copies = Counter(data for _, _, data in read_back(kinesis, stream))
    assert copies == Counter(f"t{t}-{n}".encode() for t in range(tasks) for n in range(per_task))


@pytest.mark.asyncio
async def test_cancelled_puts_are_still_sent_once_and_their_results_dropped(
    make_stream: Callable[..., str], kinesis: Any
) -> None:
    """Half the puts are cancelled: some while they wait for a slot, some in the engine."""
    stream = make_stream(1)
    count, limit = 300, 20
    async with AsyncKinesisProducer(producer_config(stream, limit), "aio-producer") as producer:
        puts = [
            asyncio.create_task(producer.put(ProducerEvent(f"k{n}", f"cancel-{n}")))
            for n in range(count)
        ]
        await asyncio.sleep(0)  # all accepted: `limit` in the engine, the rest waiting
        assert producer.stats().waiting == count - limit
        for put in puts[::2]:
            put.cancel()
        outcomes = await asyncio.wait_for(asyncio.gather(*puts, return_exceptions=True), GUARD)
        await producer.flush()
        stats = producer.stats()

    cancelled = [o for o in outcomes if isinstance(o, asyncio.CancelledError)]
    assert len(cancelled) == count // 2
    assert all(isinstance(o, UserRecordResult) for o in outcomes[1::2])
    assert (stats.dropped_results, stats.dropped_failures) == (count // 2, 0)
    copies = Counter(data for _, _, data in read_back(kinesis, stream))
    assert copies == Counter(f"cancel-{n}".encode() for n in range(count)), "lost or duplicated"
