"""AsyncKinesisProducer over a scripted engine: errors, back-pressure order, stop, cancellation.

Each test drives its own loop with ``asyncio.run``; the engine's futures are finished from a
separate thread, as the real engine does. The real engine is exercised in
integration/test_aio_producer.py.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

import pytest
from structlog.testing import capture_logs

from kinesis_actors import (
    Attempt,
    ProducerConf,
    ProducerEvent,
    ProducerStoppedError,
    RecordTooLargeError,
    UserRecordFailedError,
    UserRecordResult,
    load_config,
)
from kinesis_actors._aio.producer import _DRAIN_CHUNK
from kinesis_actors._producer.engine import EngineStats
from kinesis_actors._producer.futures import FinishedSink, RecordFuture, finish_all
from kinesis_actors.aio import AsyncKinesisProducer


class ScriptedEngine:
    """Holds every record's future until the test finishes it (on a thread of its own, in
    batches through the futures' sink, as the real engine does)."""

    def __init__(self, conf: ProducerConf) -> None:
        self.conf = conf
        self.records: list[tuple[ProducerEvent, RecordFuture]] = []
        self.flushes = 0
        self.stopped = False
        self.refuse = False

    def add_user_record(
        self, event: ProducerEvent, *, sink: FinishedSink | None = None, tag: object = None
    ) -> Future[UserRecordResult]:
        if self.refuse:
            raise ProducerStoppedError("engine failed")
        future = RecordFuture(sink, tag)
        if event.partition_key == "too-large":
            future.set_exception(RecordTooLargeError("record too large"))
        self.records.append((event, future))
        return future

    def add_user_records(
        self, events: list[ProducerEvent], tags: list[object], sink: FinishedSink
    ) -> None:
        if self.refuse:
            raise ProducerStoppedError("engine failed")
        for event, tag in zip(events, tags, strict=True):
            self.add_user_record(event, sink=sink, tag=tag)

    def finish(self, count: int | None = None, error: BaseException | None = None) -> None:
        """Finish the first ``count`` unfinished records from another thread."""
        pending = [f for _, f in self.records if not f.done()][:count]

        def run() -> None:
            if error is None:
                finish_all(pending, [UserRecordResult("shardId-0", "1", (), True)] * len(pending))
                return
            for future in pending:
                future.set_exception(error)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()

    def outstanding_records_count(self) -> int:
        return sum(not f.done() for _, f in self.records)

    def flush(self) -> None:
        self.flushes += 1

    def stop(self) -> None:
        self.finish()
        self.stopped = True

    def stats(self) -> EngineStats:
        done = len(self.records) - self.outstanding_records_count()
        return EngineStats(*([0] * 12), outstanding_records=len(self.records) - done)


def conf(max_outstanding: int | None = None) -> ProducerConf:
    throttle = f"akka.max-outstanding-requests = {max_outstanding}" if max_outstanding else ""
    return ProducerConf.from_config(
        load_config(f'kinesis.p {{ stream-name = "s", {throttle} }}'), "p"
    )


def producer(max_outstanding: int | None = None) -> tuple[AsyncKinesisProducer, list[Any]]:
    engines: list[ScriptedEngine] = []

    def factory(c: ProducerConf) -> ScriptedEngine:
        engines.append(ScriptedEngine(c))
        return engines[-1]

    return AsyncKinesisProducer(conf(max_outstanding), engine_factory=factory), engines  # type: ignore[arg-type]


