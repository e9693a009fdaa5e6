"""CoroutineProcessor: an ``async def process_record`` as a shard's event-processor actor.

Each batch attempt is one coroutine on the consumer's event loop (`ConsumerLoop`), which awaits
``process_record(event)`` for the records in order; ``worker.maxConcurrentRecords`` lets that
many of them be in flight at once (they may then finish in any order; the checkpoint still
covers only the highest contiguous acknowledged record, see `ResponseCollector`). A record is
acknowledged when its coroutine returns and not acknowledged when it raises, so the batch
protocol re-sends it, and its error goes to the BatchTracker. Acks go in chunks, as with
`RecordProcessor`.

The actor's thread only hands the batch to the loop and waits for it, so the attempts of a
shard never overlap and the loop's thread never waits for anything.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Callable
from typing import Any

import pykka

from kinesis_actors._consumer.event_loop import ConsumerLoop
from kinesis_actors._consumer.function_processor import AttemptReport, FunctionProcessor
from kinesis_actors._consumer.messages import ProcessRecords
from kinesis_actors._models import ConsumerEvent

__all__ = ["CoroutineProcessor"]


class CoroutineProcessor(FunctionProcessor):
    """Awaits ``process_record`` for each record of a ``ProcessRecords`` on the consumer's loop."""

    def __init__(
        self,
        process_record: Callable[[ConsumerEvent], Any],
        shard_id: str,
        loop: ConsumerLoop,
        max_concurrent_records: int,
        traceback_interval: float,
    ) -> None:
        super().__init__(shard_id, traceback_interval)
        self._process_record = process_record
        self._loop = loop
        self._max_concurrent = max_concurrent_records

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessRecords):
            self._failures.flush()
            batch = self._loop.submit(self._process_batch(message.events, message.reply_to))
            # This thread waits, not the loop: the next attempt starts after this one.
            concurrent.futures.wait([batch])
            if not batch.cancelled() and batch.exception() is not None:
                self._log.error("batch coroutine failed", error=repr(batch.exception()))
            self._failures.flush()
            return None
        return self.on_shard_message(message)

    # -- on the event loop -------------------------------------------------------------------

    async def _process_batch(
        self, events: tuple[ConsumerEvent, ...], reply_to: pykka.ActorRef[Any]
    ) -> None:
        report = AttemptReport(reply_to)
        try:
            if self._max_concurrent == 1:
                for event in events:
                    if await self._processed(event, report):
                        report.ack(event.sequence_number)
                        if report.stopped:
                            return
            else:
                await self._process_concurrently(events, report)
        finally:
            report.close()

    async def _process_concurrently(
        self, events: tuple[ConsumerEvent, ...], report: AttemptReport
    ) -> None:
        in_flight: dict[asyncio.Future[bool], ConsumerEvent] = {}

        def collect(done: set[asyncio.Future[bool]]) -> None:
            for task in done:
                event = in_flight.pop(task)
                if task.result():
                    report.ack(event.sequence_number)

        try:
            for event in events:
                while len(in_flight) >= self._max_concurrent:
                    done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    collect(done)
                if report.stopped:
                    return
                in_flight[asyncio.ensure_future(self._processed(event, report))] = event
            while in_flight:
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                collect(done)
        finally:
            for task in in_flight:
                task.cancel()

    async def _processed(self, event: ConsumerEvent, report: AttemptReport) -> bool:
        """Await ``process_record(event)``: True to acknowledge it."""
        try:
            result = self._process_record(event)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self._failures.add(event, exc)
            report.failed(event, exc)
            return False
        return True
