"""CoroutineProcessor: an ``async def process_record`` as a shard's event-processor actor.

Each batch attempt is one coroutine on the consumer's event loop (`ConsumerLoop`), which awaits
``process_record(event)`` for the records in order; ``worker.maxConcurrentRecords`` lets that
many of them be in flight at once (they may then finish in any order; the checkpoint still
covers only the highest contiguous acknowledged record, see `ResponseCollector`). A record is
acknowledged when its coroutine returns and not acknowledged when it raises, so the batch
protocol re-sends it. Acks go in chunks, as with `RecordProcessor`.

The actor's thread only hands the batch to the loop and waits for it, so the attempts of a
shard never overlap and the loop's thread never waits for anything.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import time
from collections.abc import Callable
from typing import Any

import pykka

from kinesis_actors._actors import tell
from kinesis_actors._consumer.event_loop import ConsumerLoop
from kinesis_actors._consumer.failures import FailureLog
from kinesis_actors._consumer.messages import (
    ConsumerShutdown,
    ConsumerWorkerFailure,
    ProcessRecords,
    RecordsAcknowledged,
)
from kinesis_actors._logging import get_logger
from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent

__all__ = ["CoroutineProcessor"]

#: As in `RecordProcessor`: acks every ``_ACK_CHUNK`` records or ``_ACK_DELAY`` seconds.
_ACK_CHUNK = 500
_ACK_DELAY = 0.005


class _Acks:
    """The acks of one batch attempt, sent in chunks; ``stopped`` once the shard is gone."""

    __slots__ = ("_flushed", "_pending", "_reply_to", "stopped")

    def __init__(self, reply_to: pykka.ActorRef[Any]) -> None:
        self._reply_to = reply_to
        self._pending: list[CompoundSequenceNumber] = []
        self._flushed = time.monotonic()
        self.stopped = False

    def add(self, sequence_number: CompoundSequenceNumber) -> None:
        self._pending.append(sequence_number)
        now = time.monotonic()
        if len(self._pending) >= _ACK_CHUNK or now - self._flushed >= _ACK_DELAY:
            self.flush()
            self._flushed = now

    def flush(self) -> None:
        if self._pending and not self.stopped:
            self.stopped = not tell(self._reply_to, RecordsAcknowledged(tuple(self._pending)))
        self._pending.clear()


class CoroutineProcessor(pykka.ThreadingActor):
    """Awaits ``process_record`` for each record of a ``ProcessRecords`` on the consumer's loop."""

    use_daemon_thread = True

    def __init__(
        self,
        process_record: Callable[[ConsumerEvent], Any],
        shard_id: str,
        loop: ConsumerLoop,
        max_concurrent_records: int,
        traceback_interval: float,
    ) -> None:
        super().__init__()
        self._process_record = process_record
        self._loop = loop
        self._max_concurrent = max_concurrent_records
        self._failures = FailureLog(shard_id, traceback_interval)
        self._log = get_logger(__name__).bind(shard_id=shard_id)

    def on_stop(self) -> None:
        self._failures.flush()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ProcessRecords):
            self._failures.flush()
            batch = self._loop.submit(self._process_batch(message.events, message.reply_to))
            # This thread waits, not the loop: the next attempt starts after this one.
            concurrent.futures.wait([batch])
            if not batch.cancelled() and batch.exception() is not None:
                self._log.error("batch coroutine failed", error=repr(batch.exception()))
            self._failures.flush()
        elif isinstance(message, ConsumerWorkerFailure):
            self._failures.flush()
            self._log.error(
                "records not processed beyond the failure tolerance",
                failed=len(message.failed_events),
            )
        elif isinstance(message, ConsumerShutdown):
            self._log.debug("shard processing ended")
        else:
            super().on_receive(message)

    # -- on the event loop -------------------------------------------------------------------

    async def _process_batch(
        self, events: tuple[ConsumerEvent, ...], reply_to: pykka.ActorRef[Any]
    ) -> None:
        acks = _Acks(reply_to)
        try:
            if self._max_concurrent == 1:
                for event in events:
                    if await self._processed(event):
                        acks.add(event.sequence_number)
                        if acks.stopped:
                            return
            else:
                await self._process_concurrently(events, acks)
        finally:
            acks.flush()

    async def _process_concurrently(self, events: tuple[ConsumerEvent, ...], acks: _Acks) -> None:
        in_flight: dict[asyncio.Future[bool], ConsumerEvent] = {}

        def collect(done: set[asyncio.Future[bool]]) -> None:
            for task in done:
                event = in_flight.pop(task)
                if task.result():
                    acks.add(event.sequence_number)

        try:
            for event in events:
                while len(in_flight) >= self._max_concurrent:
                    done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    collect(done)
                if acks.stopped:
                    return
                in_flight[asyncio.ensure_future(self._processed(event))] = event
            while in_flight:
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                collect(done)
        finally:
            for task in in_flight:
                task.cancel()

    async def _processed(self, event: ConsumerEvent) -> bool:
        """Await ``process_record(event)``: True to acknowledge it."""
        try:
            result = self._process_record(event)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self._failures.add(event, exc)
            return False
        return True