async def settle() -> None:
    """Let the loop run the drains that the engine's thread scheduled."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_built_from_a_config_tree_and_a_name_or_a_producer_conf() -> None:
    tree = load_config(
        'kinesis.orders { stream-name = "orders", akka.max-outstanding-requests = 7 }'
    )
    assert AsyncKinesisProducer(tree, "orders").conf.stream_name == "orders"
    assert AsyncKinesisProducer(ProducerConf.from_config(tree, "orders")).conf.throttling
    assert AsyncKinesisProducer({"RateLimit": 50}, stream_name="s").conf.kpl.rate_limit == 50
    with pytest.raises(TypeError, match="needs a producer name"):
        AsyncKinesisProducer(tree)
    with pytest.raises(TypeError, match="got str"):
        AsyncKinesisProducer("orders")  # type: ignore[arg-type]


def test_puts_are_refused_before_start_and_after_stop() -> None:
    aio, _ = producer()

    async def main() -> None:
        with pytest.raises(ProducerStoppedError, match="not started"):
            aio.put_nowait(ProducerEvent("k", b"x"))
        async with aio:
            with pytest.raises(TypeError, match="expected a ProducerEvent, got str"):
                aio.put_nowait("not an event")  # type: ignore[arg-type]
        with pytest.raises(ProducerStoppedError, match="is stopped"):
            await aio.put(ProducerEvent("k", b"x"))
        with pytest.raises(ProducerStoppedError):
            await aio.start()

    asyncio.run(main())


def test_the_engines_failures_are_raised_by_put() -> None:
    aio, engines = producer()
    failed = UserRecordResult(None, None, (Attempt(0.0, 0.1, "Expired", "too late"),), False)

    async def main() -> None:
        async with aio:
            with pytest.raises(RecordTooLargeError):
                await aio.put(ProducerEvent("too-large", b"x"))
            put = asyncio.ensure_future(aio.put(ProducerEvent("k", b"x")))
            await settle()
            engines[0].finish(error=UserRecordFailedError(failed))
            with pytest.raises(UserRecordFailedError, match="Expired"):
                await put
            engines[0].refuse = True
            with pytest.raises(ProducerStoppedError, match="engine failed"):
                await aio.put(ProducerEvent("k", b"y"))

    asyncio.run(main())


def test_waiting_records_enter_the_engine_in_order_as_slots_free() -> None:
    aio, engines = producer(max_outstanding=2)

    async def main() -> list[str]:
        async with aio:
            futures = [aio.put_nowait(ProducerEvent("k", f"{n}")) for n in range(5)]
            await asyncio.sleep(0)  # those with a slot enter the engine together
            engine = engines[0]
            assert (len(engine.records), aio.stats().waiting) == (2, 3)
            engine.finish(1)
            await settle()
            assert futures[0].done() and (len(engine.records), aio.stats().waiting) == (3, 2)
            engine.finish()
            await settle()
            engine.finish()
            await settle()
            assert all(f.done() for f in futures)
            return [event.payload for event, _ in engine.records]  # type: ignore[misc]

    assert asyncio.run(main()) == ["0", "1", "2", "3", "4"]


def test_stop_sends_the_waiting_records_and_stops_the_engine() -> None:
    aio, engines = producer(max_outstanding=1)

    async def main() -> list[asyncio.Future[UserRecordResult]]:
        async with aio:
            return [aio.put_nowait(ProducerEvent("k", f"{n}")) for n in range(10)]

    futures = asyncio.run(main())
    assert engines[0].stopped and len(engines[0].records) == 10
    assert all(f.result().successful for f in futures)


def test_flush_asks_the_engine_and_waits_for_every_outstanding_record() -> None:
    aio, engines = producer(max_outstanding=3)

    async def main() -> None:
        async with aio:
            futures = [aio.put_nowait(ProducerEvent("k", f"{n}")) for n in range(6)]
            flush = asyncio.ensure_future(aio.flush())
            await settle()
            assert engines[0].flushes == 1 and not flush.done()
            engines[0].finish()
            await settle()
            assert engines[0].flushes == 2  # the three that entered during the flush
            assert not flush.done()
            engines[0].finish()
            await settle()
            assert flush.done() and all(f.done() for f in futures)

    asyncio.run(main())


def test_a_cancelled_put_is_still_sent_and_a_dropped_failure_is_logged() -> None:
    aio, engines = producer(max_outstanding=1)

    async def main() -> None:
        async with aio:
            first = asyncio.ensure_future(aio.put(ProducerEvent("k", b"first")))
            second = asyncio.ensure_future(aio.put(ProducerEvent("k", b"second")))
            await settle()
            first.cancel()
            second.cancel()  # still waiting for the slot
            await settle()
            result = UserRecordResult(None, None, (), False)
            engines[0].finish(error=UserRecordFailedError(result))
            await settle()
            engines[0].finish()
            await settle()
            stats = aio.stats()
            assert (stats.dropped_results, stats.dropped_failures) == (2, 1)
        assert [e.payload for e, _ in engines[0].records] == [b"first", b"second"]

    with capture_logs() as logs:
        asyncio.run(main())
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "a record whose put was cancelled failed"
    ]


def test_a_large_batch_of_results_is_delivered_in_chunks_each_once() -> None:
    """The tasks woken by one chunk run before the next chunk is settled (the loop is never
    held for a whole batch); every result still arrives, once."""
    aio, engines = producer()
    records = 3 * _DRAIN_CHUNK + 5

    async def main() -> list[int]:
        async with aio:
            woken: list[int] = []

            async def put(n: int) -> None:
                await aio.put(ProducerEvent("k", f"{n}"))
                woken.append(n)

            tasks = [asyncio.ensure_future(put(n)) for n in range(records)]
            await settle()
            engines[0].finish()  # one batch of every record
            seen_between_chunks = []
            for _ in range(100):  # bounded: a few loop iterations per chunk
                await asyncio.sleep(0)
                seen_between_chunks.append(len(woken))
                if len(woken) == records:
                    break
            await asyncio.gather(*tasks)
            assert any(0 < n < records for n in seen_between_chunks)
            return woken

    assert sorted(asyncio.run(main())) == list(range(records))


def test_stop_delivers_every_result_of_a_large_batch_before_it_returns() -> None:
    aio, engines = producer()

    async def main() -> list[asyncio.Future[UserRecordResult]]:
        async with aio:
            futures = [aio.put_nowait(ProducerEvent("k", f"{n}")) for n in range(1000)]
        assert engines[0].stopped
        return futures

    futures = asyncio.run(main())
    assert all(f.result().successful for f in futures)
